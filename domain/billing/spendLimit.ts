import { config } from "../../infra/config.ts";
import type { Tx } from "../../infra/db.ts";
import { AppError } from "../errors.ts";
import { formatMoney } from "../money.ts";

/*
 * Spend rate limit: what an account's rentals may cost per hour in total, counting every instance
 * that wants to run (SCHEDULING, LOADING, RUNNING, PAUSED) at its GPU rate (on-demand price or bid,
 * times GPUs) plus its storage rate (GB-month price × GB / 720 hours).
 *
 * - email not verified: SPEND_LIMIT_MICROS_PER_HOUR (default $5/hr);
 * - email verified: 4 times that ($20/hr);
 * - email verified and account older than SPEND_LIMIT_ESTABLISHED_DAYS (default 30): no limit.
 */

export class SpendRateLimitError extends AppError {
  constructor(
    readonly limitMicrosPerHour: bigint,
    readonly currentMicrosPerHour: bigint,
    readonly requestedMicrosPerHour: bigint,
  ) {
    super(
      `This rental ($${formatMoney(requestedMicrosPerHour)}/hr) would take the account's rentals over its limit of $${formatMoney(limitMicrosPerHour)}/hr ` +
        `($${formatMoney(currentMicrosPerHour)}/hr already); verifying the email and account age raise it`,
      "SPEND_RATE_LIMIT",
    );
  }
}

const VERIFIED_FACTOR = 4n;
const DAY_MS = 86_400_000;

/** The account's limit in µ$ per hour, or null when it has none. */
export function spendLimitMicrosPerHour(account: { emailVerified: boolean; createdAt: Date }, now = new Date()): bigint | null {
  const base = BigInt(config().SPEND_LIMIT_MICROS_PER_HOUR);
  if (!account.emailVerified) return base;
  if (now.getTime() - account.createdAt.getTime() >= config().SPEND_LIMIT_ESTABLISHED_DAYS * DAY_MS) return null;
  return base * VERIFIED_FACTOR;
}

/** µ$ per hour of one rental: GPUs at its price or bid, plus its disk. */
export function rentalMicrosPerHour(rental: { numGpus: number; gpuPriceMicros: bigint; diskGb: number; storagePricePerGbMonthMicros: bigint }): bigint {
  return rental.gpuPriceMicros * BigInt(rental.numGpus) + (rental.storagePricePerGbMonthMicros * BigInt(rental.diskGb)) / 720n;
}

/**
 * Throws SpendRateLimitError when a new rental of `requested` µ$/hr would take the account over its
 * limit. Locks the account row, so that concurrent rentals of one account are counted one after the
 * other; call it in the transaction that creates the rental.
 */
export async function checkSpendRate(tx: Tx, userId: number, requested: bigint, now = new Date()): Promise<void> {
  const [account] = await tx.$queryRawUnsafe<{ emailVerified: boolean; createdAt: Date }[]>(
    `SELECT email_verified AS "emailVerified", created_at AS "createdAt" FROM user_account WHERE id = $1 FOR UPDATE`,
    userId,
  );
  const limit = spendLimitMicrosPerHour(account, now);
  if (limit === null) return;
  const [{ current }] = await tx.$queryRawUnsafe<{ current: bigint }[]>(
    `SELECT coalesce(sum(CASE WHEN kind = 'ON_DEMAND' THEN price_per_gpu_hour_micros ELSE bid_per_gpu_hour_micros END * num_gpus
                         + storage_price_per_gb_month_micros * disk_gb / 720), 0)::bigint AS current
       FROM instance WHERE client_id = $1 AND intended_status = 'RUNNING'`,
    userId,
  );
  if (current + requested > limit) throw new SpendRateLimitError(limit, current, requested);
}
