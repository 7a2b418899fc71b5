/**
 * Offer search benchmark: `npx tsx bench/search.ts [--sizes 10000,100000,1000000]` (not part of the
 * test suite).
 *
 * Creates a fresh database on DATABASE_URL's server, migrates it, and for each size in turn grows a
 * fleet of listed machines with a realistic mix of GPU models, sizes, prices and countries until it
 * has that many offers (machines and offers inserted set-wise, the offers being the real offer sync's
 * rows, checked against syncOffers on a sample), starts the real app (buildApp) in a child process,
 * and runs 24 realistic searches over HTTP at concurrency 16, then the very SQL statements those
 * searches build, directly with pg at the same concurrency. Prints p50, p99 and queries per second of
 * both and their p50 ratio at each size, then the curve: each figure's growth exponent between sizes.
 *
 * Env: DATABASE_URL (server to use; default local postgres), REDIS_URL, BENCH_SECONDS (default 20),
 * BENCH_SIZES (offers per size, as --sizes), BENCH_KEEP=1 keeps the database, BENCH_DATABASE=<name>
 * reuses a kept one (grown further when a size asks for more offers than it has).
 *
 * A machine is offered in at most five chunk sizes (1, 2, 4, 8 and all of a 10–16 GPU box), and this
 * fleet averages about 3.9, so 1,000,000 offers take ~256,000 machines.
 */
import { once } from "node:events";
import http from "node:http";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { type FieldNode, type OperationDefinitionNode, parse } from "graphql";
import pg from "pg";
import { seededRandom } from "../domain/seededRandom.ts";
import { growthExponent, openBenchDatabase, percentile, startAppProcess } from "./support.ts";
import { DAY_MS } from "../domain/time.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
/** Offers at each measured size: `--sizes 10000,100000` or BENCH_SIZES; the fleet grows from one size to the next. */
const SIZES = (parseArgs({ options: { sizes: { type: "string" } } }).values.sizes ?? process.env.BENCH_SIZES ?? "10000,100000,1000000")
  .split(",")
  .map(Number);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

// ---- Data ------------------------------------------------------------------------------------

const random = seededRandom(42);
function pick<T>(weighted: readonly (readonly [T, number])[]): T {
  const total = weighted.reduce((sum, [, weight]) => sum + weight, 0);
  let r = random() * total;
  for (const [value, weight] of weighted) if ((r -= weight) < 0) return value;
  return weighted[weighted.length - 1][0];
}
const between = (low: number, high: number) => low + random() * (high - low);

/** Share of the fleet and typical on-demand $/GPU-hour of each model, after public marketplace listings. */
const MARKET: Record<string, [weight: number, dollarsPerHour: number]> = {
  "RTX 4090": [20, 0.4], "RTX 3090": [15, 0.22], "RTX 3080": [4, 0.14], "RTX 3070": [3, 0.1],
  "RTX 3060": [3, 0.08], "RTX 4080": [4, 0.28], "RTX 4070": [3, 0.16], "RTX 5090": [5, 0.7],
  "A100 SXM4": [5, 1.2], "A100 PCIE": [3, 0.9], "H100 SXM": [5, 2.3], "H100 PCIE": [2, 1.9],
  H200: [1, 3.2], "RTX A6000": [4, 0.5], "RTX A5000": [3, 0.28], "RTX A4000": [3, 0.17],
  A40: [2, 0.45], A10: [2, 0.3], L4: [2, 0.3], L40S: [3, 0.85], "Tesla V100": [3, 0.28],
  "Tesla T4": [2, 0.12], "RTX 2080 Ti": [3, 0.14], "GTX 1080 Ti": [2, 0.09], "Titan V": [1, 0.18],
};

