import { z } from "zod";
import { config } from "../../infra/config.ts";
import { prisma } from "../../infra/db.ts";
import { NotFoundError } from "../errors.ts";
import { parseInput } from "../validation.ts";
import { stripe, toCents } from "./stripe.ts";

/** $5 to $10,000 in whole cents (Stripe's unit). */
export const MIN_CREDIT_MICROS = 5_000_000n;
export const MAX_CREDIT_MICROS = 10_000_000_000n;

export const creditAmount = z
  .bigint()
  .min(MIN_CREDIT_MICROS, "must be at least $5")
  .max(MAX_CREDIT_MICROS, "must be at most $10,000")
  .refine((micros) => micros % 10_000n === 0n, "must be whole cents");

const addCreditSchema = z.object({ amount: creditAmount, saveCard: z.boolean() });

export interface CheckoutSession {
  paymentId: number;
  sessionId: string;
  /** Where the frontend sends the user to pay. */
  url: string;
}

/** The account's Stripe customer, created on first use (the idempotency key keeps concurrent first uses to one). */
export async function stripeCustomer(userId: number): Promise<string> {
  const user = await prisma.user.findUnique({ where: { id: userId }, select: { email: true, stripeCustomerId: true } });
  if (!user) throw new NotFoundError("User");
  if (user.stripeCustomerId) return user.stripeCustomerId;
  const customer = await stripe().customers.create(
    { email: user.email, metadata: { userId: String(userId) } },
    { idempotencyKey: `customer-${userId}` },
  );
  await prisma.user.updateMany({ where: { id: userId, stripeCustomerId: null }, data: { stripeCustomerId: customer.id } });
  return customer.id;
}

/**
 * addCredit: a Stripe Checkout Session (mode payment) for `amount`, and its PENDING payment row.
 * The account is credited when Stripe reports the session paid (webhook.ts), never here. With
 * `saveCard` the card is kept for off-session charges (auto-billing).
 */
export async function createCheckout(userId: number, input: { amount: bigint; saveCard: boolean }): Promise<CheckoutSession> {
  const { amount, saveCard } = parseInput(addCreditSchema, input);
  const customer = await stripeCustomer(userId);
  const returnUrl = config().BILLING_RETURN_URL;
  // The payment row first: the webhook credits only sessions whose metadata names a row written
  // here, for the amount asked here.
  const payment = await prisma.payment.create({ data: { userId, kind: "CHECKOUT", amountMicros: amount }, select: { id: true } });
  const metadata = { userId: String(userId), saveCard: String(saveCard), paymentId: String(payment.id) };
  const session = await stripe().checkout.sessions.create({
    mode: "payment",
    customer,
    client_reference_id: String(userId),
    line_items: [
      { quantity: 1, price_data: { currency: "usd", unit_amount: toCents(amount), product_data: { name: "Account credit" } } },
    ],
    ...(saveCard ? { payment_intent_data: { setup_future_usage: "off_session" as const } } : {}),
    metadata,
    success_url: `${returnUrl}?checkout=success&session_id={CHECKOUT_SESSION_ID}`,
    cancel_url: `${returnUrl}?checkout=cancelled`,
  });
  // A crash before this is repaired by the webhook, which finds the row by the session's paymentId.
  await prisma.payment.update({ where: { id: payment.id }, data: { stripeCheckoutSessionId: session.id }, select: { id: true } });
  return { paymentId: payment.id, sessionId: session.id, url: session.url ?? "" };
}

/**
 * addCard: a Stripe Checkout Session in setup mode, where the user enters a card without paying.
 * When Stripe reports it set up (webhook.ts), the card is kept for off-session charges and the
 * account's card counts as verified (domain/trust.ts).
 */
export async function createCardSetup(userId: number): Promise<{ sessionId: string; url: string }> {
  const customer = await stripeCustomer(userId);
  const returnUrl = config().BILLING_RETURN_URL;
  const session = await stripe().checkout.sessions.create({
    mode: "setup",
    currency: "usd",
    customer,
    client_reference_id: String(userId),
    metadata: { userId: String(userId) },
    success_url: `${returnUrl}?card=success&session_id={CHECKOUT_SESSION_ID}`,
    cancel_url: `${returnUrl}?card=cancelled`,
  });
  return { sessionId: session.id, url: session.url ?? "" };
}
