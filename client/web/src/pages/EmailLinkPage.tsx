import { type FormEvent, useEffect, useRef, useState } from "react";
import { useMutation } from "urql";
import { Link, useLocation, useSearch } from "wouter";
import { Alert, Field } from "../components/base/Field.tsx";
import { graphql } from "../gql/index.ts";
import { resultError, type ResultError } from "../results.ts";
import { loginSession, useSession } from "../session.tsx";

const VerifyEmail = graphql(`
  mutation VerifyEmail($token: String!) {
    verifyEmail(token: $token) {
      __typename
      ... on MutationVerifyEmailSuccess {
        data {
          email
          testCredit
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const CompleteSignup = graphql(`
  mutation CompleteSignup($token: String!) {
    completeSignup(token: $token) {
      __typename
      ... on MutationCompleteSignupSuccess {
        data {
          ...AuthResult
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const ResetPassword = graphql(`
  mutation ResetPassword($token: String!, $newPassword: String!) {
    resetPassword(token: $token, newPassword: $newPassword) {
      __typename
      ... on MutationResetPasswordSuccess {
        data {
          ...AuthResult
        }
      }
      ... on Error {
        code
        message
      }
      ... on ValidationError {
        issues {
          path
          message
        }
      }
    }
  }
`);

/** The emailed verification link (APP_URL/verify-email?token=…): verifies the address on opening. */
function VerifyEmailLink({ token }: { token: string }) {
  const [state, verify] = useMutation(VerifyEmail);
  const sent = useRef(false);
  useEffect(() => {
    if (sent.current) return;
    sent.current = true;
    void verify({ token });
  }, [token, verify]);
  const result = state.data?.verifyEmail;
  const failure = resultError(result, state.error);
  if (failure) return <Alert>{failure.message}</Alert>;
  if (!result || !("data" in result)) return <p className="muted">Verifying…</p>;
  return (
    <Alert tone="success">
      {result.data.email} is verified.
      {result.data.testCredit ? ` Your free test credit of $${result.data.testCredit} is on your balance.` : ""}
    </Alert>
  );
}

/** The emailed signup link (APP_URL/complete-signup?token=…): creates the account on opening, then signed in. */
function CompleteSignupLink({ token }: { token: string }) {
  const { signIn } = useSession();
  const [, navigate] = useLocation();
  const [state, complete] = useMutation(CompleteSignup);
  const sent = useRef(false);
  useEffect(() => {
    if (sent.current) return;
    sent.current = true;
    void complete({ token }).then((outcome) => {
      const result = outcome.data?.completeSignup;
      if (result && "data" in result) {
        signIn(loginSession(result.data));
        navigate("/account");
      }
    });
  }, [token, complete, signIn, navigate]);
  const failure = resultError(state.data?.completeSignup, state.error);
  if (failure) return <Alert>{failure.message}</Alert>;
  return <p className="muted">Creating your account…</p>;
}

/** The emailed reset link (APP_URL/reset-password?token=…): a new password, then signed in. */
function ResetPasswordLink({ token }: { token: string }) {
  const { signIn } = useSession();
  const [, navigate] = useLocation();
  const [state, reset] = useMutation(ResetPassword);
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ResultError | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    const outcome = await reset({ token, newPassword: password });
    const result = outcome.data?.resetPassword;
    const failure = resultError(result, outcome.error);
    if (failure || !result || !("data" in result)) {
      setError(failure ?? { code: "UNKNOWN", message: "Something went wrong", fields: {} });
      return;
    }
    signIn(loginSession(result.data));
    navigate("/account");
  }
  return (
    <form onSubmit={submit} noValidate>
      {error && !error.fields.newPassword && <Alert>{error.message}</Alert>}
      <Field label="New password" hint="8 to 256 characters. Every signed-in session is signed out." error={error?.fields.newPassword}>
        {(props) => <input {...props} type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />}
      </Field>
      <button type="submit" className="btn primary" disabled={state.fetching}>
        Set the password
      </button>
    </form>
  );
}

const TITLES = { "verify-email": "Verify your email", "reset-password": "Choose a new password", "complete-signup": "Create your account" };

/** Where the links in account emails lead: email verification, password reset and signup. */
export default function EmailLinkPage({ purpose }: { purpose: keyof typeof TITLES }) {
  const token = new URLSearchParams(useSearch()).get("token") ?? "";
  return (
    <section className="card narrow">
      <h1>{TITLES[purpose]}</h1>
      {!token ? (
        <Alert>This link has no token: open the link from the email again.</Alert>
      ) : purpose === "verify-email" ? (
        <VerifyEmailLink token={token} />
      ) : purpose === "complete-signup" ? (
        <CompleteSignupLink token={token} />
      ) : (
        <ResetPasswordLink token={token} />
      )}
      <p>
        <Link href="/account">Your account</Link>
      </p>
    </section>
  );
}
