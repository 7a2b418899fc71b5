/**
 * Subscriptions benchmark: `npx tsx bench/subscriptions.ts`.
 *
 * 1. Balance: BENCH_SUBSCRIBERS accounts, each with a RUNNING instance, each with one
 *    graphql-ws subscriber to `balance`, spread over BENCH_API_PROCESSES (2) real API processes,
 *    while the real metering worker (its own process, BullMQ, with its balance events) charges them all.
 *    Delivery latency = the subscriber's receipt − the moment the balance event reached Redis
 *    subscribers (this process listens to the same channels), so it covers Redis fan-out, the
 *    API's refetch, execution and the WebSocket. Prints p50/p99, events per second, the first and
 *    last delivery of each metering tick (medians) and the CPU spent per event by the API processes,
 *    by this one (the clients) and by the metering worker. The API processes run with the V8 flags of
 *    `npm start` (package.json), or BENCH_API_NODE_ARGS.
 *    Then the floor: the same subscribers on as many bare `ws` processes (bench/fanout-floor.ts) that
 *    forward the same Redis events to each account's socket as the last payload the product sent it
 *    (no GraphQL, no refetch), measured the same way while the same worker charges; prints the ratios.
 *    BENCH_TICKS=1 also lists every metering tick's first and last delivery.
 * 2. Agents: BENCH_AGENTS (1,000) agents subscribed to `assignments`, all disconnected at once
 *    (their sockets dropped) and reconnecting with the agent's backoff (uniform jitter in [0, 500 ms)):
 *    time from the drop to each agent's whole desired state again.
 *
 * Curve: BENCH_SUBSCRIBERS is a comma-separated list (1000,2500,5000 by default); the whole run
 * (fresh database, product, floor, agents) goes once per count, each in a process of its own, and
 * the balance delivery's p50 and p99 and the serving CPU per event are printed against the count,
 * with their growth exponents.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "graphql-ws";
import { Redis } from "ioredis";
import WebSocket from "ws";
import { startFanoutFloor } from "./fanout-floor.ts";
import { adminQuery } from "../infra/pg-admin.ts";
import { API_NODE_ARGS, freshBenchDatabase, leanSubscriber, percentile, printCurve, productionEnv } from "./support.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const SIZES = (process.env.BENCH_SUBSCRIBERS ?? "1000,2500,5000").split(",").map(Number);
const API_PROCESSES = Number(process.env.BENCH_API_PROCESSES ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 1_000);
const root = fileURLToPath(new URL("..", import.meta.url));

/** One subscriber count's balance figures, sent to the process that draws the curve. */
interface SizeResult {
  subscribers: number;
  p50: { product: number; floor: number };
  p99: { product: number; floor: number };
  cpuMicros: { product: number; floor: number };
}

if (SIZES.length > 1) {
  const results: SizeResult[] = [];
  for (const subscribers of SIZES) {
    console.log(`\n## ${subscribers} subscribers`);
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, BENCH_SUBSCRIBERS: String(subscribers) },
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child.on("message", (result: SizeResult) => results.push(result));
    const [code] = await once(child, "exit");
    if (code !== 0) throw new Error(`the run at ${subscribers} subscribers failed (exit ${code})`);
  }
  console.log(`\nbalance delivery against subscribers (load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at the end):\n`);
  printCurve("subscribers", results.map((r) => ({ size: r.subscribers, ...r.p50 })));
  console.log("");
  printCurve("subscribers", results.map((r) => ({ size: r.subscribers, ...r.p99 })), "p99 ms");
  console.log("");
  printCurve("subscribers", results.map((r) => ({ size: r.subscribers, ...r.cpuMicros })), "serving CPU µs per event");
  process.exit(0);
}
const SUBSCRIBERS = SIZES[0]!;

// A database of the run's own: concurrent runs and other benchmarks never drop it from under this one.
const DATABASE = `bench_subscriptions_${Date.now().toString(36)}`;
await freshBenchDatabase(SERVER_URL, DATABASE);
process.env.REDIS_PREFIX = `bench_subs_${process.pid}`;
process.env.LOG_LEVEL ??= "warn";

