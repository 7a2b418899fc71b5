/**
 * Price and ranking of an offer. dph_total depends on the disk a client asks for (`storageGb`), so
 * search computes it per request; the offer sync stores the values for DEFAULT_STORAGE_GB so that
 * the common searches (default disk, default order) are index scans. The SQL twins of these
 * functions live in search.ts and use the same operations in the same order, so stored and
 * computed values are identical.
 */

/** The disk a search prices when the client names none: enough for a typical PyTorch image and data. */
export const DEFAULT_STORAGE_GB = 10;

/** Storage is priced per GB-month; a month is 30 days. */
export const HOURS_PER_MONTH = 720;

/** storageGb is priced in thousandths of a GB, so that the money sum stays in integers. */
export function storageMilliGb(storageGb: number): bigint {
  return BigInt(Math.round(storageGb * 1000));
}

/** GPU price for the chunk plus storage for `storageGb`, rounded to the nearest micro-dollar. */
export function dphTotalMicros(gpuDphMicros: bigint, storageCostMicros: bigint, storageGb: number): bigint {
  const divisor = BigInt(HOURS_PER_MONTH) * 1000n;
  return gpuDphMicros + (storageCostMicros * storageMilliGb(storageGb) + divisor / 2n) / divisor;
}

/** `value` per dollar-hour (dlperf_per_dphtotal, flops_per_dphtotal); a free offer counts as one micro-dollar. */
export function perDollarHour(value: number, dphMicros: bigint): number {
  return (value * 1_000_000) / Number(dphMicros > 1n ? dphMicros : 1n);
}

/**
 * The default ranking: DLPerf per dollar-hour times reliability cubed. DLPerf per dollar is what a
 * client buys; cubing reliability makes an unreliable machine pay for its interruptions roughly the
 * way they cost a client (a 0.9 machine ranks as if it cost 37% more, a 0.99 one 3% more), so a cheap
 * but flaky host does not outrank a dependable one at a similar price.
 */
export function offerScore(dlperfPerDphTotal: number, reliability: number): number {
  return dlperfPerDphTotal * (reliability * reliability * reliability);
}

/** The ranking columns the offer sync stores, for the default disk size. */
export function defaultRanking(offer: {
  gpuDphMicros: bigint;
  storageCostMicros: bigint;
  dlperf: number;
  reliability: number;
}): { dphTotalMicros: bigint; dlperfPerDphtotal: number; score: number } {
  const dph = dphTotalMicros(offer.gpuDphMicros, offer.storageCostMicros, DEFAULT_STORAGE_GB);
  const dlperfPerDphtotal = perDollarHour(offer.dlperf, dph);
  return { dphTotalMicros: dph, dlperfPerDphtotal, score: offerScore(dlperfPerDphtotal, offer.reliability) };
}
