/**
 * Offer search benchmark: `npx tsx bench/search.ts` (not part of the test suite).
 *
 * Creates a fresh database on DATABASE_URL's server, migrates it, lists 20,000 machines with a
 * realistic mix of GPU models, sizes, prices and countries (their offers written by the real
 * syncOffers), starts the real app (buildApp) in a child process, and runs 24 realistic searches
 * over HTTP at concurrency 16, then the very SQL statements those searches build, directly with pg
 * at the same concurrency. Prints p50, p99 and queries per second of both, and their p50 ratio.
 *
 * Env: DATABASE_URL (server to use; default local postgres), REDIS_URL, BENCH_SECONDS (default 20),
 * BENCH_MACHINES (default 24000, see below), BENCH_KEEP=1 keeps the database, BENCH_DATABASE=<name>
 * reuses a kept one instead of seeding.
 *
 * A machine is offered in at most five chunk sizes (1, 2, 4, 8 and all of a 10–16 GPU box), and a
 * realistic fleet averages about 3.9, so the 100,000 offers the targets are about take ~25,000
 * machines rather than 20,000 (24,000 give ~93,000).
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import { availableParallelism, cpus, totalmem } from "node:os";
import pg from "pg";
import { seededRandom } from "../domain/seededRandom.ts";
import { openBenchDatabase, percentile, startAppProcess } from "./support.ts";
import { DAY_MS } from "../domain/time.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const MACHINES = Number(process.env.BENCH_MACHINES ?? 24_000);
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

async function seed(databaseUrl: string): Promise<number> {
  const { GPU_MODELS } = await import("../domain/dlperf.ts");
  const { machineDlperf } = await import("../domain/dlperf.ts");
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ id: number }>(
    `INSERT INTO user_account (email, password_hash) VALUES ('bench-host@example.com', 'x') RETURNING id`,
  );
  const hostId = rows[0].id;
  const models = GPU_MODELS.filter((model) => MARKET[model.gpuName]).map((model) => [model, MARKET[model.gpuName][0]] as const);
  const columns = [
    "host_id", "gpu_name", "num_gpus", "gpu_ram_mb", "compute_cap", "tflops_per_gpu", "gpu_mem_bw", "pcie_gen", "pcie_bw",
    "cpu_name", "cpu_cores", "cpu_ram_mb", "disk_space_gb", "disk_bw", "inet_up_mbps", "inet_down_mbps", "cuda_max_good",
    "driver_version", "country_code", "geolocation", "datacenter", "verification", "dlperf", "reliability", "online",
    "listed", "price_per_gpu_hour_micros", "min_bid_per_gpu_hour_micros", "storage_price_per_gb_month_micros",
    "inet_up_price_per_gb_micros", "inet_down_price_per_gb_micros", "min_chunk", "end_date", "gpus_on_demand", "updated_at",
  ];
  const types = [
    "int", "text", "int", "int", "int", "float8", "float8", "int", "float8", "text", "int", "int", "float8", "float8",
    "float8", "float8", "float8", "text", "text", "text", "bool", '"VerificationState"', "float8", "float8", "bool",
    "bool", "int8", "int8", "int8", "int8", "int8", "int", "timestamptz", "int", "timestamptz",
  ];
  const now = Date.now();
  const batch: unknown[][] = columns.map(() => []);
  const flush = async () => {
    await client.query(
      `INSERT INTO machine (${columns.join(", ")}) SELECT * FROM unnest(${types.map((type, i) => `$${i + 1}::${type}[]`).join(", ")})`,
      batch,
    );
    for (const column of batch) column.length = 0;
  };
  for (let i = 0; i < MACHINES; i++) {
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
    if (batch[0].length === 2000) await flush();
  }
  if (batch[0].length) await flush();
  await client.end();

  // Offers come from the real sync service, machine by machine, a few at a time.
  const { prisma } = await import("../infra/db.ts");
  const { syncOffers } = await import("../domain/offers/sync.ts");
  const ids = (await prisma.machine.findMany({ select: { id: true } })).map((m) => m.id);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < ids.length) await syncOffers(prisma, ids[next++]);
    }),
  );
  await prisma.$executeRawUnsafe("ANALYZE");
  const offers = await prisma.offer.count();
  await prisma.$disconnect();
  return offers;
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

async function main(): Promise<void> {
  const database = await openBenchDatabase(SERVER_URL, "bench_search");
  const databaseUrl = database.url;
  let server: ChildProcess | undefined;
  try {
    if (database.fresh) {
      const t0 = performance.now();
      const offers = await seed(databaseUrl);
      console.log(`Seeded ${MACHINES} machines, ${offers} offers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const counts = await countRows(databaseUrl);
    console.log(`Database ${database.name}: ${counts.machines} machines, ${counts.offers} offers`);

    const started = await startAppProcess(databaseUrl);
    server = started.child;
    const searches = await resolvePages(started.url);
    const { planOfferSearch } = await import("../domain/offers/search.ts");
    // The SQL the resolver would build: the same arguments, enum values as the domain spells them.
    const plans = searches.map(([, args]) => {
      const orderBy = (args.orderBy as { field: string; direction: string }[] | undefined)?.map((order) => ({
        ...order,
        field: order.field.toLowerCase(),
      }));
      return planOfferSearch({ ...args, orderBy } as never).sql;
    });
    const pool = new pg.Pool({ connectionString: databaseUrl, max: CONCURRENCY });
    const runSql = (i: number) => pool.query(plans[i].text, plans[i].values as unknown[]);
    const requests = searches.map(([, args]) => searchRequest(started.url, args));
    const runGraphql = (i: number) => requests[i]();

    // Warm both paths (plans, caches, JIT) before measuring.
    await measure(runGraphql, searches.length, 3);
    await measure(runSql, searches.length, 3);
    const http = await measure(runGraphql, searches.length, SECONDS);
    const sql = await measure(runSql, searches.length, SECONDS);
    await pool.end();
    agent.destroy();

    console.log(`\nMachine: ${availableParallelism()} cores (${cpus()[0].model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`);
    console.log(`${searches.length} searches round-robin, concurrency ${CONCURRENCY}, ${SECONDS} s each\n`);
    console.log("| search | GraphQL p50 ms | SQL p50 ms |");
    console.log("|---|---:|---:|");
    searches.forEach(([name], i) => console.log(`| ${name} | ${http.perQuery[i].toFixed(1)} | ${sql.perQuery[i].toFixed(1)} |`));
    console.log("\n| path | requests | p50 ms | p99 ms | queries/s |");
    console.log("|---|---:|---:|---:|---:|");
    for (const [name, stats] of [["GraphQL over HTTP", http], ["raw SQL (pg)", sql]] as const) {
      console.log(`| ${name} | ${stats.count} | ${stats.p50.toFixed(1)} | ${stats.p99.toFixed(1)} | ${stats.qps.toFixed(0)} |`);
    }
    console.log(`\nGraphQL-to-SQL p50 ratio: ${(http.p50 / sql.p50).toFixed(2)} (targets: p99 ≤ 50 ms, ratio ≤ 3)`);
  } finally {
    server?.kill("SIGTERM");
    if (server) await once(server, "exit");
    await database.release();
  }
}

await main();
