import { config } from "../../infra/config.ts";
import { prisma } from "../../infra/db.ts";
import { formatMoney } from "../money.ts";
import { queueNotification } from "../notifications.ts";
import { MICROS_PER_CENT } from "./stripe.ts";
import { HOUR_MS } from "../time.ts";

/** Stripe charges no less than $0.50; a smaller debt waits until it grows. */
const MIN_OFF_SESSION_CHARGE_MICROS = 500_000n;

export interface WatchResult {
  /** Balance alerts queued in the outbox. */
  alerts: number;
  /** Off-session payments (auto-billing, debit settlement) waiting for a charge attempt (new ones and any whose job was lost). */
  autoBills: number[];
}

/**
 * Compares balances with their thresholds, once per crossing (the crossing records on the account):
 * a balance below the alert threshold queues one notification, a balance below the auto-billing
 * threshold creates one PENDING auto-billing payment, and neither happens again until the balance
 * is back at or above the threshold (the record is then cleared: re-armed). Each crossing is
 * claimed by a conditional UPDATE in the transaction that writes its effect, so concurrent or
 * repeated watches act once. Balances move every metering tick; a watch every few seconds sees a
 * crossing within seconds.
 *
 * A negative balance (debit mode, or charges after the balance ran out) is charged to the saved card
 * as the reference does: one DEBIT_SETTLEMENT payment of what is owed (whole cents up, Stripe's
 * $0.50 minimum), at most once per DEBIT_SETTLEMENT_HOURS, claimed like a crossing (debit_settled_at)
 * and never while another off-session payment of the account is pending.
 */
export async function watchBalances(now = new Date()): Promise<WatchResult> {
  return prisma.$transaction(async (tx) => {
    await tx.$executeRaw`
      UPDATE user_account SET auto_bill_crossed_at = NULL
       WHERE auto_bill_crossed_at IS NOT NULL
         AND (auto_bill_threshold_micros IS NULL OR balance_micros >= auto_bill_threshold_micros)`;
    await tx.$executeRaw`
      UPDATE user_account SET balance_alert_crossed_at = NULL
       WHERE balance_alert_crossed_at IS NOT NULL
         AND (balance_alert_threshold_micros IS NULL OR balance_micros >= balance_alert_threshold_micros)`;

    const alerted = await tx.$queryRaw<{ id: number; balance: bigint; threshold: bigint }[]>`
      UPDATE user_account SET balance_alert_crossed_at = ${now}
       WHERE balance_alert_crossed_at IS NULL AND balance_micros < balance_alert_threshold_micros
      RETURNING id, balance_micros AS balance, balance_alert_threshold_micros AS threshold`;
    for (const user of alerted) {
      await queueNotification(tx, {
        userId: user.id,
        kind: "BALANCE_ALERT",
        subject: `Your balance is below $${formatMoney(user.threshold)}`,
        body:
          `Your balance is $${formatMoney(user.balance)}, below your alert threshold of $${formatMoney(user.threshold)}. ` +
          "Instances stop when it reaches zero (storage keeps being charged): add credit to keep them running.",
      });
    }

    await tx.$executeRaw`
      WITH crossed AS (
        UPDATE user_account SET auto_bill_crossed_at = ${now}
         WHERE auto_bill_crossed_at IS NULL AND balance_micros < auto_bill_threshold_micros
           AND auto_bill_amount_micros IS NOT NULL AND stripe_payment_method_id IS NOT NULL AND stripe_customer_id IS NOT NULL
        RETURNING id, auto_bill_amount_micros
      )
      INSERT INTO payment (user_id, kind, status, amount_micros, created_at)
      SELECT id, 'AUTO_BILL', 'PENDING', auto_bill_amount_micros, ${now} FROM crossed`;

    const settledBefore = new Date(now.getTime() - config().DEBIT_SETTLEMENT_HOURS * HOUR_MS);
    await tx.$executeRaw`
      WITH owing AS (
        UPDATE user_account u SET debit_settled_at = ${now}
         WHERE balance_micros <= ${-MIN_OFF_SESSION_CHARGE_MICROS}
           AND stripe_payment_method_id IS NOT NULL AND stripe_customer_id IS NOT NULL
           AND (debit_settled_at IS NULL OR debit_settled_at <= ${settledBefore})
           AND NOT EXISTS (SELECT 1 FROM payment p WHERE p.user_id = u.id AND p.status = 'PENDING' AND p.kind IN ('AUTO_BILL', 'DEBIT_SETTLEMENT'))
        RETURNING id, -balance_micros AS owed
      )
      INSERT INTO payment (user_id, kind, status, amount_micros, created_at)
      SELECT id, 'DEBIT_SETTLEMENT', 'PENDING', (owed + ${MICROS_PER_CENT - 1n}) / ${MICROS_PER_CENT} * ${MICROS_PER_CENT}, ${now} FROM owing`;

    const pending = await tx.payment.findMany({
      where: { kind: { in: ["AUTO_BILL", "DEBIT_SETTLEMENT"] }, status: "PENDING", stripePaymentIntentId: null },
      select: { id: true },
      orderBy: { id: "asc" },
    });
    return { alerts: alerted.length, autoBills: pending.map((p) => p.id) };
  });
}
