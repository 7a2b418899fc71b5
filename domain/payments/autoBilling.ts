import { prisma } from "../../infra/db.ts";
import { publish } from "../../infra/pubsub.ts";
import { formatMoney } from "../money.ts";
import { queueNotification } from "../notifications.ts";
import { creditPayment } from "./credit.ts";
import { isDefiniteRefusal, stripe, toCents } from "./stripe.ts";

export type AttemptOutcome = "SUCCEEDED" | "PROCESSING" | "DECLINED" | "FAILED" | "DONE";

/**
 * One attempt at an off-session payment, auto-billing or debit settlement (balanceWatch.ts made it): charges the saved card
 * off-session (PaymentIntent with confirm and off_session) and credits the payment once it
 * succeeds. Safe to repeat: a payment no longer PENDING is left alone, and the Stripe idempotency
 * key changes only after a definite decline, so an attempt whose answer was lost (network, crash)
 * is repeated with the same key and never charges twice. A decline counts an attempt and throws, so
 * that the queue retries with backoff; on the `final` attempt the payment is marked FAILED and the
 * owner is notified (outbox). An intent still processing is credited by the webhook.
 */
export async function attemptAutoBill(paymentId: number, final: boolean): Promise<AttemptOutcome> {
  const payment = await prisma.payment.findUnique({
    where: { id: paymentId },
    select: {
      status: true,
      kind: true,
      amountMicros: true,
      attempts: true,
      userId: true,
      user: { select: { stripeCustomerId: true, stripePaymentMethodId: true } },
    },
  });
  if (!payment || payment.kind === "CHECKOUT" || payment.status !== "PENDING") return "DONE";
  const { stripeCustomerId: customer, stripePaymentMethodId: paymentMethod } = payment.user;
  if (!customer || !paymentMethod) {
    await fail(paymentId, payment.userId, payment.amountMicros, "no saved card");
    return "FAILED";
  }
  let failure: string;
  try {
    const intent = await stripe().paymentIntents.create(
      {
        amount: toCents(payment.amountMicros),
        currency: "usd",
        customer,
        payment_method: paymentMethod,
        off_session: true,
        confirm: true,
        description: payment.kind === "AUTO_BILL" ? "Auto-billing: account credit" : "Paying off a negative balance",
        metadata: { kind: payment.kind, paymentId: String(paymentId), userId: String(payment.userId) },
      },
      { idempotencyKey: `auto-bill-${paymentId}-${payment.attempts}` },
    );
    if (intent.status === "succeeded") {
      const credited = await prisma.$transaction((tx) => creditPayment(tx, { paymentId }, intent.id));
      if (credited) publish("balance", credited.userId, { immediate: true });
      return "SUCCEEDED";
    }
    if (intent.status === "processing") {
      await prisma.payment.update({ where: { id: paymentId }, data: { stripePaymentIntentId: intent.id } });
      return "PROCESSING";
    }
    // Anything else needs the customer (authentication): off-session, that is a decline.
    failure = `the payment needs the card holder (${intent.status})`;
  } catch (err) {
    if (!isDefiniteRefusal(err)) {
      // The answer is unknown: the next attempt repeats the same request (same key).
      if (final) await fail(paymentId, payment.userId, payment.amountMicros, (err as Error).message);
      throw err;
    }
    failure = (err as Error).message;
  }
  if (final) {
    await fail(paymentId, payment.userId, payment.amountMicros, failure);
    return "FAILED";
  }
  await prisma.payment.updateMany({
    where: { id: paymentId, status: "PENDING" },
    data: { attempts: { increment: 1 }, failureMessage: failure },
  });
  throw new AutoBillDeclinedError(failure);
}

/** A declined attempt: the queue retries it after a delay. */
export class AutoBillDeclinedError extends Error {}

/** Records the payment's failure and tells the owner, once (only a PENDING payment fails). */
async function fail(paymentId: number, userId: number, amount: bigint, reason: string): Promise<void> {
  await prisma.$transaction(async (tx) => {
    const { count } = await tx.payment.updateMany({
      where: { id: paymentId, status: "PENDING" },
      data: { status: "FAILED", failureMessage: reason, completedAt: new Date(), attempts: { increment: 1 } },
    });
    if (count === 0) return;
    await queueNotification(tx, {
      userId,
      kind: "AUTO_BILL_FAILED",
      subject: "Auto-billing failed",
      body:
        `We could not charge your saved card $${formatMoney(amount)} (${reason}). ` +
        "Add credit or update your card to keep your instances running.",
    });
  });
}
