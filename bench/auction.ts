/**
 * Auction benchmark: `npx tsx bench/auction.ts` (not part of the test suite).
 *
 * Creates a fresh database on DATABASE_URL's server, migrates it, lists 1,000 machines of 8 GPUs
 * (offers written by the real syncOffers), starts the real API (buildApp) and the real auction
 * worker (startAuctionWorker) in two child processes, and places 20,000 bids through the API
 * (createInstance with bidPricePerGpuHour) at concurrency 32: random machines, chunk sizes and
 * prices. Prints bids per second end to end (first request sent to last bid cleared) and the
 * p50/p99 latency from sending a bid to its cleared status (SCHEDULING → LOADING or PAUSED, taken
 * when the clearing job that moved it completed, after its commit).
 *
 * Also prints the CPU each process spent per bid and the SQL statements per bid and per clearing
 * (counted at the pg driver in the API and worker processes).
 *
 * Floor: the seeded database is cloned before the run; the same plan then runs on the clone as
 * hand-written admission and clearing SQL from this process through bare pg clients at the same
 * concurrency (bench/auction-floor.ts). Prints its bids/s and p50/p99 beside the product's, and the ratios.
 *
 * Curve: the whole run (fresh database, product, floor) at each machine count of BENCH_MACHINES, one
 * after the other with the same bid plan size, then bids/s and p99 of product and floor against the
 * machine count with their growth exponents.
 *
 * Env: DATABASE_URL (server; default local postgres), REDIS_URL, BENCH_BIDS (20000),
 * BENCH_MACHINES (100,1000,10000: a comma-separated list), BENCH_CONCURRENCY (32), BENCH_WORKER_CONCURRENCY (the worker's own), BENCH_API_PROCESSES (1:
 * more run the API as a node:cluster of that many processes sharing the port, as a stateless API
 * is deployed on a multi-core host), BENCH_KEEP=1 keeps the database.
 */
