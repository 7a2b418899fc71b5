/*
 * The charging rules, one place for the metering SQL, the tests and the statements to agree on.
 *
 * - GPU: price per GPU-hour × GPUs × seconds / 3600.
 * - Storage: price per GB-month × disk GB × seconds / 2,592,000: a month is 30 days (720 hours).
 * - Bandwidth: price per GB × bytes / 10^9 (decimal GB, as disks and networks count).
 *
 * Rounding: every accrual row (one stretch of time at one rate in one billing period, or one
 * period's bytes at one rate) is charged floor(exact amount) of its WHOLE quantity, recomputed from
 * its total each time it grows. Ticks charge the difference between two such floors, so rounding
 * never accumulates: each row is short of the exact amount by less than 1 µ$, whatever the number
 * of ticks, and never over it.
 *
 * The host's share of a row is amount − floor(amount × fee / 10,000) (fee in basis points, config
 * PLATFORM_FEE_BPS, default 0): 100% of every charge reaches the host unless a fee is set.
 */

export const SECONDS_PER_HOUR = 3600n;
/** A storage month: 30 days. */
export const SECONDS_PER_STORAGE_MONTH = 30n * 24n * 3600n;
export const BYTES_PER_GB = 1_000_000_000n;
/** Billing periods are UTC days: accrual rows and CHARGE/EARNING ledger entries are per period. */
export const PERIOD_SECONDS = 86_400;

export type TimeCategory = "GPU" | "STORAGE";

export function unitSeconds(category: TimeCategory): bigint {
  return category === "GPU" ? SECONDS_PER_HOUR : SECONDS_PER_STORAGE_MONTH;
}

/** µ$ charged for `seconds` of a time accrual row: floor(price × units × seconds / unit). */
export function timeAmount(category: TimeCategory, unitPriceMicros: bigint, units: number, seconds: bigint): bigint {
  return (unitPriceMicros * BigInt(units) * seconds) / unitSeconds(category);
}

/** µ$ charged for `bytes` at a price per GB. */
export function bandwidthAmount(unitPriceMicros: bigint, bytes: bigint): bigint {
  return (unitPriceMicros * bytes) / BYTES_PER_GB;
}

/** What the host earns of a row's amount under a fee in basis points. */
export function hostShare(amountMicros: bigint, feeBps: number): bigint {
  return amountMicros - (amountMicros * BigInt(feeBps)) / 10_000n;
}

/** Start (epoch seconds) of the billing period containing `epochSeconds`. */
export function periodStart(epochSeconds: number): number {
  return Math.floor(epochSeconds / PERIOD_SECONDS) * PERIOD_SECONDS;
}