const PLACES: (readonly [[string, string], number])[] = [
  [["US", "California, US"], 14], [["US", "Texas, US"], 10], [["US", "Virginia, US"], 6], [["CA", "Quebec, CA"], 6],
  [["DE", "Bavaria, Germany"], 7], [["NL", "North Holland, Netherlands"], 4], [["GB", "England, GB"], 5],
  [["FR", "Ile-de-France, France"], 3], [["SE", "Stockholm, Sweden"], 3], [["FI", "Uusimaa, Finland"], 2],
  [["PL", "Masovia, Poland"], 3], [["CZ", "Prague, Czechia"], 2], [["RO", "Bucharest, Romania"], 2],
  [["UA", "Kyiv, Ukraine"], 2], [["JP", "Tokyo, Japan"], 4], [["KR", "Seoul, South Korea"], 3],
  [["SG", "Singapore, SG"], 3], [["TW", "Taipei, Taiwan"], 2], [["AU", "New South Wales, Australia"], 2],
  [["BR", "Sao Paulo, Brazil"], 2], [["IN", "Maharashtra, India"], 2], [["ES", "Madrid, Spain"], 2],
];

const CPUS: (readonly [string, number])[] = [
  ["AMD EPYC 7543 32-Core", 32], ["AMD EPYC 7763 64-Core", 64], ["AMD Ryzen 9 7950X", 16],
  ["Intel Xeon Gold 6338", 32], ["AMD Ryzen Threadripper PRO 5975WX", 32], ["Intel Core i9-13900K", 24],
  ["Intel Xeon E5-2680 v4", 14], ["AMD EPYC 9654 96-Core", 96],
];

const MACHINE_COLUMNS = [
  "host_id", "gpu_name", "num_gpus", "gpu_ram_mb", "compute_cap", "tflops_per_gpu", "gpu_mem_bw", "pcie_gen", "pcie_bw",
  "cpu_name", "cpu_cores", "cpu_ram_mb", "disk_space_gb", "disk_bw", "inet_up_mbps", "inet_down_mbps", "cuda_max_good",
  "driver_version", "country_code", "geolocation", "datacenter", "verification", "dlperf", "reliability", "online",
  "listed", "price_per_gpu_hour_micros", "min_bid_per_gpu_hour_micros", "storage_price_per_gb_month_micros",
  "inet_up_price_per_gb_micros", "inet_down_price_per_gb_micros", "min_chunk", "end_date", "gpus_on_demand", "updated_at",
];
const MACHINE_TYPES = [
  "int", "text", "int", "int", "int", "float8", "float8", "int", "float8", "text", "int", "int", "float8", "float8",
  "float8", "float8", "float8", "text", "text", "text", "bool", '"VerificationState"', "float8", "float8", "bool",
  "bool", "int8", "int8", "int8", "int8", "int8", "int", "timestamptz", "int", "timestamptz",
];