const { prisma } = await import("../infra/db.ts");
const { closePubSub, eventChannel } = await import("../infra/pubsub.ts");

const token = () => `gmk_${randomBytes(32).toString("base64url")}`;
const hash = (t: string) => createHash("sha256").update(t).digest("hex");

/** Accounts with a key and a RUNNING instance each, 4 to an 8-GPU machine, and a MACHINE key per machine. */
async function seed(): Promise<{ accounts: { userId: number; key: string }[]; agents: { machineId: number; key: string }[] }> {
  const now = Math.floor(Date.now() / 1000);
  const users = await prisma.$queryRawUnsafe<{ id: number }[]>(
    `INSERT INTO user_account (email, password_hash, balance_micros)
     SELECT 'u' || g || '@bench.local', 'x', 100000000 FROM generate_series(1, $1) g RETURNING id`,
    SUBSCRIBERS + 1,
  );
  const hostId = users.pop()!.id;
  const machines = await prisma.$queryRawUnsafe<{ id: number }[]>(
    `INSERT INTO machine (host_id, gpu_name, num_gpus, gpu_ram_mb, compute_cap, tflops_per_gpu, gpu_mem_bw, pcie_gen, pcie_bw,
                          cpu_name, cpu_cores, cpu_ram_mb, disk_space_gb, disk_bw, inet_up_mbps, inet_down_mbps, cuda_max_good,
                          driver_version, country_code, geolocation, dlperf, updated_at)
     SELECT $1, 'RTX 4090', 8, 24564, 890, 82.6, 1008, 4, 25, 'EPYC', 64, 256000, 4000, 3000, 1000, 1000, 12.4, '550.54.15', 'DE', 'Hesse, DE', 100, now()
       FROM generate_series(1, $2) RETURNING id`,
    hostId,
    Math.max(Math.ceil(SUBSCRIBERS / 4), AGENTS),
  );
  machines.sort((a, b) => a.id - b.id);
  await prisma.$executeRawUnsafe(
    `WITH ins AS (
       INSERT INTO instance (client_id, machine_id, kind, num_gpus, price_per_gpu_hour_micros, storage_price_per_gb_month_micros,
                             inet_up_price_per_gb_micros, inet_down_price_per_gb_micros, end_date, bid_placed_at,
                             image, disk_gb, launch_mode, onstart, env, ports, status, intended_status, status_changed_at, created_at)
       SELECT u.id, m.id, 'ON_DEMAND', 1, 360000, 100000, 5000, 2000, to_timestamp($3) + interval '30 days', to_timestamp($3),
              'ubuntu:22.04', 20, 'SSH', '', '[]', '{}', 'RUNNING', 'RUNNING', to_timestamp($3), to_timestamp($3)
         FROM unnest($1::int[]) WITH ORDINALITY AS u(id, n) JOIN unnest($2::int[]) WITH ORDINALITY AS m(id, n) ON m.n = 1 + (u.n - 1) / 4
       RETURNING id
     )
     INSERT INTO instance_status_change (instance_id, to_status, event, at) SELECT id, 'RUNNING', 'CREATED', to_timestamp($3) FROM ins`,
    users.map((u) => u.id),
    machines.map((m) => m.id),
    now,
  );
  const accounts = users.map((u) => ({ userId: u.id, key: token() }));
  const agents = machines.slice(0, AGENTS).map((m) => ({ machineId: m.id, key: token() }));
  await prisma.$executeRawUnsafe(
    `INSERT INTO api_key (user_id, name, prefix, hash, scope, machine_id)
     SELECT u, 'bench', left(h, 8), h, s::"ApiKeyScope", m FROM unnest($1::int[], $2::text[], $3::text[], $4::int[]) AS v(u, h, s, m)`,
    [...accounts.map((a) => a.userId), ...agents.map(() => hostId)],
    [...accounts.map((a) => hash(a.key)), ...agents.map((a) => hash(a.key))],
    [...accounts.map(() => "ACCOUNT"), ...agents.map(() => "MACHINE")],
    [...accounts.map(() => null), ...agents.map((a) => a.machineId)],
  );
  return { accounts, agents };
}

