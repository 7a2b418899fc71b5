import { z } from "zod";
import { onReadReplica } from "../../infra/replica.ts";
import { Prisma } from "../../prisma/generated/client/client.ts";
import { parseInput } from "../validation.ts";
import { snapshotSql } from "./sampler.ts";
import { DAY_MS } from "../time.ts";

export type PriceBucket = "MINUTE" | "HOUR" | "DAY";

/** Where each bucket size is served from. */
const TABLES: Record<PriceBucket, string> = { MINUTE: "price_sample", HOUR: "price_rollup_hour", DAY: "price_rollup_day" };

type MaxDays = Record<PriceBucket, number>;

/**
 * The longest range each bucket size may be asked for. As points (objects) about 2,000 at most,
 * which a response carries in well under 100 ms; as a series (parallel arrays, a tenth of the
 * cost per point) about 10,000. A longer view asks for the next bucket size.
 */
const POINTS_MAX_DAYS: MaxDays = { MINUTE: 1, HOUR: 92, DAY: 2000 };
const SERIES_MAX_DAYS: MaxDays = { MINUTE: 7, HOUR: 400, DAY: 2000 };

const days = (n: number) => `${n} day${n === 1 ? "" : "s"}`;

function rangeSchema(maxDays: MaxDays) {
  return z
    .object({
      gpuName: z.string().trim().min(1).max(100),
      from: z.date(),
      to: z.date(),
      bucket: z.enum(["MINUTE", "HOUR", "DAY"]),
    })
    .refine((input) => input.from < input.to, { message: "must be after `from`", path: ["to"] })
    .refine((input) => input.to.getTime() - input.from.getTime() <= maxDays[input.bucket] * DAY_MS, {
      message: `is too far after \`from\` for this bucket (MINUTE: ${days(maxDays.MINUTE)}, HOUR: ${days(maxDays.HOUR)}, DAY: ${days(maxDays.DAY)})`,
      path: ["to"],
    });
}

const historySchema = rangeSchema(POINTS_MAX_DAYS);
const seriesSchema = rangeSchema(SERIES_MAX_DAYS);

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

export interface PriceRange {
  gpuName: string;
  from: Date;
  to: Date;
  bucket: PriceBucket;
}

/** A parameterized statement; exported so that the benchmark runs the same SQL as its floor. */
export interface Statement {
  sql: string;
  values: unknown[];
}

export function priceHistoryStatement({ gpuName, from, to, bucket }: PriceRange): Statement {
  return {
    sql: `SELECT coalesce(json_agg(p ORDER BY p.time), '[]')::text AS points
            FROM (${POINT_SQL} FROM ${TABLES[bucket]}
                   WHERE gpu_name = $1 AND bucket_start >= $2 AND bucket_start < $3) p`,
    values: [gpuName, from, to],
  };
}

/**
 * One GPU model's market over [from, to) in buckets, from the table of that bucket size. Buckets
 * without samples are left out (the sampler was down, or the model was not listed). The points
 * come back as one JSON array: a day of MINUTE buckets is 1,440 rows, and decoding them cell by cell
 * cost more than the query (bench/RESULTS.md). Amounts are far below 2^53 µ$, exact as JSON numbers.
 */
export async function priceHistory(input: PriceRange): Promise<PricePoint[]> {
  const { sql, values } = priceHistoryStatement(parseInput(historySchema, input));
  const [{ points }] = await onReadReplica((db) => db.$queryRawUnsafe<{ points: string }[]>(sql, ...values));
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
    db.$queryRaw<GpuMarketStats[]>`
      ${Prisma.raw(POINT_SQL)}, gpu_name AS "gpuName", machines_fully_rented::int AS "machinesFullyRented"
        FROM (${snapshotSql(now)}) s ORDER BY gpu_name`,
  );
}

