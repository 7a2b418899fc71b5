import { deliver, fakeStripe, signedEvent } from "./support/fake-stripe.ts";
import { beforeEach, describe, expect, it } from "vitest";
import { ledgerMismatches } from "../domain/billing/ledger.ts";
import { createCheckout } from "../domain/payments/checkout.ts";
import { prisma } from "../infra/db.ts";
import { listen } from "../infra/pubsub.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";

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

/** The event Stripe sends when the session `id` was paid. */
function sessionPaid(id: string, userId: number, options: { amountCents?: number; saveCard?: boolean; paymentIntent?: string } = {}) {
  return {
    id,
    object: "checkout.session",
    mode: "payment",
    payment_status: "paid",
    status: "complete",
    amount_total: options.amountCents ?? 2500,
    currency: "usd",
    payment_intent: options.paymentIntent ?? `pi_for_${id}`,
    metadata: { userId: String(userId), saveCard: String(options.saveCard ?? false) },
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
    const { sessionId } = await createCheckout(userId, { amount: 25_000_000n, saveCard: true });
    const events = listen("balance", userId, (a, b) => ({ immediate: a.immediate || b.immediate }));
    await events.ready;

    const event = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, { saveCard: true }));
    const first = await deliver(app.baseUrl, event);
    expect(first.status).toBe(200);
    expect(await balanceOf(userId)).toBe(25_000_000n);
    expect(await events.next()).toEqual({ immediate: true });
    events.close();

    // Stripe retries the same event, sends it again under another id, and sometimes in parallel.
    const again = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId, { saveCard: true }));
    const responses = await Promise.all([
      deliver(app.baseUrl, event),
      ...Array.from({ length: 8 }, () => deliver(app.baseUrl, again)),
      deliver(app.baseUrl, signedEvent("checkout.session.async_payment_succeeded", sessionPaid(sessionId, userId))),
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

  it("credits a session whose payment row was never written (crash after creating it), from its metadata", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const response = await deliver(app.baseUrl, signedEvent("checkout.session.completed", sessionPaid("cs_orphan", userId, { amountCents: 1234 })));
    expect(response.status).toBe(200);
    expect(await balanceOf(userId)).toBe(12_340_000n);
    await deliver(app.baseUrl, signedEvent("checkout.session.completed", sessionPaid("cs_orphan", userId, { amountCents: 1234 })));
    expect(await balanceOf(userId)).toBe(12_340_000n);
  });

  it("does not credit an unpaid session, and expires it", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const { sessionId } = await createCheckout(userId, { amount: 5_000_000n, saveCard: false });
    await deliver(app.baseUrl, signedEvent("checkout.session.completed", { ...sessionPaid(sessionId, userId), payment_status: "unpaid" }));
    await deliver(app.baseUrl, signedEvent("checkout.session.expired", { ...sessionPaid(sessionId, userId), payment_status: "unpaid" }));
    expect(await balanceOf(userId)).toBe(0n);
    expect((await prisma.payment.findUniqueOrThrow({ where: { stripeCheckoutSessionId: sessionId } })).status).toBe("EXPIRED");
  });

  it("answers 400 to a bad or missing signature and writes nothing", async () => {
    const { userId } = await createAccount("payer", { credit: 0n });
    const { sessionId } = await createCheckout(userId, { amount: 25_000_000n, saveCard: false });
    const genuine = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId));
    // The same signature over a tampered body (a bigger amount).
    const tampered = { payload: genuine.payload.replace('"amount_total":2500', '"amount_total":2500000'), signature: genuine.signature };
    expect((await deliver(app.baseUrl, tampered)).status).toBe(400);
    const forged = signedEvent("checkout.session.completed", sessionPaid(sessionId, userId));
    expect((await deliver(app.baseUrl, { payload: forged.payload, signature: "t=1,v1=deadbeef" })).status).toBe(400);
    const unsigned = await fetch(`${app.baseUrl}/webhooks/stripe`, { method: "POST", body: genuine.payload });
    expect(unsigned.status).toBe(400);
    expect(await balanceOf(userId)).toBe(0n);
    expect(await prisma.ledgerEntry.count({ where: { userId } })).toBe(0);
    expect((await prisma.payment.findUniqueOrThrow({ where: { stripeCheckoutSessionId: sessionId } })).status).toBe("PENDING");
  });
});
