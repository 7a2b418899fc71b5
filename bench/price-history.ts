/**
 * Pricing history benchmark: `npx tsx bench/price-history.ts` (not part of the test suite).
 *
 * Creates a fresh database on DATABASE_URL's server, migrates it, writes BENCH_DAYS (default 90)
 * days of minute samples for BENCH_MODELS (default 50) GPU models straight into price_sample with
 * set-based SQL (generate_series; 90 × 1440 × 50 = 6.48M rows), rolls them up to hours and days
 * with the sampler's own rollUp, starts the real app (buildApp) in a child process and asks
 * priceHistory over HTTP, one request at a time, for a random model at each bucket size:
 * DAY over the whole range, HOUR over the whole range, MINUTE over the last day (the longest MINUTE
 * range allowed). Prints p50/p99 per bucket size (target p99 ≤ 100 ms).
 *
 * Env: DATABASE_URL (server), REDIS_URL, BENCH_DAYS, BENCH_MODELS, BENCH_REQUESTS (per bucket
 * size, default 200), BENCH_KEEP=1 keeps the database, BENCH_DATABASE=<name> reuses a kept one.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { openBenchDatabase, percentile, startAppProcess } from "./support.ts";
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

const QUERY = /* GraphQL */ `
  query ($gpuName: String!, $from: DateTime!, $to: DateTime!, $bucket: PriceBucket!) {
    priceHistory(gpuName: $gpuName, from: $from, to: $to, bucket: $bucket) { time minPrice p50Price p90Price avgPrice p50Bid utilization }
  }
`;

async function request(url: string, variables: Record<string, unknown>): Promise<{ ms: number; points: number }> {
  const t0 = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: QUERY, variables }),
  });
  const body = (await response.json()) as { data?: { priceHistory: unknown[] }; errors?: unknown };
  const ms = performance.now() - t0;
  if (!body.data) throw new Error(JSON.stringify(body.errors));
  return { ms, points: body.data.priceHistory.length };
}

async function main(): Promise<void> {
  const database = await openBenchDatabase(SERVER_URL, "bench_prices");
  const databaseUrl = database.url;
  let server: ChildProcess | undefined;
  try {
    console.log(`Load average before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const t0 = performance.now();
    const { from, to } = database.fresh
      ? await seed()
      : { to: new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS), from: new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - DAYS * DAY_MS) };
    console.log(`Seeded ${DAYS} days × ${MODELS} models in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const started = await startAppProcess(databaseUrl);
    server = started.child;
    const ranges: [string, { from: Date; to: Date }][] = [
      ["DAY", { from, to }],
      ["HOUR", { from, to }],
      ["MINUTE", { from: new Date(to.getTime() - DAY_MS), to }],
    ];
    const rows: string[] = [];
    for (const [bucket, range] of ranges) {
      const variables = (i: number) => ({ gpuName: gpuName(1 + (i % MODELS)), from: range.from.toISOString(), to: range.to.toISOString(), bucket });
      for (let i = 0; i < 20; i++) await request(started.url, variables(i * 7)); // warm-up
      const times: number[] = [];
      let points = 0;
      for (let i = 0; i < REQUESTS; i++) {
        const result = await request(started.url, variables(i * 13));
        times.push(result.ms);
        points = result.points;
      }
      times.sort((a, b) => a - b);
      const days = (range.to.getTime() - range.from.getTime()) / DAY_MS;
      rows.push(`| ${bucket} | ${days} days | ${points} | ${REQUESTS} | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 99).toFixed(1)} |`);
    }
    console.log(`\nMachine: ${availableParallelism()} cores (${cpus()[0].model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; load average after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    console.log(`${DAYS} days × ${MODELS} models of minute samples; one request at a time, 7 fields per point\n`);
    console.log("| bucket | range | points | requests | p50 ms | p99 ms |");
    console.log("|---|---|---:|---:|---:|---:|");
    for (const row of rows) console.log(row);
  } finally {
    server?.kill("SIGTERM");
    if (server) await once(server, "exit");
    await database.release();
  }
}

await main();