/** A series' columns and how each is computed from a bucket's row (the same definitions as POINT_SQL). */
const SERIES_COLUMNS = {
  timestamps: "extract(epoch FROM bucket_start)::float8",
  samples: "samples",
  machines: "machines_sum::float8 / samples",
  offers: "offers_sum::float8 / samples",
  gpusTotal: "gpus_total_sum::float8 / samples",
  gpusRented: "gpus_rented_sum::float8 / samples",
  gpusAvailable: "gpus_available_sum::float8 / samples",
  utilization: "gpus_rented_sum::float8 / nullif(gpus_total_sum, 0)",
  minPrice: "price_min",
  p50Price: "price_p50",
  p90Price: "price_p90",
  avgPrice: "(price_sum / nullif(price_count, 0))::bigint",
  minBid: "bid_min",
  p50Bid: "bid_p50",
  p90Bid: "bid_p90",
  avgBid: "(bid_sum / nullif(bid_count, 0))::bigint",
  dlperfPerDollar: "dlperf_per_dollar",
} as const;

export type SeriesColumn = keyof typeof SERIES_COLUMNS;
export const SERIES_COLUMN_NAMES = Object.keys(SERIES_COLUMNS) as SeriesColumn[];
export const MONEY_SERIES_COLUMNS = ["minPrice", "p50Price", "p90Price", "avgPrice", "minBid", "p50Bid", "p90Bid", "avgBid"] as const;
type MoneySeriesColumn = (typeof MONEY_SERIES_COLUMNS)[number];

/**
 * The asked columns of a series, each one value per bucket with samples, in time order. Amounts are
 * micro-dollars as JSON numbers, exact (prices are bounded far below 2^53 µ$) and serialized as Money
 * as they come: converting 50,000 of them to bigint cost more than formatting them.
 */
export type NullableSeriesColumn = MoneySeriesColumn | "utilization" | "dlperfPerDollar";
export type PriceSeries = { gpuName: string; bucket: PriceBucket } & Partial<
  { [C in MoneySeriesColumn]: (number | null)[] } & { utilization: (number | null)[]; dlperfPerDollar: (number | null)[] } & {
    [C in Exclude<SeriesColumn, NullableSeriesColumn>]: number[];
  }
>;

/**
 * The columns asked for as one JSON object of arrays: one row, one JSON value to decode, and only
 * the columns the caller selects. The aggregates read a subquery sorted by time (PostgreSQL feeds
 * an aggregate without its own ORDER BY in its input's order), so the arrays line up with one sort.
 */
export function priceSeriesStatement({ gpuName, from, to, bucket }: PriceRange, columns: readonly SeriesColumn[]): Statement {
  const asked = columns.length ? columns : (["timestamps"] as const);
  return {
    sql: `SELECT json_build_object(${asked.map((column) => `'${column}', coalesce(json_agg(s."${column}"), '[]')`).join(", ")})::text AS series
            FROM (SELECT ${asked.map((column) => `${SERIES_COLUMNS[column]} AS "${column}"`).join(", ")}
                    FROM ${TABLES[bucket]}
                   WHERE gpu_name = $1 AND bucket_start >= $2 AND bucket_start < $3
                   ORDER BY bucket_start) s`,
    values: [gpuName, from, to],
  };
}

/**
 * One GPU model's market over [from, to) as parallel arrays, the `columns` asked for: ranges five
 * times longer than priceHistory's at a fraction of the cost per point (no object per point).
 * Buckets without samples are left out, as in priceHistory.
 */
export async function priceSeries(input: PriceRange, columns: readonly SeriesColumn[]): Promise<PriceSeries> {
  const range = parseInput(seriesSchema, input);
  const { sql, values } = priceSeriesStatement(range, columns);
  const [{ series }] = await onReadReplica((db) => db.$queryRawUnsafe<{ series: string }[]>(sql, ...values));
  const parsed = JSON.parse(series) as Record<SeriesColumn, (number | null)[]>;
  const result: Record<string, unknown> = { gpuName: range.gpuName, bucket: range.bucket };
  for (const column of columns) result[column] = parsed[column];
  return result as PriceSeries;
}
