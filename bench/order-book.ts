/**
 * Order-book subscriptions benchmark: `npx tsx bench/order-book.ts` (not part of the test suite).
 *
 * BENCH_SUBSCRIBERS (1,000) graphql-ws subscribers to `orderBook(machineId)`, spread evenly over
 * BENCH_WATCHED_MACHINES (100) of the BENCH_MACHINES (1,000) machines, while the auction benchmark's
 * load runs (bench/auction-load.ts: BENCH_BIDS bids through the API at concurrency BENCH_CONCURRENCY,
 * cleared by the real auction worker in its own process). Delivery latency = the subscriber's receipt
 * − the clearing's commit, taken in the worker process as the clearing publishes its event (right
 * after its transaction commits). A subscriber's event answers every clearing of its machine since its
 * previous event (the stream coalesces), and is timed from the earliest of them.
 *
 * Run twice on fresh databases with the same load and bids:
 * - product: the real API process serves the subscriptions (Redis event → refetch of the book →
 *   GraphQL execution → WebSocket);
 * - floor: a bare `ws` server in its own process forwards each machine's clearing event from Redis
 *   to its sockets as the same payload the product sent last for that machine: no GraphQL, no refetch.
 *
 * Prints p50/p99/max delivery for each, the ratio, and the events per clearing (at most one); then,
 * when BENCH_SUBSCRIBERS lists several counts, the p50 and p99 curves against the count with their
 * growth exponents (both phases run once per count).
 * Env: DATABASE_URL (server), REDIS_URL, BENCH_BIDS (5000), BENCH_MACHINES (1000), BENCH_CONCURRENCY
 * (32), BENCH_SUBSCRIBERS (250,500,1000: a comma-separated list), BENCH_WATCHED_MACHINES (100).
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { availableParallelism, cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import pg from "pg";
import WebSocket from "ws";
import { auctionBidPlan, placeBids, seedAuction } from "./auction-load.ts";
import { startFanoutFloor } from "./fanout-floor.ts";
import { freshBenchDatabase, leanSubscriber, percentile, printCurve, productionEnv, startAppProcess } from "./support.ts";
import { adminQuery } from "../infra/pg-admin.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const BIDS = Number(process.env.BENCH_BIDS ?? 5_000);
const MACHINES = Number(process.env.BENCH_MACHINES ?? 1_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const SUBSCRIBER_COUNTS = (process.env.BENCH_SUBSCRIBERS ?? "250,500,1000").split(",").map(Number);
/** A phase's count: each phase runs in a process of its own, given one count. */
const SUBSCRIBERS = SUBSCRIBER_COUNTS[0]!;
const WATCHED = Number(process.env.BENCH_WATCHED_MACHINES ?? 100);
const self = fileURLToPath(import.meta.url);

const ORDER_BOOK = /* GraphQL */ `
  subscription ($m: ID!) { orderBook(machineId: $m) { machineId numGpus onDemandGpus minBid clearingPrice levels { price gpus bids winningGpus } } }
`;

/** A clearing's commit: [machineId, epoch ms]. */
type Commit = [number, number];

// ---- Child roles -------------------------------------------------------------------------------

/** The real auction worker, noting when each clearing publishes its order-book event (just after its commit). */
async function runWorker(): Promise<void> {
  const commits: Commit[] = [];
  const publish = Redis.prototype.publish;
  Redis.prototype.publish = function (this: Redis, channel: string | Buffer, message: string | Buffer, ...rest: unknown[]) {
    if (String(channel).endsWith(":orderBook")) {
      const now = Date.now();
      for (const [machineId] of JSON.parse(String(message)) as [number, unknown][]) commits.push([machineId, now]);
    }
    return (publish as (...args: unknown[]) => ReturnType<Redis["publish"]>).call(this, channel, message, ...rest);
  } as Redis["publish"];
  const { startAuctionWorker } = await import("../workers/auction.ts");
  await startAuctionWorker();
  process.on("message", () => process.send!({ commits }));
  process.once("SIGTERM", () => process.exit(0));
  process.send!({ ready: true });
}

// ---- Orchestrator ------------------------------------------------------------------------------

interface Subscriber {
  machineId: number;
  /** When it was subscribed (its initial state, or the open socket for the floor). */
  readyAt: number;
  receipts: number[];
}

interface PhaseResult {
  latencies: number[];
  deliveries: number;
  clearings: number;
  /** Most events one subscriber got per clearing of its machine. */
  maxEventsPerClearing: number;
  /** Clearings after which a subscriber got no event (its machine cleared again before one came, or none came). */
  coalesced: number;
  bidsPerSecond: number;
  /** The last `next` message each watched machine's subscribers got (the floor sends these). */
  payloads: Record<string, string>;
}

