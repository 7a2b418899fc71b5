import { config } from "../../infra/config.ts";
import type { Tx } from "../../infra/db.ts";
import { Prisma } from "../../prisma/generated/client/client.ts";
import { MINUTE_MS, HOUR_MS, DAY_MS } from "../time.ts";

/*
 * The market per GPU model, sampled every minute into price_sample (daily partitions) and rolled up
 * into price_rollup_hour and price_rollup_day (prisma/migrations/20261127095000_price_history).
 * Definitions, over the LISTED machines (the ones with offer rows, fully rented ones included):
 * - offers: offer rows (chunks); machines: listed machines.
 * - GPUs total: their GPUs; rented: GPUs of their loading or running instances (capped at the
 *   machine's); available: the others, on machines that can be rented now (online, not
 *   deverified, listing not ended).
 * - On-demand price: each machine's price per GPU-hour, one value per machine: min, lower median
 *   (percentile_disc 0.5: an actual price) and p90, and sum/count for an exact average.
 * - Bids: the current bid per GPU-hour of each running interruptible instance on them: what the
 *   auction's winners pay now (an offer's winningBid is a quote for a new bidder instead).
 * - DLPerf per dollar: the median over machines of their best offer's dlperf_per_dphtotal.
 * A rollup aggregates its minute samples: min of mins, median and p90 of the minutes' medians and
 * p90s, sums of the sums (so averages and utilization stay exact), mean of DLPerf per dollar.
 */


const COLUMNS = `bucket_start, gpu_name, samples, machines_sum, offers_sum, gpus_total_sum, gpus_rented_sum, gpus_available_sum,
  price_min, price_p50, price_p90, price_sum, price_count, bid_min, bid_p50, bid_p90, bid_sum, bid_count, dlperf_per_dollar`;

/** The market at `now`, one row per GPU model, in price_sample's columns plus machines_fully_rented. */
export const snapshotSql = (now: Date) => Prisma.sql`
  WITH listed AS (
    SELECT m.id, m.gpu_name, m.num_gpus, o.offers, o.price, o.dlperf_per_dollar,
           (m.online AND m.verification <> 'DEVERIFIED' AND m.end_date > ${now}::timestamptz) AS up,
           least(coalesce(u.gpus, 0), m.num_gpus) AS rented
      FROM (SELECT machine_id, count(*) AS offers, min(price_per_gpu_micros) AS price, max(dlperf_per_dphtotal) AS dlperf_per_dollar
              FROM offer GROUP BY machine_id) o
      JOIN machine m ON m.id = o.machine_id
      LEFT JOIN (SELECT machine_id, sum(num_gpus) AS gpus FROM instance
                  WHERE status IN ('LOADING', 'RUNNING') GROUP BY machine_id) u ON u.machine_id = m.id
  ),
  bids AS (
    SELECT l.gpu_name, min(i.bid_per_gpu_hour_micros) AS bid_min,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY i.bid_per_gpu_hour_micros) AS bid_p50,
           percentile_disc(0.9) WITHIN GROUP (ORDER BY i.bid_per_gpu_hour_micros) AS bid_p90,
           sum(i.bid_per_gpu_hour_micros) AS bid_sum, count(*) AS bid_count
      FROM instance i JOIN listed l ON l.id = i.machine_id
     WHERE i.kind = 'INTERRUPTIBLE' AND i.status = 'RUNNING' AND i.bid_per_gpu_hour_micros IS NOT NULL
     GROUP BY l.gpu_name
  )
  SELECT date_trunc('minute', ${now}::timestamptz) AS bucket_start, l.gpu_name, 1 AS samples,
         count(*)::bigint AS machines_sum, sum(l.offers)::bigint AS offers_sum, sum(l.num_gpus)::bigint AS gpus_total_sum,
         sum(l.rented)::bigint AS gpus_rented_sum,
         sum(CASE WHEN l.up THEN l.num_gpus - l.rented ELSE 0 END)::bigint AS gpus_available_sum,
         min(l.price) AS price_min,
         percentile_disc(0.5) WITHIN GROUP (ORDER BY l.price) AS price_p50,
         percentile_disc(0.9) WITHIN GROUP (ORDER BY l.price) AS price_p90,
         sum(l.price)::bigint AS price_sum, count(*)::bigint AS price_count,
         b.bid_min, b.bid_p50, b.bid_p90, coalesce(b.bid_sum, 0)::bigint AS bid_sum, coalesce(b.bid_count, 0)::bigint AS bid_count,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY l.dlperf_per_dollar) AS dlperf_per_dollar,
         count(*) FILTER (WHERE l.rented >= l.num_gpus)::bigint AS machines_fully_rented
    FROM listed l LEFT JOIN bids b ON b.gpu_name = l.gpu_name
   GROUP BY l.gpu_name, b.bid_min, b.bid_p50, b.bid_p90, b.bid_sum, b.bid_count`;

export const dayStart = (time: Date) => new Date(Math.floor(time.getTime() / DAY_MS) * DAY_MS);
const partitionName = (day: Date) => `price_sample_${day.toISOString().slice(0, 10).replaceAll("-", "")}`;

