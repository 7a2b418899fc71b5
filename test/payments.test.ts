import { deliver, fakeStripe, signedEvent } from "./support/fake-stripe.ts";
import { beforeEach, describe, expect, it } from "vitest";
import { ledgerMismatches } from "../domain/billing/ledger.ts";
import { createCheckout } from "../domain/payments/checkout.ts";
import { prisma } from "../infra/db.ts";
import { listen } from "../infra/pubsub.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";

const app = useTestApp();

const ADD_CREDIT = /* GraphQL */ `
  mutation ($amount: Money!, $saveCard: Boolean) {
    addCredit(amount: $amount, saveCard: $saveCard) {
      __typename
      ... on MutationAddCreditSuccess { data { sessionId url } }
      ... on ValidationError { issues { path message } }
      ... on Error { code }
    }
  }
`;

/** The event Stripe sends when the session `id` (of addCredit's payment `paymentId`) was paid. */
function sessionPaid(id: string, userId: number, paymentId: number, options: { amountCents?: number; saveCard?: boolean; paymentIntent?: string } = {}) {
  return {
    id,
    object: "checkout.session",
    mode: "payment",
    payment_status: "paid",
    status: "complete",
    amount_total: options.amountCents ?? 2500,
    currency: "usd",
    payment_intent: options.paymentIntent ?? `pi_for_${id}`,
    metadata: { userId: String(userId), saveCard: String(options.saveCard ?? false), paymentId: String(paymentId) },
  };
}

const balanceOf = async (userId: number) => (await prisma.user.findUniqueOrThrow({ where: { id: userId } })).balanceMicros;

beforeEach(() => fakeStripe.reset());

describe("addCredit", () => {
  it("creates a Checkout Session for the amount, the customer on first use only", async () => {
    const { userId, key } = await createAccount("payer", { credit: 0n });
    const first = await app.gql(ADD_CREDIT, { amount: "25.00", saveCard: true }, key);
    expect(first.data.addCredit.__typename).toBe("MutationAddCreditSuccess");
    const { sessionId, url } = first.data.addCredit.data;
    expect(sessionId).toMatch(/^cs_/);
    expect(url).toContain(sessionId);

    const [customer] = fakeStripe.requestsTo("POST", "/v1/customers");
    expect(customer.body["metadata[userId]"]).toBe(String(userId));
    const [session] = fakeStripe.requestsTo("POST", "/v1/checkout/sessions");
    expect(session.body).toMatchObject({
      mode: "payment",
      "line_items[0][price_data][unit_amount]": "2500",
      "line_items[0][price_data][currency]": "usd",
      "metadata[userId]": String(userId),
      "payment_intent_data[setup_future_usage]": "off_session",
    });
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    expect(user.stripeCustomerId).toMatch(/^cus_/);
    expect(session.body.customer).toBe(user.stripeCustomerId);
    expect(await prisma.payment.findMany({ where: { userId } })).toMatchObject([
      { kind: "CHECKOUT", status: "PENDING", amountMicros: 25_000_000n, stripeCheckoutSessionId: sessionId },
    ]);
    // Nothing is credited before Stripe says the session was paid.
    expect(await balanceOf(userId)).toBe(0n);

    await app.gql(ADD_CREDIT, { amount: "10" }, key);
    expect(fakeStripe.requestsTo("POST", "/v1/customers")).toHaveLength(1);
    expect(fakeStripe.requestsTo("POST", "/v1/checkout/sessions")).toHaveLength(2);
  });

  it.each([["4.99"], ["10000.01"], ["20.005"], ["-5"]])("refuses %s and writes nothing", async (amount) => {
    const { userId, key } = await createAccount("payer", { credit: 0n });
    const result = await app.gql(ADD_CREDIT, { amount }, key);
    expect(result.data.addCredit.__typename).toBe("ValidationError");
    expect(result.data.addCredit.issues[0].path).toEqual(["amount"]);
    expect(fakeStripe.requests).toHaveLength(0);
    expect(await prisma.payment.count({ where: { userId } })).toBe(0);
  });

  it("needs a full-account key", async () => {
    const result = await app.gql(ADD_CREDIT, { amount: "25" });
    expect(result.data.addCredit.__typename).toBe("NotAuthenticatedError");
  });
});