function watchedMachine(index: number): number {
  return 1 + (index % WATCHED) * Math.floor(MACHINES / WATCHED);
}

function startChild(role: string, env: NodeJS.ProcessEnv): ChildProcess {
  return fork(self, [role], { env, execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
}

async function ask<T>(child: ChildProcess): Promise<T> {
  const reply = once(child, "message");
  child.send("report");
  return (await reply)[0] as T;
}

/** Each receipt timed from the earliest clearing of its machine after the subscriber's previous receipt. */
function deliveryLatencies(subscribers: Subscriber[], commits: Commit[]): Omit<PhaseResult, "bidsPerSecond" | "payloads"> {
  const byMachine = new Map<number, number[]>();
  for (const [machineId, at] of commits) byMachine.set(machineId, [...(byMachine.get(machineId) ?? []), at]);
  const latencies: number[] = [];
  let clearings = 0;
  let coalesced = 0;
  let maxEventsPerClearing = 0;
  for (const subscriber of subscribers) {
    const times = (byMachine.get(subscriber.machineId) ?? []).filter((at) => at > subscriber.readyAt).sort((a, b) => a - b);
    clearings += times.length;
    let next = 0;
    for (const receipt of subscriber.receipts) {
      if (next >= times.length || times[next] > receipt) continue; // no clearing waiting: not one of ours
      latencies.push(receipt - times[next]);
      const first = next;
      while (next < times.length && times[next] <= receipt) next++;
      coalesced += next - first - 1;
    }
    coalesced += times.length - next;
    if (times.length) maxEventsPerClearing = Math.max(maxEventsPerClearing, subscriber.receipts.length / times.length);
  }
  return { latencies: latencies.sort((a, b) => a - b), deliveries: latencies.length, clearings, coalesced, maxEventsPerClearing };
}

/**
 * A key per subscriber, as that many watchers would have: the API lets one key hold at most
 * WS_MAX_CONNECTIONS_PER_KEY WebSocket connections.
 */
async function watcherKeys(count: number): Promise<string[]> {
  const [{ prisma }, { issueApiKey }] = await Promise.all([import("../infra/db.ts"), import("../domain/apiKeys.ts")]);
  const watcher = await prisma.user.create({ data: { email: "watcher@bench.example", passwordHash: "x" } });
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push((await issueApiKey(prisma, { userId: watcher.id, name: `watcher ${i}`, scope: "ACCOUNT" })).token);
  await prisma.$disconnect();
  return keys;
}

async function phase(kind: "product" | "floor", floorPayloads: Record<string, string> = {}): Promise<PhaseResult> {
  const database = `bench_order_book_${kind}_${Date.now().toString(36)}`;
  const databaseUrl = await freshBenchDatabase(SERVER_URL, database);
  process.env.REDIS_PREFIX = database;
  process.env.LOG_LEVEL = "warn";
  const watchers = kind === "product" ? await watcherKeys(SUBSCRIBERS) : [];
  const keys = await seedAuction(MACHINES, CONCURRENCY);
  const env = productionEnv({ DATABASE_URL: databaseUrl });
  const api = await startAppProcess(databaseUrl);
  const worker = startChild("worker", env);
  await once(worker, "message");

  const subscribers: Subscriber[] = [];
  const payloads: Record<string, string> = {};
  const sockets: WebSocket[] = [];
  let floor: ChildProcess | undefined;
  if (kind === "product") {
    const wsUrl = api.url.replace(/^http/, "ws");
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const subscriber: Subscriber = { machineId: watchedMachine(i), readyAt: 0, receipts: [] };
      subscribers.push(subscriber);
      const socket = await leanSubscriber(
        wsUrl,
        watchers[i]!,
        ORDER_BOOK,
        (_payload, raw) => {
          if (subscriber.readyAt === 0) subscriber.readyAt = Date.now();
          else subscriber.receipts.push(Date.now());
          payloads[subscriber.machineId] = raw;
        },
        { m: `Machine:${subscriber.machineId}` },
      );
      sockets.push(socket);
    }
    const deadline = Date.now() + 60_000;
    while (subscribers.some((s) => s.readyAt === 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  } else {
    const started = await startFanoutFloor("orderBook", floorPayloads, env);
    floor = started.child;
    const url = started.url;
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const subscriber: Subscriber = { machineId: watchedMachine(i), readyAt: 0, receipts: [] };
      subscribers.push(subscriber);
      const socket = new WebSocket(`${url}/?id=${subscriber.machineId}`);
      // Parsed as the product's subscribers parse theirs.
      socket.on("message", (data: Buffer) => {
        JSON.parse(data.toString());
        subscriber.receipts.push(Date.now());
      });
      await once(socket, "open");
      subscriber.readyAt = Date.now();
      sockets.push(socket);
    }
  }

  const started = Date.now();
  const { sentAt, failures } = await placeBids(api.url, keys, auctionBidPlan(BIDS, MACHINES));
  const check = new pg.Client({ connectionString: databaseUrl });
  await check.connect();
  const flagged = async () => Number((await check.query("SELECT count(*) AS n FROM machine WHERE clearing_requested_at IS NOT NULL")).rows[0].n);
  while ((await flagged()) > 0) await new Promise((resolve) => setTimeout(resolve, 100));
  const bidsPerSecond = sentAt.size / ((Date.now() - started) / 1000);
  // Deliveries still on their way: wait until every subscriber has one after its machine's last clearing.
  let commits: Commit[] = [];
  const drainDeadline = Date.now() + 15_000;
  for (;;) {
    commits = (await ask<{ commits: Commit[] }>(worker)).commits;
    const last = new Map(commits.map(([machineId, at]) => [machineId, at]));
    const waiting = subscribers.filter((s) => (last.get(s.machineId) ?? 0) > (s.receipts.at(-1) ?? s.readyAt));
    if (waiting.length === 0 || Date.now() > drainDeadline) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  if (failures.length) console.log(`${kind}: ${failures.length} bids refused, first: ${failures[0]}`);

  for (const socket of sockets) socket.terminate();
  await check.end();
  for (const child of [api.child, worker, floor]) child?.kill("SIGTERM");
  await Promise.all([api.child, worker, floor].filter((c): c is ChildProcess => c !== undefined).map((c) => once(c, "exit")));
  if (!process.env.BENCH_KEEP) await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  return { ...deliveryLatencies(subscribers, commits), bidsPerSecond, payloads };
}

function summary(name: string, result: PhaseResult): string {
  const { latencies } = result;
  return (
    `${name}: delivery after commit p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${latencies.at(-1)} ms; ` +
    `${result.deliveries} deliveries for ${result.clearings} subscriber-clearings (${result.coalesced} coalesced into a later event), ` +
    `at most ${result.maxEventsPerClearing.toFixed(2)} events per clearing; load ${result.bidsPerSecond.toFixed(0)} bids/s`
  );
}

/** A phase in its own process: the project's modules read DATABASE_URL once, and each phase has its own database. */
async function runPhase(kind: "product" | "floor"): Promise<void> {
  const [floorPayloads] = (await once(process, "message")) as [Record<string, string>];
  const result = await phase(kind, floorPayloads);
  process.send!(result, () => process.exit(0));
}

async function inChild(kind: "product" | "floor", floorPayloads: Record<string, string> = {}): Promise<PhaseResult> {
  const child = startChild(kind, process.env);
  child.send(floorPayloads);
  const [result] = (await once(child, "message")) as [PhaseResult];
  await once(child, "exit");
  return result;
}

async function main(): Promise<void> {
  const curve: { size: number; product: number[]; floor: number[] }[] = [];
  for (const subscribers of SUBSCRIBER_COUNTS) {
    process.env.BENCH_SUBSCRIBERS = String(subscribers);
    console.log(
      `machine: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? "?"}); ${subscribers} subscribers on ${WATCHED} of ${MACHINES} machines; ` +
        `load: ${BIDS} bids at concurrency ${CONCURRENCY} through 1 API process, auction worker in its own process; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`,
    );
    const product = await inChild("product");
    console.log(summary("product (API: refetch, GraphQL, WebSocket)", product));
    const floor = await inChild("floor", product.payloads);
    console.log(summary("floor (bare ws fan-out of the same payloads)", floor));
    const ratio = (p: number) => (percentile(product.latencies, p) / Math.max(1, percentile(floor.latencies, p))).toFixed(1);
    console.log(`ratio product/floor: p50 ${ratio(50)}x, p99 ${ratio(99)}x\n`);
    curve.push({ size: subscribers, product: product.latencies, floor: floor.latencies });
  }
  if (curve.length < 2) return;
  for (const p of [50, 99]) {
    printCurve("subscribers", curve.map((c) => ({ size: c.size, product: percentile(c.product, p), floor: Math.max(1, percentile(c.floor, p)) })), `p${p} ms`);
    console.log("");
  }
}

const role = process.argv[2];
if (role === "worker") await runWorker();
else if (role === "product" || role === "floor") await runPhase(role);
else await main();