/** The next `count` machines of the fleet, as columns (MACHINE_COLUMNS) ready for unnest. */
async function fleetBatch(hostId: number, count: number, now: number): Promise<unknown[][]> {
  const { GPU_MODELS, machineDlperf } = await import("../domain/dlperf.ts");
  const models = GPU_MODELS.filter((model) => MARKET[model.gpuName]).map((model) => [model, MARKET[model.gpuName][0]] as const);
  const batch: unknown[][] = MACHINE_COLUMNS.map(() => []);
  for (let i = 0; i < count; i++) {
    const model = pick(models);
    const numGpus = pick([[1, 6], [2, 5], [4, 9], [8, 40], [10, 20], [12, 8], [16, 12]] as const);
    const minChunk = pick([[1, 90], [2, 6], [numGpus, 4]] as const);
    const [cpuName, cores] = pick(CPUS.map((cpu) => [cpu, 1] as const));
    const [countryCode, geolocation] = pick(PLACES);
    const datacenter = random() < 0.15;
    const pcieBw = Math.round(between(0.4, 1) * [0, 0.25, 0.5, 0.985, 1.969, 3.938, 7.563][model.pcieGen] * 16 * 10) / 10;
    const specs = {
      gpuName: model.gpuName, numGpus, gpuRamMb: model.gpuRamMb, computeCap: model.computeCap,
      tflopsPerGpu: model.tflopsPerGpu, gpuMemBw: model.gpuMemBw, pcieGen: model.pcieGen, pcieBw,
      cpuCores: Math.max(cores, numGpus * 2), diskBw: Math.round(between(500, 7000)),
    };
    const price = MARKET[model.gpuName][1] * between(0.7, 1.5);
    const priceMicros = BigInt(Math.round(price * 1000) * 1000);
    const values = [
      hostId, model.gpuName, numGpus, model.gpuRamMb, model.computeCap, model.tflopsPerGpu, model.gpuMemBw, model.pcieGen,
      pcieBw, cpuName, specs.cpuCores, pick([[64_000, 2], [128_000, 4], [256_000, 3], [512_000, 2], [1_024_000, 1]] as const),
      Math.round(between(200, 8000)), specs.diskBw, Math.round(between(50, 10_000)), Math.round(between(100, 10_000)),
      pick([[11.8, 1], [12.2, 2], [12.4, 4], [12.8, 3]] as const), pick([["535.183.01", 2], ["550.54.15", 4], ["570.86.10", 3]] as const),
      countryCode, geolocation, datacenter, pick([["VERIFIED", 75], ["UNVERIFIED", 20], ["DEVERIFIED", 5]] as const),
      machineDlperf(specs), Math.round((1 - random() ** 3 * 0.25) * 10_000) / 10_000, random() < 0.95, true,
      priceMicros, (priceMicros * BigInt(Math.round(between(40, 100)))) / 100n,
      BigInt(Math.round(between(0.05, 0.3) * 1000) * 1000), BigInt(Math.round(between(0, 0.02) * 1000) * 1000),
      BigInt(Math.round(between(0, 0.02) * 1000) * 1000), minChunk,
      new Date(now + between(1, 180) * DAY_MS), random() < 0.3 ? Math.floor(random() * numGpus) : 0, new Date(now),
    ];
    values.forEach((value, column) => batch[column].push(typeof value === "bigint" ? value.toString() : value));
  }
  return batch;
}

/** Machines inserted per statement while seeding; their offers follow in one statement too. */
const SEED_BATCH = 5_000;

/** About how many offers a machine of this fleet has: sizes the last batch to land near a size. */
const OFFERS_PER_MACHINE = 3.9;

/**
 * Inserts `rows` (objects keyed by the Prisma model's field names, whose columns are their snake_case)
 * into `table` in one statement: one array per column, unnested, typed as the catalog types them.
 */