import { type ChildProcess, fork } from "node:child_process";
import cluster from "node:cluster";
import { once } from "node:events";
import { availableParallelism, cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";
import { runAuctionFloor } from "./auction-floor.ts";
import { AUCTION_GPUS, auctionBidPlan, placeBids, seedAuction, warmUp } from "./auction-load.ts";
import { API_NODE_ARGS, percentile, printCurve, productionEnv } from "./support.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const BIDS = Number(process.env.BENCH_BIDS ?? 20_000);
const SIZES = (process.env.BENCH_MACHINES ?? "100,1000,10000").split(",").map(Number);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const WORKER_CONCURRENCY = process.env.BENCH_WORKER_CONCURRENCY ? Number(process.env.BENCH_WORKER_CONCURRENCY) : undefined;
const API_PROCESSES = Number(process.env.BENCH_API_PROCESSES ?? 1);
const self = fileURLToPath(import.meta.url);

/** CPU milliseconds a process spent, and the SQL statements it sent. */
interface Usage {
  cpuMs: number;
  statements: number;
}
/** One size's figures, product and floor. */
interface SizeResult {
  machines: number;
  rate: number;
  floorRate: number;
  p99: number;
  floorP99: number;
}
type Message =
  | { url: string }
  | { ready: true }
  | { cleared: [number, number][]; jobs: number; usage: Usage }
  | { usage: Usage }
  | { result: SizeResult };

// Every statement of the Prisma pg adapter goes through pg's Client#query (BEGIN and COMMIT too).
let statements = 0;
const clientQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return (clientQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof clientQuery;

let cpuStart = process.cpuUsage();
function usage(): Usage {
  const { user, system } = process.cpuUsage(cpuStart);
  return { cpuMs: (user + system) / 1000, statements };
}
/** Starts counting from now (after seeding and start-up). */
function resetUsage(): void {
  cpuStart = process.cpuUsage();
  statements = 0;
}




// ---- Child roles -------------------------------------------------------------------------------

/**
 * The API: one process, or a node:cluster primary whose workers share its port (listen(0) in a
 * cluster gives every worker the same port). Each process answers "usage" with its own figures.
 */
async function runApi(): Promise<void> {
  if (API_PROCESSES > 1 && cluster.isPrimary) {
    const workers = Array.from({ length: API_PROCESSES }, () => cluster.fork());
    const urls = await Promise.all(workers.map(async (w) => ((await once(w, "message"))[0] as { url: string }).url));
    process.on("message", async () => {
      const replies = workers.map((w) => once(w, "message").then(([m]) => (m as { usage: Usage }).usage));
      for (const w of workers) w.send("usage");
      const all = await Promise.all(replies);
      process.send!({ usage: { cpuMs: all.reduce((a, u) => a + u.cpuMs, 0), statements: all.reduce((a, u) => a + u.statements, 0) } } satisfies Message);
    });
    process.on("SIGTERM", () => {
      for (const w of workers) w.kill("SIGTERM");
      process.exit(0);
    });
    process.send!({ url: urls[0] } satisfies Message);
    return;
  }
  const { buildApp } = await import("../api/app.ts");
  const app = buildApp();
  const url = await app.start(0);
  resetUsage();
  process.on("message", () => process.send!({ usage: usage() } satisfies Message));
  process.once("SIGTERM", () => process.exit(0)); // an orderly exit (writes --cpu-prof profiles)
  process.send!({ url } satisfies Message);
}

async function runWorker(): Promise<void> {
  const { startAuctionWorker } = await import("../workers/auction.ts");
  const auction = await startAuctionWorker({ concurrency: WORKER_CONCURRENCY });
  const cleared = new Map<number, number>();
  let jobs = 0;
  auction.worker.on("completed", (_job, ids: number[]) => {
    jobs++;
    const now = Date.now();
    for (const id of ids) if (!cleared.has(id)) cleared.set(id, now);
  });
  resetUsage();
  process.on("message", () => process.send!({ cleared: [...cleared], jobs, usage: usage() } satisfies Message));
  process.once("SIGTERM", () => process.exit(0));
  process.send!({ ready: true } satisfies Message);
}

// ---- Orchestrator ------------------------------------------------------------------------------

function startChild(role: string, env: NodeJS.ProcessEnv, args: string[] = []): { child: ChildProcess; first: Promise<Message> } {
  // The API with production's V8 flags (npm start); BENCH_CHILD_NODE_ARGS for every child (e.g. --cpu-prof).
  const nodeArgs = [...(role === "api" ? API_NODE_ARGS : []), ...(process.env.BENCH_CHILD_NODE_ARGS?.split(" ") ?? [])];
  const child = fork(self, [role, ...args], { env, execArgv: [...nodeArgs, "--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const first = once(child, "message").then(([message]) => message as Message);
  return { child, first };
}

/** One size: a fresh database of `machines` machines, the product's run on it and the floor's on its clone. */
async function runSize(machines: number): Promise<SizeResult> {
  const database = `bench_auction_${Date.now().toString(36)}`;
  await adminQuery(SERVER_URL, `CREATE DATABASE ${database}`);
  const databaseUrl = withDatabase(SERVER_URL, database);
  // Before any project module reads the config.
  process.env.DATABASE_URL = databaseUrl;
  process.env.REDIS_PREFIX = database;
  const { migrate } = await import("../infra/migrate.ts");
  await migrate(databaseUrl);
  const seedStart = Date.now();
  const keys = await seedAuction(machines, CONCURRENCY);
  console.log(`seeded ${machines} machines of ${AUCTION_GPUS} GPUs in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);
  // The floor's copy of the seeded state (seeding closed its connections, as TEMPLATE requires).
  const floorDatabase = `${database}_floor`;
  await adminQuery(SERVER_URL, `CREATE DATABASE ${floorDatabase} TEMPLATE ${database}`);

  const env = productionEnv({ DATABASE_URL: databaseUrl, REDIS_PREFIX: database, LOG_LEVEL: "warn" });
  const api = startChild("api", env);
  const worker = startChild("worker", env);
  const { url } = (await api.first) as { url: string };
  await worker.first;

  const plan = auctionBidPlan(BIDS, machines);
  const report = async <T extends Message>(child: ChildProcess): Promise<T> => {
    const reply = once(child, "message");
    child.send("report");
    return (await reply)[0] as T;
  };
  await warmUp(url, keys);
  // Usage from here on: seeding and start-up are not the benchmark.
  const [apiBefore, workerBefore] = await Promise.all([report<{ usage: Usage }>(api.child), report<{ usage: Usage; jobs: number }>(worker.child)]);
  const loadCpuStart = process.cpuUsage();
  const loadBefore = loadavg();
  const started = Date.now();
  const { sentAt, failures } = await placeBids(url, keys, plan);
  const placedMs = Date.now() - started;
  const loadCpu = process.cpuUsage(loadCpuStart);

  // Wait for every bid to be cleared (the times were taken by the worker as the clearings completed).
  let cleared = new Map<number, number>();
  let workerAfter: { usage: Usage; jobs: number };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const message = await report<{ cleared: [number, number][]; usage: Usage; jobs: number }>(worker.child);
    cleared = new Map(message.cleared);
    workerAfter = message;
    if ([...sentAt.keys()].every((id) => cleared.has(id)) || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const apiAfter = await report<{ usage: Usage }>(api.child);
  const latencies = [...sentAt].filter(([id]) => cleared.has(id)).map(([id, t0]) => cleared.get(id)! - t0).sort((a, b) => a - b);
  const lastCleared = Math.max(...[...sentAt.keys()].map((id) => cleared.get(id) ?? 0));
  const endToEndMs = lastCleared - started;

  const check = new pg.Client({ connectionString: databaseUrl });
  await check.connect();
  const { rows } = await check.query<{ status: string; n: string }>("SELECT status, count(*) AS n FROM instance GROUP BY status ORDER BY status");
  const overbooked = await check.query(
    `SELECT m.id FROM machine m JOIN instance i ON i.machine_id = m.id AND i.status IN ('LOADING', 'RUNNING')
      GROUP BY m.id, m.num_gpus HAVING sum(i.num_gpus) > m.num_gpus`,
  );
  await check.end();

  console.log(`load average: ${loadBefore.map((l) => l.toFixed(2)).join(" ")} at the start, ${loadavg().map((l) => l.toFixed(2)).join(" ")} at the end`);
  console.log(
    `machine: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? "?"}); API (${API_PROCESSES} process${API_PROCESSES > 1 ? "es" : ""}, node ${API_NODE_ARGS.join(" ")}) and auction worker (concurrency ${WORKER_CONCURRENCY ?? "default"}) in separate processes`,
  );
  console.log(`bids placed: ${sentAt.size} of ${BIDS} (${failures.length} refused${failures.length ? `, first: ${failures[0]}` : ""}) at concurrency ${CONCURRENCY}`);
  console.log(`placing: ${(sentAt.size / (placedMs / 1000)).toFixed(0)} bids/s (${(placedMs / 1000).toFixed(1)} s)`);
  console.log(`end to end (first bid sent to last bid cleared): ${(sentAt.size / (endToEndMs / 1000)).toFixed(0)} bids/s (${(endToEndMs / 1000).toFixed(1)} s)`);
  console.log(`bid → cleared status: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${latencies.at(-1)} ms (${latencies.length} cleared)`);
  const n = sentAt.size;
  const jobs = workerAfter.jobs - workerBefore.jobs;
  const per = (ms: number) => (ms / n).toFixed(2);
  console.log(
    `CPU per bid: API ${per(apiAfter.usage.cpuMs - apiBefore.usage.cpuMs)} ms, worker ${per(workerAfter.usage.cpuMs - workerBefore.usage.cpuMs)} ms, load generator ${per((loadCpu.user + loadCpu.system) / 1000)} ms`,
  );
  console.log(
    `SQL statements: ${((apiAfter.usage.statements - apiBefore.usage.statements) / n).toFixed(2)} per bid in the API; ${jobs} clearings (${(n / jobs).toFixed(2)} bids each), ${((workerAfter.usage.statements - workerBefore.usage.statements) / jobs).toFixed(2)} statements per clearing`,
  );
  console.log(`final statuses: ${rows.map((r) => `${r.status} ${r.n}`).join(", ")}; machines over capacity: ${overbooked.rowCount}`);

  api.child.kill("SIGTERM");
  worker.child.kill("SIGTERM");
  await Promise.all([once(api.child, "exit"), once(worker.child, "exit")]);

  const floorUrl = withDatabase(SERVER_URL, floorDatabase);
  const accounts = new pg.Client({ connectionString: floorUrl });
  await accounts.connect();
  const clientIds = (await accounts.query<{ id: number }>("SELECT id FROM user_account WHERE email LIKE 'client%@bench.example' ORDER BY id")).rows.map((r) => r.id);
  await accounts.end();
  const floor = await runAuctionFloor(floorUrl, clientIds, plan);
  const productRate = sentAt.size / (endToEndMs / 1000);
  const floorRate = floor.admitted / (floor.elapsedMs / 1000);
  const [p50, p99, f50, f99] = [percentile(latencies, 50), percentile(latencies, 99), percentile(floor.latencies, 50), percentile(floor.latencies, 99)];
  console.log(
    `floor (hand-written admission + clearing SQL, bare pg, concurrency ${clientIds.length}): ${floorRate.toFixed(0)} bids/s (${floor.admitted} admitted, ${floor.refused} refused); bid → cleared p50 ${f50.toFixed(1)} ms, p99 ${f99.toFixed(1)} ms`,
  );
  console.log(`ratio product/floor: bids/s ${(productRate / floorRate).toFixed(2)} (goal ≥ 0.5); p50 ${(p50 / f50).toFixed(1)}x, p99 ${(p99 / f99).toFixed(1)}x (goal ≤ 3x)`);
  if (!process.env.BENCH_KEEP) {
    await adminQuery(SERVER_URL, `DROP DATABASE ${database} WITH (FORCE)`);
    await adminQuery(SERVER_URL, `DROP DATABASE ${floorDatabase} WITH (FORCE)`);
  }
  return { machines, rate: productRate, floorRate, p99, floorP99: f99 };
}

async function main(): Promise<void> {
  const results: SizeResult[] = [];
  for (const machines of SIZES) {
    console.log(`\n## ${machines} machines`);
    // Each size in a process of its own: the project's modules read DATABASE_URL once.
    const { child, first } = startChild("size", process.env, [String(machines)]);
    const exited = once(child, "exit");
    results.push(((await first) as { result: SizeResult }).result);
    await exited;
  }
  if (results.length < 2) return;
  console.log(`\nbids/s against machines (${BIDS} bids at concurrency ${CONCURRENCY}):`);
  printCurve("machines", results.map((r) => ({ size: r.machines, product: r.rate, floor: r.floorRate })), "bids/s");
  console.log("\nbid → cleared p99 against machines:");
  printCurve("machines", results.map((r) => ({ size: r.machines, product: r.p99, floor: r.floorP99 })), "p99 ms");
}

const role = process.argv[2];
if (role === "api") await runApi();
else if (role === "worker") await runWorker();
else if (role === "size") process.send!({ result: await runSize(Number(process.argv[3])) } satisfies Message);
else await main();
