import { prisma } from "../../infra/db.ts";
import { formatMoney } from "../money.ts";
import { queueNotification } from "../notifications.ts";

export interface WatchResult {
  /** Balance alerts queued in the outbox. */
  alerts: number;
  /** Auto-billing payments waiting for a charge attempt (new ones and any whose job was lost). */
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
    const pending = await tx.payment.findMany({
      where: { kind: "AUTO_BILL", status: "PENDING", stripePaymentIntentId: null },
      select: { id: true },
      orderBy: { id: "asc" },
    });
    return { alerts: alerted.length, autoBills: pending.map((p) => p.id) };
  });
}