async function insertRows(client: pg.Client, table: string, rows: Record<string, unknown>[]): Promise<void> {
  if (rows.length === 0) return;
  const fields = Object.keys(rows[0]);
  const columns = fields.map((field) => field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`));
  const { rows: types } = await client.query<{ column: string; type: string }>(
    "SELECT column_name AS column, udt_name AS type FROM information_schema.columns WHERE table_name = $1 AND column_name = ANY($2)",
    [table, columns],
  );
  const typeOf = new Map(types.map((row) => [row.column, row.type]));
  await client.query(
    `INSERT INTO ${table} (${columns.join(", ")}) SELECT * FROM unnest(${columns.map((column, i) => `$${i + 1}::"${typeOf.get(column)}"[]`).join(", ")})`,
    fields.map((field) => rows.map((row) => (typeof row[field] === "bigint" ? String(row[field]) : row[field]))),
  );
}

/**
 * Grows the fleet until it has at least `targetOffers` offers; returns the seconds it took.
 * Machines are inserted set-wise (unnest of column arrays) and so are their offers: the rows are
 * the real offer sync's (`offerRows`) for a machine with nothing on it yet (no instances, no
 * maintenance window), which is what a new listing is; checkSeededOffers compares a sample with
 * what `syncOffers` itself writes. The offer table's secondary indexes are dropped during a large
 * load and rebuilt after it, as a bulk load does.
 */
async function grow(databaseUrl: string, targetOffers: number): Promise<{ seconds: number; added: number }> {
  const t0 = performance.now();
  const { prisma } = await import("../infra/db.ts");
  const { offerRows, offered } = await import("../domain/offers/sync.ts");
  const { directPortRangeSize } = await import("../domain/instances/ports.ts");
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    let { rows: [{ offers }] } = await client.query<{ offers: number }>("SELECT count(*)::int AS offers FROM offer");
    if (offers >= targetOffers) return { seconds: 0, added: 0 };
    const hostId = (
      await client.query<{ id: number }>(
        `INSERT INTO user_account (email, password_hash) VALUES ('bench-host@example.com', 'x')
         ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id`,
      )
    ).rows[0].id;
    const bulk = targetOffers - offers > offers;
    const { rows: indexes } = await client.query<{ name: string; definition: string }>(
      `SELECT indexname AS name, indexdef AS definition FROM pg_indexes
        WHERE tablename = 'offer' AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'offer'::regclass)`,
    );
    if (bulk) for (const { name } of indexes) await client.query(`DROP INDEX "${name}"`);
    let added = 0;
    const now = new Date();
    while (offers < targetOffers) {
      const count = Math.min(SEED_BATCH, Math.ceil((targetOffers - offers) / OFFERS_PER_MACHINE));
      const batch = await fleetBatch(hostId, count, now.getTime());
      const { rows } = await client.query<{ id: number }>(
        `INSERT INTO machine (${MACHINE_COLUMNS.join(", ")})
         SELECT * FROM unnest(${MACHINE_TYPES.map((type, i) => `$${i + 1}::${type}[]`).join(", ")}) RETURNING id`,
        batch,
      );
      const machines = await prisma.machine.findMany({ where: { id: { in: rows.map((row) => row.id) } } });
      const seeded = machines.filter(offered).flatMap((machine) =>
        offerRows(
          machine,
          { maintenanceStartsAt: null, contracts: [], directPortCount: directPortRangeSize(machine), diskSpace: machine.diskSpaceGb },
          now,
        ),
      );
      await insertRows(client, "offer", seeded);
      offers += seeded.length;
      added += seeded.length;
    }
    if (bulk) for (const { definition } of indexes) await client.query(definition);
    await client.query("ANALYZE");
    return { seconds: (performance.now() - t0) / 1000, added };
  } finally {
    await client.end();
  }
}

/**
 * Throws unless `sampleSize` seeded machines' offers are exactly what the real syncOffers writes
 * for them: each sampled machine's rows are read, synced, read again and compared field by field.
 */
async function checkSeededOffers(sampleSize: number): Promise<void> {
  const { prisma } = await import("../infra/db.ts");
  const { syncOffers } = await import("../domain/offers/sync.ts");
  const sample = await prisma.$queryRaw<{ id: number }[]>`SELECT id FROM machine ORDER BY md5(id::text) LIMIT ${sampleSize}`;
  const ids = sample.map((machine) => machine.id);
  const read = async () => {
    const rows = await prisma.offer.findMany({ where: { machineId: { in: ids } }, orderBy: { id: "asc" } });
    return rows.map((row) => JSON.stringify(row, (_, value) => (typeof value === "bigint" ? `${value}n` : value)));
  };
  const seeded = await read();
  for (const id of ids) await syncOffers(prisma, id);
  const synced = await read();
  const first = synced.findIndex((row, i) => row !== seeded[i]);
  if (seeded.length !== synced.length || first >= 0) {
    throw new Error(`seeded offers differ from syncOffers' (${seeded.length} vs ${synced.length} rows): ${seeded[first]} vs ${synced[first]}`);
  }
  console.log(`Checked: ${seeded.length} seeded offers of ${ids.length} machines equal what syncOffers writes for them`);
}

