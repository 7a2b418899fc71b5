import { useState } from "react";
import { useMutation, useQuery } from "urql";
import { money } from "../format.ts";
import { graphql } from "../gql/index.ts";
import { resultError } from "../results.ts";
import { Alert } from "./base/Field.tsx";

const Trust = graphql(`
  query Trust {
    me {
      id
      email
      emailVerified
      cardVerified
      testCredit {
        status
        amount
        message
      }
    }
    spendLimit {
      tier
      limitPerHour
      currentPerHour
      next {
        tier
        limitPerHour
        requirements
      }
    }
  }
`);

const RequestEmailVerification = graphql(`
  mutation RequestEmailVerification {
    requestEmailVerification {
      __typename
      ... on MutationRequestEmailVerificationSuccess {
        data {
          email
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const AddCard = graphql(`
  mutation AddCard {
    addCard {
      __typename
      ... on MutationAddCardSuccess {
        data {
          url
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const perHour = (limit: string | null | undefined) => (limit == null ? "no limit" : `${money(limit)}/hr`);

/** The account's verifications, its test credit and its spend rate limit, with what raises it. */
export function TrustPanel() {
  const [trust] = useQuery({ query: Trust, requestPolicy: "cache-and-network" });
  const [sending, send] = useMutation(RequestEmailVerification);
  const [adding, add] = useMutation(AddCard);
  const [notice, setNotice] = useState<{ tone: "error" | "success"; text: string } | null>(null);
  const me = trust.data?.me;
  const limit = trust.data?.spendLimit;

  async function verifyEmail() {
    const outcome = await send({});
    const result = outcome.data?.requestEmailVerification;
    const failure = resultError(result, outcome.error);
    if (failure) setNotice({ tone: "error", text: failure.message });
    else if (result && "data" in result) setNotice({ tone: "success", text: `A verification link went to ${result.data.email}.` });
  }

  async function addCard() {
    const outcome = await add({});
    const result = outcome.data?.addCard;
    const failure = resultError(result, outcome.error);
    if (failure) setNotice({ tone: "error", text: failure.message });
    else if (result && "data" in result) window.location.assign(result.data.url);
  }

  return (
    <section className="card" aria-labelledby="section-verification">
      <h2 id="section-verification">Verification and limits</h2>
      {trust.error && <Alert>{trust.error.message}</Alert>}
      {notice && <Alert tone={notice.tone}>{notice.text}</Alert>}
      {me && limit && (
        <>
          <p data-testid="verification">
            Email {me.emailVerified ? "verified" : "not verified"} · card {me.cardVerified ? "verified" : "not verified"}
          </p>
          <p>
            {!me.emailVerified && (
              <button type="button" className="btn ghost" disabled={sending.fetching} onClick={verifyEmail}>
                Send verification email
              </button>
            )}{" "}
            {!me.cardVerified && (
              <button type="button" className="btn ghost" disabled={adding.fetching} onClick={addCard}>
                Add a card
              </button>
            )}
          </p>
          <p>
            Test credit: {me.testCredit.amount ? money(me.testCredit.amount) : "none"} · {me.testCredit.message}
          </p>
          <p data-testid="spend-limit">
            Spend limit: <strong>{limit.tier}</strong>, {perHour(limit.limitPerHour)} (rentals now {money(limit.currentPerHour)}/hr)
          </p>
          {limit.next && (
            <p className="muted">
              {limit.next.tier} ({perHour(limit.next.limitPerHour)}): {limit.next.requirements.join("; ")}
            </p>
          )}
        </>
      )}
    </section>
  );
}
