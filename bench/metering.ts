/**
 * Metering benchmark: `npx tsx bench/metering.ts`.
 *
 * 1. Tick, at each size of BENCH_INSTANCES (default 10000,30000,100000): that many RUNNING instances
 *    of 1–4 GPUs on 8-GPU machines, seeded with SQL into an emptied database; times the tick that opens their accrual rows, BENCH_TICKS steady
 *    seconds of metering (the clock driven in simulated time; a second is every phase's tick in
 *    turn, each also timed), and the tick that crosses a billing period (UTC midnight); counts rows
 *    inserted and updated per steady second (pg_stat) and turns them into rows written per hour.
 *    Floor: after the opening tick the database is cloned; every statement a steady phase tick sends
 *    (recorded at pg's Client#query, BEGIN and COMMIT included) is replayed right after it on the
 *    clone through one bare `pg` client, so the clone goes through the same states: the tick's SQL
 *    alone, without Prisma or the tick's own code. Prints both and their ratio at each size, then the
 *    steady second's curve: the growth exponent of product and floor between sizes.
 * 2. Soak: BENCH_SOAK_INSTANCES (10,000) instances metered by the real BullMQ worker in real time for
 *    BENCH_SOAK_SECONDS (600), with random stops and starts, then every account's balance is
 *    checked against the exact expected figure computed from the status history. Prints how far
 *    the oldest phase's clock fell behind real time, overall and after the first 30 s.
 */

import pg from "pg";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";
import { loadavg } from "node:os";
import { freshBenchDatabase, percentile, printCurve } from "./support.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
/** Instance counts the tick is measured at, one after the other (a comma-separated list). */
const SIZES = (process.env.BENCH_INSTANCES ?? "10000,30000,100000").split(",").map(Number);
const TICKS = Number(process.env.BENCH_TICKS ?? 30);
const SOAK_INSTANCES = Number(process.env.BENCH_SOAK_INSTANCES ?? 10_000);
const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
const CLIENTS = 2_000;
const HOSTS = 200;
const DATABASE = "bench_metering";

await freshBenchDatabase(SERVER_URL, DATABASE);
process.env.REDIS_PREFIX = `bench_metering_${process.pid}`;
process.env.LOG_LEVEL ??= "warn";

const { prisma, meteringPrisma } = await import("../infra/db.ts");
const { METERING_PHASES, meterUpTo } = await import("../domain/billing/metering.ts");
const { ledgerMismatches } = await import("../domain/billing/ledger.ts");
const { PERIOD_SECONDS } = await import("../domain/billing/rates.ts");
const { at, eventAt, expectedCharges, meteringClocks, openAccrualMismatches } = await import("../test/support/metering.ts");