// ---- Queries ---------------------------------------------------------------------------------

type SearchArgs = Record<string, unknown>;

/**
 * What people search for: the CLI's typical filters and sorts, the web page's defaults, later pages.
 * Pages of 25 (14 searches), 50 (5) and 100 (5) offers; every page size is explicit.
 */
const SEARCHES: [name: string, args: SearchArgs][] = [
  ["default page", { first: 25 }],
  ["4090 ×1 cheapest", { query: "gpu_name=RTX_4090 num_gpus=1", orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 25 }],
  ["4090 ≥2 reliable", { query: "gpu_name=RTX_4090 num_gpus>=2 reliability>0.98", first: 25 }],
  ["8× 80 GB", { query: "num_gpus>=8 gpu_ram>=80", first: 50 }],
  ["under $0.50 best value", { query: "dph<0.5", orderBy: [{ field: "DLPERF_PER_DPHTOTAL", direction: "DESC" }], first: 25 }],
  ["H100 cheapest", { query: "gpu_name in [H100_SXM,H100_PCIE]", orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 25 }],
  ["secure cloud US/CA", { query: "geolocation in [US,CA] datacenter=true", first: 50 }],
  ["fast network", { query: "cuda_vers>=12.4 inet_down>=5000", orderBy: [{ field: "INET_DOWN", direction: "DESC" }], first: 25 }],
  ["3090 any verification", { query: "gpu_name=RTX_3090 verified=any", orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 50 }],
  ["top DLPerf", { query: "reliability>0.99 dlperf>=30", orderBy: [{ field: "DLPERF", direction: "DESC" }], first: 25 }],
  ["160 GB VRAM cheapest", { query: "compute_cap>=800 gpu_total_ram>=160", orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 25 }],
  ["4090 with 50 GB disk", { query: "gpu_name=RTX_4090", storageGb: 50, first: 50 }],
  ["A100 ≥4 (filter input)", { filter: { gpuNames: ["A100 SXM4", "A100 PCIE"], minNumGpus: 4 }, first: 50 }],
  ["30 days, single GPU", { query: "duration>=30 num_gpus=1", orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 25 }],
  ["datacenter by score", { query: "datacenter=true", first: 100 }],
  ["5090 page of 100", { query: "gpu_name=RTX_5090", first: 100 }],
  ["cheap bids", { query: "min_bid<0.2 num_gpus=1", orderBy: [{ field: "MIN_BID", direction: "ASC" }], first: 25 }],
  ["big disk and RAM", { query: "disk_space>=4000 cpu_ram>=256", orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 25 }],
  ["Europe 4090/3090", { query: "geolocation in [DE,NL,FR,SE,FI,PL] gpu_name in [RTX_4090,RTX_3090]", first: 25 }],
  ["score page of 100", { first: 100 }],
  ["dph page 1 of 100", { orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 100 }],
  ["default page 2", { first: 25, page: 2 }],
  ["default page 3", { first: 25, page: 3 }],
  ["dph page 2", { orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }], first: 100, page: 2 }],
];

const GRAPHQL = `query Search($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $storageGb: Float, $first: Int, $after: String) {
  offers(query: $query, filter: $filter, orderBy: $orderBy, storageGb: $storageGb, first: $first, after: $after) {
    edges { node {
      id machineId hostId gpuName numGpus gpuRam cpuName cpuCores cpuRam diskSpace inetUp inetDown cudaMaxGood
      dphTotal pricePerGpuHour minBid dlperf dlperfPerDphTotal reliability score verified datacenter geolocation durationDays
    } }
    pageInfo { hasNextPage endCursor }
  }
}`;

async function graphql(url: string, variables: SearchArgs): Promise<any> {
  const body: any = JSON.parse(await post(url, JSON.stringify({ query: GRAPHQL, variables })));
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.offers;
}