describe("the Stripe webhook", () => {
  it("credits a paid session exactly once across redeliveries and concurrent deliveries, and publishes the balance at once", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    // Unverified email: saving the card grants no test credit here (test/trust.test.ts covers it).
    await prisma.user.update({ where: { id: userId }, data: { emailVerified: false } });
    const { sessionId, paymentId } = await createCheckout(userId, { amount: 25_000_000n, saveCard: true });
    const events = listen("balance", userId, (a, b) => ({ immediate: a.immediate || b.immediate }));
    await events.ready;

    const event = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, paymentId, { saveCard: true }));
    const first = await deliver(app.baseUrl, event);
    expect(first.status).toBe(200);
    expect(await balanceOf(userId)).toBe(25_000_000n);
    expect(await events.next()).toEqual({ immediate: true });
    events.close();

    // Stripe retries the same event, sends it again under another id, and sometimes in parallel.
    const again = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, paymentId, { saveCard: true }));
    const responses = await Promise.all([
      deliver(app.baseUrl, event),
      ...Array.from({ length: 8 }, () => deliver(app.baseUrl, again)),
      deliver(app.baseUrl, signedEvent("checkout.session.async_payment_succeeded", sessionPaid(sessionId, userId, paymentId))),
    ]);
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(await balanceOf(userId)).toBe(25_000_000n);
    const entries = await prisma.ledgerEntry.findMany({ where: { userId } });
    expect(entries).toMatchObject([{ kind: "PAYMENT", amountMicros: 25_000_000n }]);
    expect(entries[0].description).toContain(`pi_for_${sessionId}`);
    expect(await prisma.payment.findUniqueOrThrow({ where: { stripeCheckoutSessionId: sessionId } })).toMatchObject({
      status: "SUCCEEDED",
      stripePaymentIntentId: `pi_for_${sessionId}`,
    });
    expect(await ledgerMismatches(prisma)).toEqual([]);
    // The card the user chose to save is kept for auto-billing.
    expect(await prisma.user.findUniqueOrThrow({ where: { id: userId } })).toMatchObject({
      stripePaymentMethodId: "pm_card_visa",
      savedCardLabel: "visa •••• 4242",
      cardFingerprint: "fp_pm_card_visa",
    });
  });

  it("credits a session whose payment row was not bound to it yet (crash right after creating it), by its paymentId", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const payment = await prisma.payment.create({ data: { userId, kind: "CHECKOUT", amountMicros: 12_340_000n } });
    const event = signedEvent("checkout.session.completed", sessionPaid("cs_orphan", userId, payment.id, { amountCents: 1234 }));
    expect((await deliver(app.baseUrl, event)).status).toBe(200);
    expect(await balanceOf(userId)).toBe(12_340_000n);
    await deliver(app.baseUrl, event);
    expect(await balanceOf(userId)).toBe(12_340_000n);
    expect(await prisma.payment.findUniqueOrThrow({ where: { id: payment.id } })).toMatchObject({ stripeCheckoutSessionId: "cs_orphan", status: "SUCCEEDED" });
  });

  it("credits only sessions addCredit created, for the amount it asked, above zero; others answer 200 and change nothing", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const { sessionId, paymentId } = await createCheckout(userId, { amount: 25_000_000n, saveCard: false });
    const other = await createAccount("other", { credit: 0n });
    const theirs = await createCheckout(other.userId, { amount: 25_000_000n, saveCard: false });
    const before = await databaseSnapshot();
    const forged = [
      // Signed by Stripe, but not a session of ours: no payment id, or one we never wrote.
      { ...sessionPaid("cs_elsewhere", userId, paymentId), metadata: { userId: String(userId) } },
      sessionPaid("cs_elsewhere", userId, 999_999),
      // Ours, but for another amount, a negative one, or another currency.
      sessionPaid(sessionId, userId, paymentId, { amountCents: -500_000 }),
      sessionPaid(sessionId, userId, paymentId, { amountCents: 250_000 }),
      sessionPaid(sessionId, userId, paymentId, { amountCents: 0 }),
      { ...sessionPaid(sessionId, userId, paymentId), currency: "eur" },
      // Another account's payment named with this account, or another session for a bound payment.
      sessionPaid(theirs.sessionId, userId, theirs.paymentId),
      sessionPaid("cs_second", userId, paymentId),
      // An account that does not exist.
      sessionPaid("cs_ghost", 987_654, 987_654),
      { ...sessionPaid("cs_ghost", 987_654, paymentId), metadata: { userId: "not a number", paymentId: "1e3" } },
    ];
    for (const session of forged) {
      const response = await deliver(app.baseUrl, signedEvent("checkout.session.completed", session));
      expect(response.status, JSON.stringify(session)).toBe(200);
    }
    expect(await databaseSnapshot()).toBe(before);
    expect(await balanceOf(userId)).toBe(0n);
    // The genuine one still credits.
    await deliver(app.baseUrl, signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, paymentId)));
    expect(await balanceOf(userId)).toBe(25_000_000n);
  });

  it("does not credit an unpaid session, and expires it", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const { sessionId, paymentId } = await createCheckout(userId, { amount: 5_000_000n, saveCard: false });
    await deliver(app.baseUrl, signedEvent("checkout.session.completed", { ...sessionPaid(sessionId, userId, paymentId), payment_status: "unpaid" }));
    await deliver(app.baseUrl, signedEvent("checkout.session.expired", { ...sessionPaid(sessionId, userId, paymentId), payment_status: "unpaid" }));
    expect(await balanceOf(userId)).toBe(0n);
    expect((await prisma.payment.findUniqueOrThrow({ where: { stripeCheckoutSessionId: sessionId } })).status).toBe("EXPIRED");
  });

  it("answers 400 to a bad or missing signature and writes nothing", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const { sessionId, paymentId } = await createCheckout(userId, { amount: 25_000_000n, saveCard: false });
    const genuine = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, paymentId));
    // The same signature over a tampered body (a bigger amount).
    const tampered = { payload: genuine.payload.replace('"amount_total":2500', '"amount_total":2500000'), signature: genuine.signature };
    expect((await deliver(app.baseUrl, tampered)).status).toBe(400);
    const forged = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, paymentId));
    expect((await deliver(app.baseUrl, { payload: forged.payload, signature: "t=1,v1=deadbeef" })).status).toBe(400);
    const unsigned = await fetch(`${app.baseUrl}/webhooks/stripe`, { method: "POST", body: genuine.payload });
    expect(unsigned.status).toBe(400);
    expect(await balanceOf(userId)).toBe(0n);
    expect(await prisma.ledgerEntry.count({ where: { userId } })).toBe(0);
    expect((await prisma.payment.findUniqueOrThrow({ where: { stripeCheckoutSessionId: sessionId } })).status).toBe("PENDING");
  });
});
