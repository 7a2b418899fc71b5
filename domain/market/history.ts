import { z } from "zod";
import { onReadReplica } from "../../infra/replica.ts";
import { parseInput } from "../validation.ts";
import { SNAPSHOT_SQL } from "./sampler.ts";
import { DAY_MS } from "../time.ts";

export type PriceBucket = "MINUTE" | "HOUR" | "DAY";

/**
 * Where each bucket size is served from, and the longest range it may be asked for: about 2,000
 * points at most, which a chart can show and a response carries in well under 100 ms; a longer
 * view asks for the next bucket size.
 */
const BUCKETS: Record<PriceBucket, { table: string; maxDays: number }> = {
  MINUTE: { table: "price_sample", maxDays: 1 },
  HOUR: { table: "price_rollup_hour", maxDays: 92 },
  DAY: { table: "price_rollup_day", maxDays: 2000 },
};

const historySchema = z
  .object({
    gpuName: z.string().trim().min(1).max(100),
    from: z.date(),
    to: z.date(),
    bucket: z.enum(["MINUTE", "HOUR", "DAY"]),
  })
  .refine((input) => input.from < input.to, { message: "must be after `from`", path: ["to"] })
  .refine((input) => input.to.getTime() - input.from.getTime() <= BUCKETS[input.bucket].maxDays * DAY_MS, {
    message: "is too far after `from` for this bucket (MINUTE: 1 day, HOUR: 92 days, DAY: 2000 days)",
    path: ["to"],
  });

export interface PricePoint {
  time: Date;
  /** Minute samples in the bucket. */
  samples: number;
  machines: number;
  offers: number;
  gpusTotal: number;
  gpusRented: number;
  gpusAvailable: number;
  /** Rented / total GPU-minutes; null without GPUs. */
  utilization: number | null;
  minPriceMicros: bigint | null;
  p50PriceMicros: bigint | null;
  p90PriceMicros: bigint | null;
  avgPriceMicros: bigint | null;
  minBidMicros: bigint | null;
  p50BidMicros: bigint | null;
  p90BidMicros: bigint | null;
  avgBidMicros: bigint | null;
  dlperfPerDollar: number | null;
}

/** Averages over a bucket's samples: machines, offers and GPU counts are means per minute. */
const POINT_SQL = `
  SELECT bucket_start AS time, samples,
         machines_sum::float8 / samples AS machines, offers_sum::float8 / samples AS offers,
         gpus_total_sum::float8 / samples AS "gpusTotal", gpus_rented_sum::float8 / samples AS "gpusRented",
         gpus_available_sum::float8 / samples AS "gpusAvailable",
         gpus_rented_sum::float8 / nullif(gpus_total_sum, 0) AS utilization,
         price_min AS "minPriceMicros", price_p50 AS "p50PriceMicros", price_p90 AS "p90PriceMicros",
         (price_sum / nullif(price_count, 0))::bigint AS "avgPriceMicros",
         bid_min AS "minBidMicros", bid_p50 AS "p50BidMicros", bid_p90 AS "p90BidMicros",
         (bid_sum / nullif(bid_count, 0))::bigint AS "avgBidMicros",
         dlperf_per_dollar AS "dlperfPerDollar"`;

const MONEY_KEYS = [
  "minPriceMicros", "p50PriceMicros", "p90PriceMicros", "avgPriceMicros", "minBidMicros", "p50BidMicros", "p90BidMicros", "avgBidMicros",
] as const;

/**
 * One GPU model's market over [from, to) in buckets, from the table of that bucket size. Buckets
 * without samples are left out (the sampler was down, or the model was not listed). The points
 * come back as one JSON array: a day of MINUTE buckets is 1,440 rows, and decoding them cell by cell
 * cost more than the query (bench/RESULTS.md). Amounts are far below 2^53 µ$, exact as JSON numbers.
 */
export async function priceHistory(input: { gpuName: string; from: Date; to: Date; bucket: PriceBucket }): Promise<PricePoint[]> {
  const { gpuName, from, to, bucket } = parseInput(historySchema, input);
  const [{ points }] = await onReadReplica((db) =>
    db.$queryRawUnsafe<{ points: string }[]>(
      `SELECT coalesce(json_agg(p ORDER BY p.time), '[]')::text AS points
         FROM (${POINT_SQL} FROM ${BUCKETS[bucket].table}
                WHERE gpu_name = $1 AND bucket_start >= $2 AND bucket_start < $3) p`,
      gpuName,
      from,
      to,
    ),
  );
  return (JSON.parse(points) as Record<string, unknown>[]).map((point) => {
    const parsed = { ...point, time: new Date(point.time as string) } as Record<string, unknown>;
    for (const key of MONEY_KEYS) parsed[key] = point[key] === null ? null : BigInt(point[key] as number);
    return parsed as unknown as PricePoint;
  });
}

export interface GpuMarketStats extends Omit<PricePoint, "time" | "samples"> {
  gpuName: string;
  /** Listed machines all of whose GPUs are rented: they have no rentable offer but are in the market. */
  machinesFullyRented: number;
}

/** Every GPU model's market now, computed live with the sampler's definitions (sampler.ts). */
export async function marketStats(now = new Date()): Promise<GpuMarketStats[]> {
  return onReadReplica((db) =>
    db.$queryRawUnsafe<GpuMarketStats[]>(
      `${POINT_SQL}, gpu_name AS "gpuName", machines_fully_rented::int AS "machinesFullyRented"
         FROM (${SNAPSHOT_SQL}) s ORDER BY gpu_name`,
      now,
    ),
  );
}