// The load generator shares the 2 cores with the app and PostgreSQL, so it is kept lean: plain
// node:http on kept-alive sockets, request bodies serialized once, responses checked, not parsed.
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function post(url: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => resolve(Buffer.concat(chunks).toString()));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

/** A search as the measured loop sends it: its body serialized once, the answer checked without parsing. */
function searchRequest(url: string, variables: SearchArgs): () => Promise<void> {
  const body = JSON.stringify({ query: GRAPHQL, variables });
  return async () => {
    const text = await post(url, body);
    if (!text.startsWith('{"data":{"offers":{"edges":[') || text.includes('"errors":')) throw new Error(text.slice(0, 500));
  };
}

/** Resolves `page: n` into the cursor of page n-1, fetched once before measuring. */
async function resolvePages(url: string): Promise<[string, SearchArgs][]> {
  const resolved: [string, SearchArgs][] = [];
  for (const [name, { page, ...args }] of SEARCHES) {
    let after: string | null = null;
    for (let p = 1; p < ((page as number | undefined) ?? 1); p++) after = (await graphql(url, { ...args, after })).pageInfo.endCursor;
    resolved.push([name, after ? { ...args, after } : args]);
  }
  return resolved;
}

// ---- Measuring -------------------------------------------------------------------------------

interface Stats {
  count: number;
  p50: number;
  p99: number;
  qps: number;
  perQuery: number[];
}


/** Runs the searches round-robin on CONCURRENCY workers for `seconds`; latencies in ms. */
async function measure(run: (i: number) => Promise<unknown>, kinds: number, seconds: number): Promise<Stats> {
  const all: number[] = [];
  const byKind: number[][] = Array.from({ length: kinds }, () => []);
  let next = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const kind = next++ % kinds;
        const t0 = performance.now();
        await run(kind);
        const ms = performance.now() - t0;
        all.push(ms);
        byKind[kind].push(ms);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  all.sort((a, b) => a - b);
  return {
    count: all.length,
    p50: percentile(all, 50),
    p99: percentile(all, 99),
    qps: all.length / elapsed,
    perQuery: byKind.map((list) => percentile(list.sort((a, b) => a - b), 50)),
  };
}

async function countRows(databaseUrl: string): Promise<{ machines: number; offers: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query(
    "SELECT (SELECT count(*) FROM machine)::int AS machines, (SELECT count(*) FROM offer)::int AS offers",
  );
  await client.end();
  return rows[0];
}

interface SizeResult {
  machines: number;
  offers: number;
  seedSeconds: number;
  graphql: Stats;
  sql: Stats;
}

