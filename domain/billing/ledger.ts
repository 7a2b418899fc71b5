import type { Tx } from "../../infra/db.ts";
import type { LedgerEntryKind } from "../../prisma/generated/client/client.ts";

/*
 * The ledger: every change of a balance is a ledger entry written in the same transaction, so an
 * account's balance is always exactly the sum of its entries. Money in (PAYMENT, positive), money
 * out (REFUND and PAYOUT, negative) and corrections (ADJUSTMENT) are one entry each, through
 * `postEntry`. Metering is the exception in shape, not in rule: it grows one CHARGE entry per
 * client and one EARNING entry per host per category and billing period (a UTC day) by exactly the
 * amount it moves the balance (metering.ts, usage.ts).
 */

export interface PostEntry {
  userId: number;
  kind: Exclude<LedgerEntryKind, "CHARGE" | "EARNING">;
  /** Signed: positive credits the account. */
  amountMicros: bigint;
  description: string;
}

/** Writes one entry and moves the balance by its amount; call it inside the caller's transaction. */
export async function postEntry(db: Tx, entry: PostEntry): Promise<bigint> {
  await db.ledgerEntry.create({ data: entry, select: { id: true } });
  const user = await db.user.update({
    where: { id: entry.userId },
    data: { balanceMicros: { increment: entry.amountMicros } },
    select: { balanceMicros: true },
  });
  return user.balanceMicros;
}

/** Accounts whose balance differs from the sum of their entries: always none. */
export async function ledgerMismatches(db: Tx): Promise<{ userId: number; balance: bigint; ledger: bigint }[]> {
  return db.$queryRaw`
    SELECT u.id AS "userId", u.balance_micros AS balance, coalesce(l.total, 0)::bigint AS ledger
      FROM user_account u
      LEFT JOIN (SELECT user_id, sum(amount_micros) AS total FROM ledger_entry GROUP BY user_id) l ON l.user_id = u.id
     WHERE u.balance_micros <> coalesce(l.total, 0)`;
}
