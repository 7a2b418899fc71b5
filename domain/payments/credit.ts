import type { Tx } from "../../infra/db.ts";
import { formatMoney } from "../money.ts";
import { postEntry } from "../billing/ledger.ts";

export interface Credited {
  paymentId: number;
  userId: number;
  amountMicros: bigint;
}

/**
 * Moves a payment to SUCCEEDED and credits its amount with a PAYMENT ledger entry, in the caller's
 * transaction; null when it was already credited. The conditional UPDATE is what makes a payment
 * count once: of any number of concurrent or repeated deliveries, only the first sees a row that
 * is not SUCCEEDED yet (the others wait for its row lock, then find it SUCCEEDED). A FAILED
 * auto-billing payment that Stripe later reports paid is credited too.
 */
export async function creditPayment(
  tx: Tx,
  where: { paymentId: number },
  paymentIntentId: string | null,
  now = new Date(),
): Promise<Credited | null> {
  const [row] = await tx.$queryRaw<Credited[]>`
    UPDATE payment SET status = 'SUCCEEDED', completed_at = ${now},
           stripe_payment_intent_id = coalesce(${paymentIntentId}, stripe_payment_intent_id)
     WHERE id = ${where.paymentId} AND status <> 'SUCCEEDED'
    RETURNING id AS "paymentId", user_id AS "userId", amount_micros AS "amountMicros"`;
  if (!row) return null;
  await postEntry(tx, {
    userId: row.userId,
    kind: "PAYMENT",
    amountMicros: row.amountMicros,
    description: `Card payment of $${formatMoney(row.amountMicros)} (Stripe ${paymentIntentId ?? `payment ${row.paymentId}`})`,
  });
  return row;
}