/** Users, 8-GPU machines and RUNNING instances created at `start`, in a few statements. */
async function seed(instances: number, start: number): Promise<void> {
  await prisma.$executeRawUnsafe(
    `INSERT INTO user_account (email, password_hash, balance_micros)
     SELECT 'u' || g || '@bench.local', 'x', 0 FROM generate_series(1, $1) g`,
    CLIENTS + HOSTS,
  );
  const machines = Math.ceil(instances / 4);
  await prisma.$executeRawUnsafe(
    `INSERT INTO machine (host_id, gpu_name, num_gpus, gpu_ram_mb, compute_cap, tflops_per_gpu, gpu_mem_bw, pcie_gen, pcie_bw,
                          cpu_name, cpu_cores, cpu_ram_mb, disk_space_gb, disk_bw, inet_up_mbps, inet_down_mbps, cuda_max_good,
                          driver_version, country_code, geolocation, dlperf, updated_at)
     SELECT ${CLIENTS} + 1 + g % ${HOSTS}, 'RTX 4090', 8, 24564, 890, 82.6, 1008, 4, 25, 'EPYC', 64, 256000, 4000, 3000, 1000, 1000,
            12.4, '550.54.15', 'DE', 'Hesse, DE', 100, now()
       FROM generate_series(1, $1) g`,
    machines,
  );
  await prisma.$executeRawUnsafe(
    `WITH ins AS (
       INSERT INTO instance (client_id, machine_id, kind, num_gpus, price_per_gpu_hour_micros, storage_price_per_gb_month_micros,
                             inet_up_price_per_gb_micros, inet_down_price_per_gb_micros, end_date, bid_per_gpu_hour_micros, bid_placed_at,
                             image, disk_gb, launch_mode, onstart, env, ports, status, intended_status, status_changed_at, created_at)
       SELECT 1 + g % ${CLIENTS}, 1 + (g - 1) / 4, CASE WHEN g % 3 = 0 THEN 'INTERRUPTIBLE' ELSE 'ON_DEMAND' END::"RentalKind",
              1 + g % 2, 200000 + (g * 7919) % 600000, 100000 + (g * 104729) % 100000, 5000, 2000, to_timestamp($2) + interval '365 days',
              CASE WHEN g % 3 = 0 THEN 100000 + (g * 31) % 200000 END, to_timestamp($2),
              'ubuntu:22.04', 10 + g % 200, 'SSH', '', '[]', '{}', 'RUNNING', 'RUNNING', to_timestamp($2), to_timestamp($2)
         FROM generate_series(1::bigint, $1) g
       RETURNING id
     )
     INSERT INTO instance_status_change (instance_id, from_status, to_status, event, at)
     SELECT id, NULL, 'RUNNING', 'CREATED', to_timestamp($2) FROM ins`,
    instances,
    start,
  );
  await prisma.$executeRawUnsafe(`ANALYZE`);
}

async function writes(): Promise<{ inserted: number; updated: number }> {
  const [row] = await prisma.$queryRawUnsafe<{ inserted: bigint; updated: bigint }[]>(
    `SELECT sum(n_tup_ins)::bigint AS inserted, sum(n_tup_upd)::bigint AS updated FROM pg_stat_user_tables`,
  );
  return { inserted: Number(row.inserted), updated: Number(row.updated) };
}

