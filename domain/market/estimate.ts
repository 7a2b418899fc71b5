import { z } from "zod";
import { config } from "../../infra/config.ts";
import { prisma } from "../../infra/db.ts";
import { Prisma } from "../../prisma/generated/client/client.ts";
import { SECONDS_PER_HOUR, SECONDS_PER_STORAGE_MONTH } from "../billing/rates.ts";
import { meteredUntilSql } from "../billing/metering.ts";
import { parseInput } from "../validation.ts";
import { dayStart } from "./sampler.ts";
import { DAY_MS } from "../time.ts";

/** The estimate looks at the last this many whole days (UTC). */
export const ESTIMATE_WINDOW_DAYS = 28;

const specsSchema = z.object({
  gpuName: z.string().trim().min(1).max(100),
  numGpus: z.number().int().min(1).max(64),
});

export type EstimateSource = "EARNINGS" | "PRICE_HISTORY" | "NONE";

export interface EarningsEstimate {
  gpuName: string;
  numGpus: number;
  windowDays: number;
  source: EstimateSource;
  /** Machines the EARNINGS estimate is taken from. */
  similarMachines: number;
  /** Host's share per day for `numGpus` GPUs: median, and the 25th and 75th percentiles of the machines. */
  perDayMicros: bigint | null;
  perDayLowMicros: bigint | null;
  perDayHighMicros: bigint | null;
  /** Share of the model's GPU time rented over the window (price history). */
  utilization: number | null;
}

/*
 * What a machine of these specs would have earned per day over the last ESTIMATE_WINDOW_DAYS:
 * - EARNINGS: similar machines (same GPU model, half to twice the GPUs) that earned anything in the
 *   window, from their accrual rows (GPU, storage and bandwidth, open rows up to the metering
 *   clock, as the statements count them), host share after PLATFORM_FEE_BPS; each machine's
 *   earnings per GPU per day (its days in the window: since its creation), scaled to numGpus;
 *   median and quartiles over the machines.
 * - PRICE_HISTORY when no similar machine earned anything: the model's average on-demand price per
 *   GPU-hour × 24 × its utilization over the window (daily rollups) × numGpus, host share. It
 *   ignores interruptible rentals' lower prices, so it is an upper-side guess; no quartiles.
 * - NONE: neither.
 */
export async function earningsEstimate(specs: { gpuName: string; numGpus: number }, now = new Date()): Promise<EarningsEstimate> {
  const { gpuName, numGpus } = parseInput(specsSchema, specs);
  const end = dayStart(now);
  const start = new Date(end.getTime() - ESTIMATE_WINDOW_DAYS * DAY_MS);
  const feeBps = BigInt(config().PLATFORM_FEE_BPS);
  const [ledger] = await prisma.$queryRaw<{ machines: bigint; p25: number | null; p50: number | null; p75: number | null }[]>`
    WITH peers AS (
       SELECT id, num_gpus, greatest(1, extract(epoch FROM ${end}::timestamptz - greatest(${start}::timestamptz, created_at)) / 86400) AS days
         FROM machine
        WHERE gpu_name = ${gpuName} AND num_gpus BETWEEN ceil(${numGpus}::int / 2.0) AND ${numGpus}::int * 2 AND created_at < ${end}::timestamptz
     ),
     amounts AS (
       SELECT a.machine_id, coalesce(a.amount_micros,
                (a.unit_price_micros * a.units * coalesce(a.seconds, greatest(${Prisma.raw(meteredUntilSql("a.client_id"))} - floor(extract(epoch FROM a.started_at))::bigint, 0)))
                / CASE a.category WHEN 'GPU' THEN ${SECONDS_PER_HOUR}::int ELSE ${SECONDS_PER_STORAGE_MONTH}::int END) AS amount
         FROM time_accrual a
        WHERE a.machine_id IN (SELECT id FROM peers) AND a.period_start >= ${start}::timestamptz AND a.period_start < ${end}::timestamptz
       UNION ALL
       SELECT b.machine_id, b.amount_micros FROM bandwidth_accrual b
        WHERE b.machine_id IN (SELECT id FROM peers) AND b.period_start >= ${start}::timestamptz AND b.period_start < ${end}::timestamptz
     ),
     per_gpu_day AS (
       SELECT (sum(x.amount - x.amount * ${feeBps}::bigint / 10000)::float8 / s.days / s.num_gpus) AS v
         FROM amounts x JOIN peers s ON s.id = x.machine_id GROUP BY s.id, s.days, s.num_gpus HAVING sum(x.amount) > 0
     )
     SELECT count(*) AS machines, percentile_cont(0.25) WITHIN GROUP (ORDER BY v) AS p25,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50, percentile_cont(0.75) WITHIN GROUP (ORDER BY v) AS p75
       FROM per_gpu_day`;
  const [history] = await prisma.$queryRaw<{ avgPrice: bigint | null; utilization: number | null }[]>`
    SELECT (sum(price_sum) / nullif(sum(price_count), 0))::bigint AS "avgPrice",
           sum(gpus_rented_sum)::float8 / nullif(sum(gpus_total_sum), 0) AS utilization
      FROM price_rollup_day WHERE gpu_name = ${gpuName} AND bucket_start >= ${start} AND bucket_start < ${end}`;
  const base = { gpuName, numGpus, windowDays: ESTIMATE_WINDOW_DAYS, utilization: history?.utilization ?? null };
  const scaled = (perGpuDay: number | null) => (perGpuDay === null ? null : BigInt(Math.round(perGpuDay * numGpus)));
  if (ledger && ledger.machines > 0n) {
    return {
      ...base,
      source: "EARNINGS",
      similarMachines: Number(ledger.machines),
      perDayMicros: scaled(ledger.p50),
      perDayLowMicros: scaled(ledger.p25),
      perDayHighMicros: scaled(ledger.p75),
    };
  }
  if (history?.avgPrice != null && history.utilization != null) {
    const gross = BigInt(Math.round(Number(history.avgPrice) * 24 * history.utilization * numGpus));
    return {
      ...base,
      source: "PRICE_HISTORY",
      similarMachines: 0,
      perDayMicros: gross - (gross * feeBps) / 10_000n,
      perDayLowMicros: null,
      perDayHighMicros: null,
    };
  }
  return { ...base, source: "NONE", similarMachines: 0, perDayMicros: null, perDayLowMicros: null, perDayHighMicros: null };
}
