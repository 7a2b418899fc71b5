import Stripe from "stripe";
import { config } from "../../infra/config.ts";
import { prisma } from "../../infra/db.ts";
import { logger } from "../../infra/logger.ts";
import { publish } from "../../infra/pubsub.ts";
import { connectedAccountUpdated } from "../payouts.ts";
import { recordVerifiedCard, type VerifiedCard } from "../trust.ts";
import { creditPayment } from "./credit.ts";
import { fromCents, stripe } from "./stripe.ts";

export interface WebhookResponse {
  status: number;
  body: { received: boolean; error?: string };
}

/**
 * POST /webhooks/stripe with its raw body. The signature is checked by the Stripe SDK against
 * STRIPE_WEBHOOK_SECRET: a bad one answers 400 and writes nothing. Stripe delivers events at least
 * once, in any order and sometimes concurrently; each handler is idempotent (credit.ts), so every
 * delivery answers 200 once handled and Stripe's retries after a 500 are harmless.
 */
export async function handleStripeWebhook(rawBody: Buffer, signature: string | undefined): Promise<WebhookResponse> {
  const secret = config().STRIPE_WEBHOOK_SECRET;
  if (!secret) return { status: 503, body: { received: false, error: "webhooks are not configured" } };
  let event: Stripe.Event;
  try {
    event = Stripe.webhooks.constructEvent(rawBody, signature ?? "", secret);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, "stripe webhook refused: bad signature");
    return { status: 400, body: { received: false, error: "bad signature" } };
  }
  await handleEvent(event);
  return { status: 200, body: { received: true } };
}

async function handleEvent(event: Stripe.Event): Promise<void> {
  switch (event.type) {
    case "checkout.session.completed":
      if (event.data.object.mode === "setup") await cardSetUp(event.data.object);
      // Card payments are paid now; delayed methods report later (async_payment_succeeded).
      else if (event.data.object.payment_status === "paid") await checkoutPaid(event.data.object);
      return;
    case "checkout.session.async_payment_succeeded":
      await checkoutPaid(event.data.object);
      return;
    case "checkout.session.async_payment_failed":
    case "checkout.session.expired":
      await prisma.payment.updateMany({
        where: { stripeCheckoutSessionId: event.data.object.id, status: "PENDING" },
        data: { status: event.type === "checkout.session.expired" ? "EXPIRED" : "FAILED", completedAt: new Date() },
      });
      return;
    case "payment_intent.succeeded":
      await autoBillPaid(event.data.object);
      return;
    case "account.updated":
      await connectedAccountUpdated(event.data.object);
      return;
    default:
      logger.debug({ type: event.type, id: event.id }, "stripe event ignored");
  }
}

const intentId = (value: string | { id: string } | null): string | null => (typeof value === "string" ? value : (value?.id ?? null));

function sessionUserId(session: Stripe.Checkout.Session): number | null {
  const userId = Number(session.metadata?.userId);
  if (Number.isInteger(userId) && userId > 0) return userId;
  logger.warn({ session: session.id }, "checkout session without our user id ignored");
  return null;
}

/**
 * A paid Checkout Session: credits its payment once, and keeps (and so verifies) the card when the
 * user asked to. Only a session addCredit created is credited: its metadata names the payment row
 * written before it (of the same account, not yet bound to another session), and it was paid the
 * amount that row asked for, in dollars, above zero. Anything else (a session made elsewhere with
 * the same signing secret, another amount, an account that does not exist) is logged and ignored:
 * answered 200, since Stripe would retry an error for days.
 */
async function checkoutPaid(session: Stripe.Checkout.Session): Promise<void> {
  const userId = sessionUserId(session);
  const paymentId = Number(session.metadata?.paymentId);
  const cents = session.amount_total;
  if (userId === null || !Number.isSafeInteger(paymentId) || paymentId <= 0 || typeof cents !== "number" || !Number.isSafeInteger(cents) || cents <= 0 || session.currency !== "usd") {
    logger.warn({ session: session.id, amount: cents, currency: session.currency }, "checkout session not created by addCredit ignored");
    return;
  }
  const ours = await prisma.payment.updateMany({
    where: { id: paymentId, userId, kind: "CHECKOUT", amountMicros: fromCents(cents), OR: [{ stripeCheckoutSessionId: session.id }, { stripeCheckoutSessionId: null }] },
    data: { stripeCheckoutSessionId: session.id },
  });
  if (ours.count === 0) {
    logger.warn({ session: session.id, paymentId, userId, amount: cents }, "checkout session matches no payment addCredit created; ignored");
    return;
  }
  const paymentIntent = intentId(session.payment_intent);
  const card = session.metadata?.saveCard === "true" && paymentIntent ? await cardOfIntent(paymentIntent) : null;
  const credited = await prisma.$transaction(async (tx) => {
    const payment = await creditPayment(tx, { paymentId }, paymentIntent);
    if (payment && card) await recordVerifiedCard(tx, payment.userId, card);
    return payment;
  });
  if (credited) publish("balance", credited.userId, { immediate: true });
}

/** A card set up without a payment (addCard): kept and verified, which may grant the test credit. Repeats change nothing. */
async function cardSetUp(session: Stripe.Checkout.Session): Promise<void> {
  const userId = sessionUserId(session);
  const setupIntent = intentId(session.setup_intent);
  if (userId === null || !setupIntent) return;
  const intent = await stripe().setupIntents.retrieve(setupIntent, { expand: ["payment_method"] });
  const card = intent.status === "succeeded" ? verifiedCard(intent.payment_method) : null;
  if (!card) return;
  const credited = await prisma.$transaction((tx) => recordVerifiedCard(tx, userId, card));
  if (credited) publish("balance", userId, { immediate: true });
}

/** An off-session charge (auto-billing, debit settlement) that completed after its request (it was processing): credited once. */
async function autoBillPaid(intent: Stripe.PaymentIntent): Promise<void> {
  const paymentId = Number(intent.metadata?.paymentId);
  const offSession = intent.metadata?.kind === "AUTO_BILL" || intent.metadata?.kind === "DEBIT_SETTLEMENT";
  if (!offSession || !Number.isInteger(paymentId) || paymentId <= 0) return;
  const credited = await prisma.$transaction((tx) => creditPayment(tx, { paymentId }, intent.id));
  if (credited) publish("balance", credited.userId, { immediate: true });
}

/** The card a payment was made with, as kept for off-session charges. */
async function cardOfIntent(paymentIntentId: string): Promise<VerifiedCard | null> {
  const intent = await stripe().paymentIntents.retrieve(paymentIntentId, { expand: ["payment_method"] });
  return verifiedCard(intent.payment_method);
}

/** A card Stripe confirmed, with its fingerprint (the same for every use of one card number). */
function verifiedCard(method: string | Stripe.PaymentMethod | null): VerifiedCard | null {
  if (!method || typeof method === "string" || !method.card?.fingerprint) return null;
  return { paymentMethodId: method.id, label: `${method.card.brand} •••• ${method.card.last4}`, fingerprint: method.card.fingerprint };
}
