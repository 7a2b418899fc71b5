/**
 * Pricing history benchmark: `npx tsx bench/price-history.ts` (not part of the test suite).
 *
 * Creates a fresh database on DATABASE_URL's server, migrates it, writes BENCH_DAYS (default 90)
 * days of minute samples for BENCH_MODELS (default 50) GPU models straight into price_sample with
 * set-based SQL (generate_series; 90 × 1440 × 50 = 6.48M rows), rolls them up to hours and days
 * with the sampler's own rollUp, starts the real app (buildApp) in a child process with the V8 flags
 * of `npm start` and asks priceHistory (points) and priceSeries (parallel arrays) over HTTP, one
 * request at a time, for a model in turn: points by DAY and HOUR over the whole range and by MINUTE
 * over the last day; the series by MINUTE over 1, 3 and 7 days (1,440 / 4,320 / 10,080 points) and
 * by HOUR over 92 days.
 * Beside each, its floor: the resolver's own statement alone through `pg`, interleaved with the
 * product's requests. Prints p50/p99 of both and their ratio, and the MINUTE series' curve over its
 * three sizes with the growth exponent of each.
 *
 * Env: DATABASE_URL (server), REDIS_URL, BENCH_DAYS, BENCH_MODELS, BENCH_REQUESTS (per bucket
 * size, default 200), BENCH_KEEP=1 keeps the database, BENCH_DATABASE=<name> reuses a kept one.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import pg from "pg";
import { API_NODE_ARGS, openBenchDatabase, percentile, printCurve, startAppProcess } from "./support.ts";
import type { PriceBucket, SeriesColumn } from "../domain/market/history.ts";
import { DAY_MS } from "../domain/time.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const DAYS = Number(process.env.BENCH_DAYS ?? 90);
const MODELS = Number(process.env.BENCH_MODELS ?? 50);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const CHUNK_DAYS = 10;

const gpuName = (i: number) => `GPU ${String(i).padStart(2, "0")}`;

/** Minute samples over [from, to) for every model: prices around a per-model level with a daily wave, random utilization. */
const SAMPLES_SQL = `
  INSERT INTO price_sample
  SELECT t, 'GPU ' || lpad(g::text, 2, '0'), 1, m, m * 3, m * 8, rented, m * 8 - rented,
         base * 8 / 10, base, base * 13 / 10, base * m, m,
         CASE WHEN rented > 0 THEN base / 3 END, CASE WHEN rented > 0 THEN base / 2 END, CASE WHEN rented > 0 THEN base * 7 / 10 END,
         CASE WHEN rented > 0 THEN base / 2 * (rented / 4 + 1) ELSE 0 END, CASE WHEN rented > 0 THEN rented / 4 + 1 ELSE 0 END,
         100 + g
    FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') t
   CROSS JOIN generate_series(1, $3::int) g
   CROSS JOIN LATERAL (SELECT 20 + g AS m,
                              (50000 * g * (1 + 0.1 * sin(extract(epoch FROM t) / 86400 * 6.2832)) + random() * 20000)::bigint AS base,
                              floor(random() * (20 + g) * 8)::int AS rented) x`;