/** Runs the 24 searches over GraphQL (the real app in a child process) and as their SQL through pg. */
async function benchSize(databaseUrl: string): Promise<{ graphql: Stats; sql: Stats }> {
  const started = await startAppProcess(databaseUrl);
  try {
    const searches = await resolvePages(started.url);
    const { planOfferSearch } = await import("../domain/offers/search.ts");
    const { askedOfferColumns } = await import("../schema/offer.ts");
    const operation = parse(GRAPHQL).definitions[0] as OperationDefinitionNode;
    const columns = askedOfferColumns(operation.selectionSet.selections as FieldNode[]);
    // The SQL the resolver would build: the same arguments and selected fields, enum values as the domain spells them.
    const plans = searches.map(([, args]) => {
      const orderBy = (args.orderBy as { field: string; direction: string }[] | undefined)?.map((order) => ({
        ...order,
        field: order.field.toLowerCase(),
      }));
      return planOfferSearch({ ...args, orderBy } as never, columns).sql;
    });
    // The floor's connections have the session settings of the app's.
    const { REQUEST_SESSION_OPTIONS } = await import("../infra/db.ts");
    const pool = new pg.Pool({ connectionString: databaseUrl, max: CONCURRENCY, options: REQUEST_SESSION_OPTIONS });
    const runSql = (i: number) => pool.query(plans[i].text, plans[i].values as unknown[]);
    const requests = searches.map(([, args]) => searchRequest(started.url, args));
    const runGraphql = (i: number) => requests[i]();

    // Warm both paths (plans, caches, JIT) before measuring.
    await measure(runGraphql, searches.length, 3);
    await measure(runSql, searches.length, 3);
    const graphql = await measure(runGraphql, searches.length, SECONDS);
    const sql = await measure(runSql, searches.length, SECONDS);
    await pool.end();

    console.log("| search | GraphQL p50 ms | SQL p50 ms |");
    console.log("|---|---:|---:|");
    searches.forEach(([name], i) => console.log(`| ${name} | ${graphql.perQuery[i].toFixed(1)} | ${sql.perQuery[i].toFixed(1)} |`));
    console.log("\n| path | requests | p50 ms | p99 ms | queries/s |");
    console.log("|---|---:|---:|---:|---:|");
    for (const [name, stats] of [["GraphQL over HTTP", graphql], ["raw SQL (pg)", sql]] as const) {
      console.log(`| ${name} | ${stats.count} | ${stats.p50.toFixed(1)} | ${stats.p99.toFixed(1)} | ${stats.qps.toFixed(0)} |`);
    }
    console.log(`\nGraphQL-to-SQL p50 ratio: ${(graphql.p50 / sql.p50).toFixed(2)} (targets: p99 ≤ 50 ms, ratio ≤ 2.5)\n`);
    return { graphql, sql };
  } finally {
    started.child.kill("SIGTERM");
    await once(started.child, "exit");
  }
}

function printCurve(results: SizeResult[]): void {
  console.log(`Machine: ${availableParallelism()} cores (${cpus()[0].model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`${SEARCHES.length} searches round-robin, concurrency ${CONCURRENCY}, ${SECONDS} s each\n`);
  console.log("| offers | machines | seeding s | GraphQL p50 / p99 ms | SQL p50 / p99 ms | ratio p50 | exponent GraphQL p50 / p99 | exponent SQL p50 / p99 |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
  results.forEach((result, i) => {
    const previous = results[i - 1];
    const slopes = previous
      ? [
          `${growthExponent(previous.offers, previous.graphql.p50, result.offers, result.graphql.p50)} / ${growthExponent(previous.offers, previous.graphql.p99, result.offers, result.graphql.p99)}`,
          `${growthExponent(previous.offers, previous.sql.p50, result.offers, result.sql.p50)} / ${growthExponent(previous.offers, previous.sql.p99, result.offers, result.sql.p99)}`,
        ]
      : ["", ""];
    console.log(
      `| ${result.offers} | ${result.machines} | ${result.seedSeconds.toFixed(1)} | ${result.graphql.p50.toFixed(1)} / ${result.graphql.p99.toFixed(1)} | ` +
        `${result.sql.p50.toFixed(1)} / ${result.sql.p99.toFixed(1)} | ${(result.graphql.p50 / result.sql.p50).toFixed(2)} | ${slopes.join(" | ")} |`,
    );
  });
}

async function main(): Promise<void> {
  const database = await openBenchDatabase(SERVER_URL, "bench_search");
  const results: SizeResult[] = [];
  try {
    for (const size of SIZES) {
      const { seconds, added } = await grow(database.url, size);
      const counts = await countRows(database.url);
      console.log(`## ${counts.offers} offers (${counts.machines} machines), database ${database.name}: seeded ${added} offers in ${seconds.toFixed(1)} s, load average ${loadavg()[0].toFixed(2)}`);
      await checkSeededOffers(200);
      results.push({ ...counts, seedSeconds: seconds, ...(await benchSize(database.url)) });
    }
    agent.destroy();
    printCurve(results);
  } finally {
    const { prisma } = await import("../infra/db.ts");
    await prisma.$disconnect();
    await database.release();
  }
}

await main();