/**
 * A process of this project (`node [nodeArgs] --import tsx script`, production mode), resolved with
 * the first line of its standard output that `ready` accepts; later output goes to this one's stderr.
 */
function spawnChild(nodeArgs: string[], script: string, logLevel: string, ready: (line: string) => boolean): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", script], {
    cwd: root,
    env: productionEnv({ LOG_LEVEL: logLevel }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let output = "";
    let readyLine: string | undefined;
    child.stdout!.on("data", (chunk: Buffer) => {
      if (readyLine) return void process.stderr.write(chunk);
      output += chunk;
      readyLine = output.split("\n").find(ready);
      if (readyLine) resolve({ child, line: readyLine });
    });
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

async function spawnApi(): Promise<{ child: ChildProcess; url: string }> {
  const { child, line } = await spawnChild(API_NODE_ARGS, "test/support/api-server.ts", "warn", (l) => l.startsWith('{"url"'));
  return { child, url: JSON.parse(line).url.replace(/^http/, "ws") };
}

/** CPU time (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

console.log(`seeding ${SUBSCRIBERS} accounts with running instances and ${AGENTS} agent keys…`);
const { accounts, agents } = await seed();
const apis = await Promise.all(Array.from({ length: API_PROCESSES }, spawnApi));
// The API processes go with this one, however it ends.
process.on("exit", () => apis.forEach((api) => api.child.kill("SIGKILL")));

// When each account's latest balance event reached Redis subscribers.
const published = new Map<number, number>();
/** Called for each account a balance event names, after `published` has its time. */
let onPublished: (userId: number, at: number) => void = () => {};
const listener = new Redis(process.env.REDIS_URL!);
const balanceChannel = eventChannel("balance");
await listener.subscribe(balanceChannel);
listener.on("message", (_channel, message: string) => {
  const at = performance.now();
  for (const [userId] of JSON.parse(message) as [number, unknown][]) {
    published.set(userId, at);
    onPublished(userId, at);
  }
});


interface BalancePhase {
  latencies: number[];
  received: number;
  elapsed: number;
  /** Per balance event published (by its time): the first and last delivery latency of its subscribers. */
  ticks: Map<number, { first: number; last: number }>;
  /** CPU seconds of the processes serving the sockets, and of this one (the clients), while measuring. */
  serverCpu: number;
  clientCpu: number;
  meteringCpu: number;
  /** The last message each account's subscriber got (what the floor sends). */
  payloads: Record<string, string>;
}

/** A subscriber's open socket, and when its subscription is live. */
interface Connected {
  socket: WebSocket;
  subscribed: Promise<unknown>;
}

/**
 * One subscriber per account, connected by `connect` one after another, measured for SECONDS once all
 * are subscribed while the metering worker charges them; `servers` are the processes serving the sockets.
 */
async function measureBalance(
  servers: ChildProcess[],
  connect: (account: { userId: number; key: string }, i: number, onMessage: (raw: string) => void) => Promise<Connected>,
): Promise<BalancePhase> {
  const phase: BalancePhase = { latencies: [], received: 0, elapsed: 0, ticks: new Map(), serverCpu: 0, clientCpu: 0, meteringCpu: 0, payloads: {} };
  let measuring = false;
  const record = (at: number, latency: number) => {
    phase.latencies.push(latency);
    const tick = phase.ticks.get(at);
    if (!tick) phase.ticks.set(at, { first: latency, last: latency });
    else tick.last = Math.max(tick.last, latency);
  };
  // Each delivery answers its account's newest event not answered yet. A delivery faster than this
  // process's own Redis listener (the floor's can be) arrives before that event does here: it waits
  // for it and counts as 0 ms, rather than as a tick late against the event before.
  const answered = new Map<number, number>();
  const early = new Set<number>();
  onPublished = (userId, at) => {
    if (!measuring || !early.delete(userId)) return;
    answered.set(userId, at);
    record(at, 0);
  };
  const connected: Connected[] = [];
  for (const [i, account] of accounts.entries()) {
    connected.push(
      await connect(account, i, (raw) => {
        phase.payloads[account.userId] = raw;
        if (!measuring) return;
        phase.received++;
        const at = published.get(account.userId);
        if (at === undefined || at === answered.get(account.userId)) return void early.add(account.userId);
        answered.set(account.userId, at);
        record(at, performance.now() - at);
      }),
    );
  }
  await Promise.all(connected.map((c) => c.subscribed));
  await sleep(3000); // the sockets settle and the metering ticks run steadily
  const serverCpuBefore = servers.map((server) => cpuSeconds(server.pid!));
  const meteringCpuBefore = cpuSeconds(metering.pid!);
  const clientCpuBefore = process.cpuUsage();
  measuring = true;
  const started = performance.now();
  await sleep(SECONDS * 1000);
  measuring = false;
  phase.elapsed = (performance.now() - started) / 1000;
  phase.serverCpu = servers.reduce((sum, server, i) => sum + cpuSeconds(server.pid!) - serverCpuBefore[i], 0);
  const clientCpu = process.cpuUsage(clientCpuBefore);
  phase.clientCpu = (clientCpu.user + clientCpu.system) / 1e6;
  phase.meteringCpu = cpuSeconds(metering.pid!) - meteringCpuBefore;
  for (const { socket } of connected) socket.close(1000);
  phase.latencies.sort((a, b) => a - b);
  return phase;
}

function report(name: string, phase: BalancePhase): void {
  const { latencies, received, elapsed, ticks } = phase;
  console.log(
    `${name}: ${SUBSCRIBERS} subscribers, ${received} events in ${elapsed.toFixed(1)} s = ${(received / elapsed).toFixed(0)} events/s; ` +
      `delivery p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms`,
  );
  if (process.env.BENCH_TICKS) for (const [at, tick] of [...ticks].sort((a, b) => a[0] - b[0])) console.log(`${at.toFixed(0)} first ${tick.first.toFixed(0)} last ${tick.last.toFixed(0)}`);
  const firsts = [...ticks.values()].map((tick) => tick.first).sort((a, b) => a - b);
  const lasts = [...ticks.values()].map((tick) => tick.last).sort((a, b) => a - b);
  console.log(
    `  per metering tick (${ticks.size}): first delivery p50 ${percentile(firsts, 50).toFixed(1)} ms, last delivery p50 ${percentile(lasts, 50).toFixed(1)} ms`,
  );
  const perEvent = (seconds: number) => ((seconds / Math.max(1, received)) * 1e6).toFixed(0);
  console.log(
    `  CPU per delivered event: serving processes ${perEvent(phase.serverCpu)} µs, this process (the clients) ${perEvent(phase.clientCpu)} µs, ` +
      `metering worker ${perEvent(phase.meteringCpu)} µs`,
  );
}

// The metering worker in its own process, as deployed (workers/metering.ts), not in this one's event
// loop; it charges through both phases.
const { child: metering } = await spawnChild([], "workers/metering.ts", "info", (line) => line.includes("metering worker started"));
process.on("exit", () => metering.kill("SIGKILL"));

console.log(`product: ${SUBSCRIBERS} balance subscribers over ${API_PROCESSES} API processes, metering for ${SECONDS} s…`);
const product = await measureBalance(
  apis.map((api) => api.child),
  async (account, i, onMessage) => {
    // The subscription's first message is the current balance, not an event: it is live then.
    let live!: () => void;
    const subscribed = new Promise<void>((resolve) => (live = resolve));
    let first = true;
    const socket = await leanSubscriber(apis[i % apis.length].url, account.key, "subscription { balance { balance } }", (_payload, raw) => {
      if (!first) return onMessage(raw);
      first = false;
      live();
    });
    return { socket, subscribed };
  },
);
report("product (API: refetch, GraphQL, WebSocket)", product);

console.log(`floor: the same subscribers on ${API_PROCESSES} bare ws fan-out processes, metering for ${SECONDS} s…`);
const floors = await Promise.all(apis.map(() => startFanoutFloor("balance", product.payloads, productionEnv())));
const floor = await measureBalance(
  floors.map((f) => f.child),
  async (account, i, onMessage) => {
    const socket = new WebSocket(`${floors[i % floors.length].url}/?id=${account.userId}`);
    // Parsed as the product's subscribers parse theirs.
    socket.on("message", (data: Buffer) => {
      const raw = data.toString();
      JSON.parse(raw);
      onMessage(raw);
    });
    await once(socket, "open");
    return { socket, subscribed: Promise.resolve() };
  },
);
report("floor (bare ws fan-out of the same payloads)", floor);
const ratio = (p: number) => (percentile(product.latencies, p) / Math.max(1, percentile(floor.latencies, p))).toFixed(2);
const cpuRatio = (product.serverCpu / Math.max(1, product.received) / (floor.serverCpu / Math.max(1, floor.received))).toFixed(1);
console.log(`ratio product/floor: delivery p50 ${ratio(50)}x, p99 ${ratio(99)}x; serving CPU per event ${cpuRatio}x`);
const cpuPerEvent = (phase: BalancePhase) => (phase.serverCpu / Math.max(1, phase.received)) * 1e6;
process.send?.({
  subscribers: SUBSCRIBERS,
  p50: { product: percentile(product.latencies, 50), floor: percentile(floor.latencies, 50) },
  p99: { product: percentile(product.latencies, 99), floor: percentile(floor.latencies, 99) },
  cpuMicros: { product: cpuPerEvent(product), floor: cpuPerEvent(floor) },
} satisfies SizeResult);
await Promise.all(floors.map((f) => new Promise((exited) => f.child.once("exit", exited).kill("SIGTERM"))));
await new Promise((exited) => metering.once("exit", exited).kill("SIGTERM"));

console.log(`connecting ${AGENTS} agents…`);
const dropped: number[] = [];
const reconnectTimes: number[] = [];
let dropAt = 0;
const agentClients = await Promise.all(
  agents.map(
    (agent, i) =>
      new Promise<Client>((ready) => {
        const client = createClient({
          url: apis[i % apis.length].url,
          webSocketImpl: WebSocket,
          connectionParams: { authorization: `Bearer ${agent.key}` },
          retryAttempts: Infinity,
          shouldRetry: () => true,
          // The agent's backoff: full jitter, 500 ms for the first retry.
          retryWait: () => sleep(Math.random() * 500),
        });
        let states = 0;
        client.subscribe(
          { query: `subscription ($m: ID!) { assignments(machineId: $m) { revision instances { instanceId desiredState } } }`, variables: { m: `Machine:${agent.machineId}` } },
          {
            next: () => {
              states++;
              if (states === 1) ready(client);
              else if (dropAt && !dropped[i]) {
                dropped[i] = 1;
                reconnectTimes.push(performance.now() - dropAt);
              }
            },
            error: (error) => console.error("agent subscription failed", error),
            complete: () => {},
          },
        );
      }),
  ),
);
console.log(`dropping all ${AGENTS} agent sockets at once…`);
dropAt = performance.now();
for (const client of agentClients) client.terminate();
while (reconnectTimes.length < AGENTS && performance.now() - dropAt < 60_000) await sleep(50);
reconnectTimes.sort((a, b) => a - b);
console.log(
  `agents: ${reconnectTimes.length}/${AGENTS} had their whole desired state again; p50 ${percentile(reconnectTimes, 50).toFixed(0)} ms, ` +
    `p99 ${percentile(reconnectTimes, 99).toFixed(0)} ms, all within ${reconnectTimes.at(-1)?.toFixed(0)} ms`,
);

await Promise.all(agentClients.map((client) => client.dispose()));
await Promise.all(apis.map((api) => new Promise((exited) => api.child.once("exit", exited).kill("SIGTERM"))));
listener.disconnect();
await closePubSub();
await prisma.$disconnect();
await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
const { redis } = await import("../infra/redis.ts");
redis.disconnect();
process.exit(0);