async function seed(): Promise<{ from: Date; to: Date }> {
  const { prisma } = await import("../infra/db.ts");
  const { ensurePartitions, rollUp, dayStart } = await import("../domain/market/sampler.ts");
  const to = dayStart(new Date());
  const from = new Date(to.getTime() - DAYS * DAY_MS);
  await prisma.$transaction((tx) => ensurePartitions(tx, from, new Date(to.getTime() + DAY_MS)));
  for (let start = from.getTime(); start < to.getTime(); start += CHUNK_DAYS * DAY_MS) {
    const a = new Date(start);
    const b = new Date(Math.min(start + CHUNK_DAYS * DAY_MS, to.getTime()));
    const t0 = performance.now();
    await prisma.$executeRawUnsafe(SAMPLES_SQL, a, b, MODELS);
    const t1 = performance.now();
    await rollUp(prisma, "hour", a, b);
    await rollUp(prisma, "day", a, b);
    console.log(`${a.toISOString().slice(0, 10)}…: samples ${((t1 - t0) / 1000).toFixed(1)} s, rollups ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  }
  await prisma.$executeRawUnsafe("ANALYZE price_sample; ANALYZE price_rollup_hour; ANALYZE price_rollup_day");
  await prisma.$disconnect();
  return { from, to };
}

const ARGS = "$gpuName: String!, $from: DateTime!, $to: DateTime!, $bucket: PriceBucket!";
const RANGE = "gpuName: $gpuName, from: $from, to: $to, bucket: $bucket";
/** The same seven figures per bucket both ways: as points (objects) and as a series (parallel arrays). */
const POINTS_QUERY = `query (${ARGS}) { priceHistory(${RANGE}) { time minPrice p50Price p90Price avgPrice p50Bid utilization } }`;
const SERIES_COLUMNS: SeriesColumn[] = ["timestamps", "minPrice", "p50Price", "p90Price", "avgPrice", "p50Bid", "utilization"];
const SERIES_QUERY = `query (${ARGS}) { priceSeries(${RANGE}) { ${SERIES_COLUMNS.join(" ")} } }`;

interface Case {
  field: "priceHistory" | "priceSeries";
  bucket: PriceBucket;
  days: number;
}

/** One request over HTTP; the body is checked, not parsed (parsing 10k points would load the shared cores). */
async function request(url: string, query: string, variables: Record<string, unknown>): Promise<number> {
  const t0 = performance.now();
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  const text = await response.text();
  const ms = performance.now() - t0;
  if (!text.startsWith('{"data":{"price') || text.includes('"errors"')) throw new Error(text.slice(0, 500));
  return ms;
}

function summary(times: number[]): { p50: number; p99: number } {
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function main(): Promise<void> {
  const database = await openBenchDatabase(SERVER_URL, "bench_prices");
  const databaseUrl = database.url;
  let server: ChildProcess | undefined;
  const floorClient = new pg.Client({ connectionString: databaseUrl });
  try {
    console.log(`Load average before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const t0 = performance.now();
    const { to } = database.fresh ? await seed() : { to: new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS) };
    console.log(`Seeded ${DAYS} days × ${MODELS} models in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Imported once DATABASE_URL names the bench database (the module's imports read the config).
    const { priceHistoryStatement, priceSeriesStatement } = await import("../domain/market/history.ts");
    const started = await startAppProcess(databaseUrl);
    server = started.child;
    await floorClient.connect();
    const cases: Case[] = [
      { field: "priceHistory", bucket: "DAY", days: DAYS },
      { field: "priceHistory", bucket: "HOUR", days: Math.min(DAYS, 92) },
      { field: "priceHistory", bucket: "MINUTE", days: 1 },
      { field: "priceSeries", bucket: "MINUTE", days: 1 },
      { field: "priceSeries", bucket: "MINUTE", days: Math.min(DAYS, 3) },
      { field: "priceSeries", bucket: "MINUTE", days: Math.min(DAYS, 7) },
      { field: "priceSeries", bucket: "HOUR", days: Math.min(DAYS, 92) },
    ];
    const rows: string[] = [];
    const seriesCurve: { points: number; product: number; floor: number }[] = [];
    for (const { field, bucket, days } of cases) {
      const rangeFrom = new Date(to.getTime() - days * DAY_MS);
      const range = (i: number) => ({ gpuName: gpuName(1 + (i % MODELS)), from: rangeFrom, to, bucket });
      const query = field === "priceHistory" ? POINTS_QUERY : SERIES_QUERY;
      // The floor: the statement the resolver runs, through pg, its one text cell received and not decoded.
      const statement = (i: number) => (field === "priceHistory" ? priceHistoryStatement(range(i)) : priceSeriesStatement(range(i), SERIES_COLUMNS));
      const viaApi = (i: number) => {
        const { from: f, to: t, ...rest } = range(i);
        return request(started.url, query, { ...rest, from: f.toISOString(), to: t.toISOString() });
      };
      const viaSql = async (i: number) => {
        const { sql, values } = statement(i);
        const t1 = performance.now();
        await floorClient.query(sql, values);
        return performance.now() - t1;
      };
      for (let i = 0; i < 10; i++) await Promise.all([viaApi(i * 7), viaSql(i * 7)]); // warm-up
      const product: number[] = [];
      const floor: number[] = [];
      // Interleaved, one request at a time, so that both paths see the same moments of a noisy box.
      for (let i = 0; i < REQUESTS; i++) {
        product.push(await viaApi(i * 13));
        floor.push(await viaSql(i * 13));
      }
      const points = (await floorClient.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${bucket === "MINUTE" ? "price_sample" : bucket === "HOUR" ? "price_rollup_hour" : "price_rollup_day"} WHERE gpu_name = $1 AND bucket_start >= $2 AND bucket_start < $3`,
        [gpuName(1), rangeFrom, to],
      )).rows[0].n;
      const p = summary(product);
      const f = summary(floor);
      if (field === "priceSeries" && bucket === "MINUTE") seriesCurve.push({ points, product: p.p50, floor: f.p50 });
      rows.push(
        `| ${field} | ${bucket} | ${days} days | ${points} | ${p.p50.toFixed(1)} | ${p.p99.toFixed(1)} | ${f.p50.toFixed(1)} | ${f.p99.toFixed(1)} | ${(p.p50 / f.p50).toFixed(2)} | ${(p.p99 / f.p99).toFixed(2)} |`,
      );
      console.log(rows.at(-1));
    }
    console.log(`\nMachine: ${availableParallelism()} cores (${cpus()[0].model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; load average after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    console.log(`${DAYS} days × ${MODELS} models of minute samples; one request at a time (${REQUESTS} per row), 7 figures per point;`);
    console.log(`product = GraphQL over HTTP against the app in its own process (node ${API_NODE_ARGS.join(" ")}); floor = the resolver's SQL alone through pg\n`);
    console.log("| field | bucket | range | points | product p50 ms | product p99 ms | floor p50 ms | floor p99 ms | ratio p50 | ratio p99 |");
    console.log("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (const row of rows) console.log(row);
    console.log("\nThe MINUTE series' curve: growth exponent (log-log slope) of p50 between its sizes\n");
    printCurve("points", seriesCurve.map(({ points, product, floor }) => ({ size: points, product, floor })));
  } finally {
    await floorClient.end().catch(() => {});
    server?.kill("SIGTERM");
    if (server) await once(server, "exit");
    await database.release();
  }
}

await main();