/**
 * Daily partitions of price_sample from `from`'s day through `to`'s, created when missing. Under an
 * advisory lock: two workers creating the same partition would collide in the catalog.
 */
export async function ensurePartitions(db: Tx, from: Date, to: Date): Promise<void> {
  const wanted: Date[] = [];
  for (let day = dayStart(from); day <= to; day = new Date(day.getTime() + DAY_MS)) wanted.push(day);
  const existing = await db.$queryRaw<{ name: string }[]>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'price_sample'::regclass`;
  const have = new Set(existing.map((row) => row.name));
  const missing = wanted.filter((day) => !have.has(partitionName(day)));
  if (missing.length === 0) return;
  await db.$executeRaw`SELECT pg_advisory_xact_lock(727006)`;
  for (const day of missing) {
    const end = new Date(day.getTime() + DAY_MS);
    await db.$executeRawUnsafe(
      `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF price_sample
         FOR VALUES FROM ('${day.toISOString()}') TO ('${end.toISOString()}')`,
    );
  }
}

/** Drops the minute partitions wholly before `before` (retention); returns their names. */
export async function dropPartitionsBefore(db: Tx, before: Date): Promise<string[]> {
  const rows = await db.$queryRaw<{ name: string }[]>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'price_sample'::regclass ORDER BY 1`;
  const dropped = rows
    .map((row) => row.name)
    .filter((name) => {
      const match = /^price_sample_(\d{4})(\d{2})(\d{2})$/.exec(name);
      return match !== null && Date.parse(`${match[1]}-${match[2]}-${match[3]}T00:00:00Z`) + DAY_MS <= before.getTime();
    });
  for (const name of dropped) await db.$executeRawUnsafe(`DROP TABLE IF EXISTS ${name}`);
  return dropped;
}

/** Records the market of `now`'s minute; a second call in the same minute changes nothing. */
export async function sampleMarket(db: Tx, now: Date): Promise<number> {
  await ensurePartitions(db, now, new Date(now.getTime() + 2 * DAY_MS));
  const columns = Prisma.raw(COLUMNS);
  return db.$executeRaw`INSERT INTO price_sample (${columns}) SELECT ${columns} FROM (${snapshotSql(now)}) s ON CONFLICT DO NOTHING`;
}

/**
 * Recomputes the `level` rollup buckets that overlap [from, to) from their minute samples, in one
 * statement: rerunning it gives the same rows, and a bucket still filling is simply redone later.
 */
export async function rollUp(db: Tx, level: "hour" | "day", from: Date, to: Date): Promise<number> {
  const size = level === "hour" ? HOUR_MS : DAY_MS;
  const start = new Date(Math.floor(from.getTime() / size) * size);
  const end = new Date(Math.ceil(to.getTime() / size) * size);
  const columns = COLUMNS.split(",").map((column) => column.trim());
  return db.$executeRawUnsafe(
    `INSERT INTO price_rollup_${level} (${COLUMNS})
     SELECT date_trunc('${level}', bucket_start, 'UTC'), gpu_name, sum(samples), sum(machines_sum), sum(offers_sum),
            sum(gpus_total_sum), sum(gpus_rented_sum), sum(gpus_available_sum),
            min(price_min), percentile_disc(0.5) WITHIN GROUP (ORDER BY price_p50), percentile_disc(0.9) WITHIN GROUP (ORDER BY price_p90),
            sum(price_sum), sum(price_count),
            min(bid_min), percentile_disc(0.5) WITHIN GROUP (ORDER BY bid_p50), percentile_disc(0.9) WITHIN GROUP (ORDER BY bid_p90),
            sum(bid_sum), sum(bid_count), avg(dlperf_per_dollar)
       FROM price_sample WHERE bucket_start >= $1 AND bucket_start < $2
      GROUP BY 1, 2
     ON CONFLICT (gpu_name, bucket_start) DO UPDATE SET
       ${columns.slice(2).map((column) => `${column} = excluded.${column}`).join(", ")}`,
    start,
    end,
  );
}

/**
 * The sampler's minute: partitions ahead, this minute's sample, the buckets of the last hour
 * rolled up again, then retention (minute partitions and hourly rows past their days).
 */
export async function runMarketSampler(db: Tx, now = new Date()): Promise<{ sampled: number; dropped: string[] }> {
  const { PRICE_MINUTES_RETENTION_DAYS, PRICE_HOURS_RETENTION_DAYS } = config();
  const sampled = await sampleMarket(db, now);
  const end = new Date(now.getTime() + MINUTE_MS);
  await rollUp(db, "hour", new Date(now.getTime() - HOUR_MS), end);
  // An hour back: the first hour of a day still finishes the previous day's rollup.
  await rollUp(db, "day", new Date(now.getTime() - HOUR_MS), end);
  const dropped = await dropPartitionsBefore(db, new Date(now.getTime() - PRICE_MINUTES_RETENTION_DAYS * DAY_MS));
  await db.$executeRaw`DELETE FROM price_rollup_hour WHERE bucket_start < ${new Date(now.getTime() - PRICE_HOURS_RETENTION_DAYS * DAY_MS)}`;
  return { sampled, dropped };
}