/** The statements pg clients send while a tick is recorded. */
let recording: { text: string; values?: unknown[] }[] | undefined;
const clientQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const [first, second] = args as [unknown, unknown];
  if (recording && typeof first === "string") recording.push({ text: first, values: Array.isArray(second) ? second : undefined });
  else if (recording && typeof first === "object" && first !== null && "text" in first) {
    const { text, values } = first as { text: string; values?: unknown[] };
    recording.push({ text, values });
  }
  return (clientQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof clientQuery;

/** The floor's database (a clone) and its one bare client, once cloned. */
let floorClient: pg.Client | undefined;
const FLOOR_DATABASE = `${DATABASE}_floor`;

async function cloneForFloor(): Promise<void> {
  await Promise.all([prisma.$disconnect(), meteringPrisma.$disconnect()]); // CREATE DATABASE … TEMPLATE needs it unused
  await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${FLOOR_DATABASE} WITH (FORCE)`);
  await adminQuery(SERVER_URL, `CREATE DATABASE ${FLOOR_DATABASE} TEMPLATE ${DATABASE}`);
  floorClient = new pg.Client({ connectionString: withDatabase(SERVER_URL, FLOOR_DATABASE) });
  await floorClient.connect();
}

const lag = 2;
/** Each phase's tick times of the steady seconds, and their floors. */
const phaseTicks: number[] = [];
const phaseFloors: number[] = [];
/** Each steady second's floor (every phase's replayed statements). */
const floorSeconds: number[] = [];
/** One second of metering: every phase's tick in turn (the job spreads them over the second); the total. */
async function tick(sec: number, record = false): Promise<number> {
  let total = 0;
  let floorTotal = 0;
  for (let phase = 0; phase < METERING_PHASES; phase++) {
    if (record) recording = [];
    const started = performance.now();
    await meterUpTo(at(sec + lag), phase);
    const elapsed = performance.now() - started;
    const statements = recording;
    recording = undefined;
    total += elapsed;
    if (record && statements && floorClient) {
      const floorStarted = performance.now();
      for (const statement of statements) await floorClient.query(statement);
      const floorElapsed = performance.now() - floorStarted;
      phaseTicks.push(elapsed);
      phaseFloors.push(floorElapsed);
      floorTotal += floorElapsed;
    }
  }
  if (record) floorSeconds.push(floorTotal);
  return total;
}

const ms = (value: number) => value.toFixed(1);

// --- 1. Ticks at each size, in simulated time ---------------------------------------------------
// Start 10 s + TICKS before a UTC midnight, so the run ends by crossing a billing period.
const midnight = (Math.floor(Date.now() / 1000 / PERIOD_SECONDS) - 1) * PERIOD_SECONDS;
const start = midnight - TICKS - 10;
const sorted = (values: number[]) => values.toSorted((a, b) => a - b);

/** Everything metering and the seed wrote: each size, and the soak, start from an empty database. */
async function emptyDatabase(): Promise<void> {
  await prisma.$executeRawUnsafe(
    `TRUNCATE instance, instance_status_change, time_accrual, bandwidth_accrual, bandwidth_counter, ledger_entry, metering_clock, machine, user_account RESTART IDENTITY CASCADE`,
  );
}

/** The opening tick, TICKS steady seconds against their floor and the billing-period rollover at `instances`; prints them. */
async function measureSize(instances: number): Promise<{ instances: number; product: number; floor: number }> {
  await emptyDatabase();
  for (const list of [phaseTicks, phaseFloors, floorSeconds]) list.length = 0;
  await seed(instances, start);
  console.log(`seeded ${instances} running instances`);
  const opening = await tick(start + 1);
  await cloneForFloor();
  const steady: number[] = [];
  // pg_stat counters are flushed asynchronously: let the seed's and opening tick's arrive first.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const before = await writes();
  for (let s = start + 2; s < midnight; s++) steady.push(await tick(s, true));
  const after = await writes();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const statAfter = await writes();
  const rollover = await tick(midnight + 1);
  const afterMidnight: number[] = [];
  for (let s = midnight + 2; s < midnight + 7; s++) afterMidnight.push(await tick(s));
  const perTick = {
    inserted: (Math.max(after.inserted, statAfter.inserted) - before.inserted) / steady.length,
    updated: (Math.max(after.updated, statAfter.updated) - before.updated) / steady.length,
  };
  const accruals = await prisma.timeAccrual.count();
  const mismatches = await ledgerMismatches(prisma);
  const { charged } = await expectedCharges(midnight + 6);
  const totals = await prisma.ledgerEntry.groupBy({ by: ["userId"], where: { kind: "CHARGE" }, _sum: { amountMicros: true } });
  const wrong = totals.filter((t) => -(t._sum.amountMicros ?? 0n) !== (charged.get(t.userId) ?? 0n)).length;
  const product = percentile(sorted(steady), 50);
  const floor = percentile(sorted(floorSeconds), 50);
  console.log(
    JSON.stringify({
      instances,
      openingTickMs: ms(opening),
      steadyTicks: steady.length,
      steadyP50Ms: ms(product),
      steadyP95Ms: ms(percentile(sorted(steady), 95)),
      steadyMaxMs: ms(Math.max(...steady)),
      phases: METERING_PHASES,
      steadyPhaseTickP50Ms: ms(percentile(sorted(phaseTicks), 50)),
      steadyPhaseTickP95Ms: ms(percentile(sorted(phaseTicks), 95)),
      floorSteadyP50Ms: ms(floor),
      floorSteadyP95Ms: ms(percentile(sorted(floorSeconds), 95)),
      floorPhaseTickP50Ms: ms(percentile(sorted(phaseFloors), 50)),
      ratioSteadyP50: (product / floor).toFixed(2),
      ratioSteadyP95: (percentile(sorted(steady), 95) / percentile(sorted(floorSeconds), 95)).toFixed(2),
      rolloverTickMs: ms(rollover),
      afterRolloverP50Ms: ms(percentile(sorted(afterMidnight), 50)),
      rowsInsertedPerTick: perTick.inserted,
      rowsUpdatedPerTick: perTick.updated,
      accrualRowsAfterRun: accruals,
      ledgerMismatches: mismatches.length,
      openAccrualMismatches: await openAccrualMismatches(),
      accountsWithWrongCharges: wrong,
    }),
  );
  await floorClient?.end();
  floorClient = undefined;
  await adminQuery(SERVER_URL, `DROP DATABASE IF EXISTS ${FLOOR_DATABASE} WITH (FORCE)`);
  return { instances, product, floor };
}

const curve: { instances: number; product: number; floor: number }[] = [];
for (const instances of SIZES) curve.push(await measureSize(instances));
console.log(`\nThe steady second's curve (load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}): growth exponent (log-log slope) of p50 between sizes\n`);
printCurve("instances", curve.map(({ instances, product, floor }) => ({ size: instances, product, floor })));

// --- 2. Soak: the real worker in real time ------------------------------------------------------
if (SOAK_SECONDS > 0) {
  await emptyDatabase();
  const soakStart = Math.floor(Date.now() / 1000);
  await seed(SOAK_INSTANCES, soakStart);
  const ids = (await prisma.instance.findMany({ select: { id: true } })).map((i) => i.id);
  const { startMeteringWorker } = await import("../workers/metering.ts");
  const worker = await startMeteringWorker();
  console.log(`soak: ${SOAK_INSTANCES} instances for ${SOAK_SECONDS} s`);
  const deadline = Date.now() + SOAK_SECONDS * 1000;
  let changes = 0;
  let maxBehind = 0;
  let maxBehindSteady = 0;
  const soakStarted = Date.now();
  /** The oldest phase's clock (epoch seconds; 0 before the first tick). */
  const oldestClock = async () => {
    const { _min } = await prisma.meteringClock.aggregate({ _min: { meteredUntil: true } });
    return (_min.meteredUntil?.getTime() ?? 0) / 1000;
  };
  while (Date.now() < deadline) {
    // A few stops and starts per second, like users and the auction.
    for (let i = 0; i < 5; i++) {
      const id = ids[Math.floor(Math.random() * ids.length)];
      const { status } = await prisma.instance.findUniqueOrThrow({ where: { id }, select: { status: true } });
      const event = status === "RUNNING" ? "STOP_REQUESTED" : status === "STOPPED" ? "START_REQUESTED" : status === "SCHEDULING" ? "ALLOCATED" : "AGENT_RUNNING";
      await eventAt(id, event, Date.now() / 1000);
      changes++;
    }
    const oldest = await oldestClock();
    if (oldest) {
      const behind = Date.now() / 1000 - oldest;
      maxBehind = Math.max(maxBehind, behind);
      // After the first 30 s: the opening ticks (every instance's first accrual rows) are behind.
      if (Date.now() > soakStarted + 30_000) maxBehindSteady = Math.max(maxBehindSteady, behind);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  const end = Math.floor(Date.now() / 1000) + 1;
  while ((await oldestClock()) < end) await new Promise((resolve) => setTimeout(resolve, 200));
  await worker.close();
  const clock = await oldestClock();
  const expected = await expectedCharges(await meteringClocks());
  const users = await prisma.user.findMany({ select: { id: true, balanceMicros: true } });
  const earned = expected.earned;
  const wrongBalances = users.filter((u) => u.balanceMicros !== (earned.get(u.id) ?? 0n) - (expected.charged.get(u.id) ?? 0n)).length;
  console.log(
    JSON.stringify({
      soakInstances: SOAK_INSTANCES,
      soakSeconds: SOAK_SECONDS,
      statusChanges: changes,
      meteredSeconds: clock - soakStart,
      maxClockBehindRealTimeS: maxBehind.toFixed(1),
      maxClockBehindAfter30sS: maxBehindSteady.toFixed(1),
      accounts: users.length,
      wrongBalances,
      ledgerMismatches: (await ledgerMismatches(prisma)).length,
    }),
  );
}
await prisma.$disconnect();
const { redis } = await import("../infra/redis.ts");
redis.disconnect();
process.exit(0);
