import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { gpuModel, machineDlperf } from "../domain/dlperf.ts";
import { formatMoney, parseMoney } from "../domain/money.ts";
import { dphTotalMicros } from "../domain/offers/ranking.ts";
import { type OfferSearchArgs, planOfferSearch } from "../domain/offers/search.ts";
import { syncOffers } from "../domain/offers/sync.ts";
import { prisma } from "../infra/db.ts";
import type { Prisma } from "../prisma/generated/client/client.ts";
import { useTestApp } from "./support/app.ts";

const app = useTestApp();

const OFFER_FIELDS = `
  id machineId hostId gpuName numGpus gpuRam gpuTotalRam computeCap totalFlops gpuMemBw pcieGen pcieBw
  cpuName cpuCores cpuRam diskSpace diskBw inetUp inetDown cudaMaxGood driverVersion
  dphTotal pricePerGpuHour minBid storageCostPerGbMonth inetUpCostPerGb inetDownCostPerGb
  dlperf dlperfPerDphTotal flopsPerDphTotal reliability score verified datacenter geolocation countryCode
  endDate durationDays rentable rented winningBid`;

const OFFERS = `
  query Offers($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $storageGb: Float, $first: Int, $after: String) {
    offers(query: $query, filter: $filter, orderBy: $orderBy, storageGb: $storageGb, first: $first, after: $after) {
      edges { cursor node { ${OFFER_FIELDS} } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }`;

interface OfferNode {
  id: string;
  machineId: number;
  gpuName: string;
  numGpus: number;
  dphTotal: string;
  pricePerGpuHour: string;
  score: number;
  dlperfPerDphTotal: number;
  reliability: number;
  verified: boolean;
  [field: string]: unknown;
}

interface Page {
  offers: OfferNode[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string | null };
}

async function search(variables: Record<string, unknown> = {}): Promise<Page> {
  const result = await app.gql(OFFERS, { first: 100, ...variables });
  expect(result.errors).toBeUndefined();
  return {
    offers: result.data.offers.edges.map((edge: { node: OfferNode }) => edge.node),
    pageInfo: result.data.offers.pageInfo,
  };
}

async function ids(variables: Record<string, unknown> = {}): Promise<string[]> {
  return (await search(variables)).offers.map((offer) => offer.id);
}

/** Every offer of the search, two a page through the cursors. */
async function walk(variables: Record<string, unknown>): Promise<string[]> {
  const seen: string[] = [];
  let after: string | null = null;
  for (let page = 0; page < 20; page++) {
    const result = await search({ ...variables, first: 2, after });
    seen.push(...result.offers.map((offer) => offer.id));
    expect(result.pageInfo.hasPreviousPage).toBe(after !== null);
    if (!result.pageInfo.hasNextPage) return seen;
    after = result.pageInfo.endCursor;
  }
  throw new Error("did not finish");
}

const future = new Date(Date.now() + 30 * 86_400_000);
let hostId: number;
let seq = 0;

/** A listed machine, inserted directly and synced into offers; returns its id. */
async function machine(overrides: Partial<Prisma.MachineUncheckedCreateInput> = {}): Promise<number> {
  const model = gpuModel(overrides.gpuName ?? "RTX 4090")!;
  const specs = {
    hostId,
    gpuName: model.gpuName,
    numGpus: 1,
    gpuRamMb: model.gpuRamMb,
    computeCap: model.computeCap,
    tflopsPerGpu: model.tflopsPerGpu,
    gpuMemBw: model.gpuMemBw,
    pcieGen: model.pcieGen,
    pcieBw: 25,
    cpuName: "AMD EPYC 7543",
    cpuCores: 32,
    cpuRamMb: 128_000,
    diskSpaceGb: 1000,
    diskBw: 3000,
    inetUpMbps: 800,
    inetDownMbps: 900,
    cudaMaxGood: 12.4,
    driverVersion: "550.54.15",
    countryCode: "US",
    geolocation: "Texas, US",
    verification: "VERIFIED" as const,
    reliability: 0.99,
    listed: true,
    // Odd prices so that storage pricing has to round.
    pricePerGpuHourMicros: 400_001n + BigInt(seq++),
    storagePricePerGbMonthMicros: 150_007n,
    endDate: future,
    ...overrides,
  };
  const created = await prisma.machine.create({ data: { ...specs, dlperf: machineDlperf(specs) } });
  await syncOffers(prisma, created.id);
  return created.id;
}

const offerIds = (machineId: number, ...chunks: number[]) => chunks.map((n) => `Offer:${machineId}-${n}`);

let m4090x8: number;
let m4090x1: number;
let m3090de: number;
let unverified: number;
let offline: number;
let a100dc: number;

beforeAll(async () => {
  hostId = (await prisma.user.create({ data: { email: "host@example.com", passwordHash: "x" } })).id;
  m4090x8 = await machine({ numGpus: 8, minChunk: 1, reliability: 0.995 });
  m4090x1 = await machine({ reliability: 0.9, pricePerGpuHourMicros: 300_000n });
  m3090de = await machine({ gpuName: "RTX 3090", numGpus: 2, countryCode: "DE", geolocation: "Berlin, Germany" });
  unverified = await machine({ gpuName: "RTX 3090", verification: "UNVERIFIED" });
  offline = await machine({ gpuName: "RTX 3090", online: false });
  a100dc = await machine({
    gpuName: "A100 SXM4",
    numGpus: 4,
    minChunk: 2,
    datacenter: true,
    countryCode: "CA",
    geolocation: "Quebec, CA",
    pricePerGpuHourMicros: 1_200_000n,
    storagePricePerGbMonthMicros: 0n,
  });
  await machine({ listed: false, gpuName: "H100 SXM" });
});

describe("filters", () => {
  it("by default shows verified, rentable offers of listed machines only", async () => {
    expect((await ids()).sort()).toEqual(
      [...offerIds(m4090x8, 1, 2, 4, 8), ...offerIds(m4090x1, 1), ...offerIds(m3090de, 1, 2), ...offerIds(a100dc, 2, 4)].sort(),
    );
  });

  it("verified=any and rentable=any lift the defaults, in the query or the filter", async () => {
    const all = await ids({ query: "verified=any rentable=any gpu_name=RTX_3090" });
    expect(all.sort()).toEqual([...offerIds(m3090de, 1, 2), ...offerIds(unverified, 1), ...offerIds(offline, 1)].sort());
    const viaFilter = await ids({ query: "gpu_name=RTX_3090", filter: { verified: null } });
    expect(viaFilter.sort()).toEqual([...offerIds(m3090de, 1, 2), ...offerIds(unverified, 1)].sort());
    expect(await ids({ query: "gpu_name=RTX_3090 verified=false" })).toEqual(offerIds(unverified, 1));
  });

  it("combines clauses: model, GPU count, operators and lists", async () => {
    expect((await ids({ query: "gpu_name=RTX_4090 num_gpus>=2" })).sort()).toEqual(offerIds(m4090x8, 2, 4, 8).sort());
    expect((await ids({ query: "gpu_name=RTX_4090 num_gpus gt 1.5 num_gpus lte 4.5" })).sort()).toEqual(
      offerIds(m4090x8, 2, 4).sort(),
    );
    expect((await ids({ query: "num_gpus in [2,8] gpu_name notin [A100_SXM4]" })).sort()).toEqual(
      [...offerIds(m4090x8, 2, 8), ...offerIds(m3090de, 2)].sort(),
    );
    expect(await ids({ query: "gpu_ram>=80 datacenter=true" })).toHaveLength(2);
    expect(await ids({ query: "reliability<0.95" })).toEqual(offerIds(m4090x1, 1));
    expect(await ids({ query: "machine_id=" + a100dc + " num_gpus=3" })).toEqual([]);
    expect(await ids({ query: "driver_version=null" })).toEqual([]);
  });

  it("geolocation matches a country code or location text", async () => {
    expect((await ids({ query: "geolocation=DE" })).sort()).toEqual(offerIds(m3090de, 1, 2).sort());
    expect((await ids({ query: "geolocation=germany" })).sort()).toEqual(offerIds(m3090de, 1, 2).sort());
    expect((await ids({ query: "geolocation in [de,Quebec]" })).sort()).toEqual(
      [...offerIds(m3090de, 1, 2), ...offerIds(a100dc, 2, 4)].sort(),
    );
    expect(await ids({ query: "geolocation notin [US,DE]" })).toEqual(expect.arrayContaining(offerIds(a100dc, 2, 4)));
    expect((await ids({ filter: { countries: ["ca"] } })).sort()).toEqual(offerIds(a100dc, 2, 4).sort());
  });

  it("compares dph_total exactly in micro-dollars", async () => {
    const [offer] = (await search({ query: `machine_id=${m4090x1}` })).offers;
    expect(offer.dphTotal).toBe("0.302083"); // 0.30 + 10 GB × 0.150007 / 720, rounded to the micro-dollar
    expect(await ids({ query: `machine_id=${m4090x1} dph<0.302083` })).toEqual([]);
    expect(await ids({ query: `machine_id=${m4090x1} dph<=0.302083` })).toEqual(offerIds(m4090x1, 1));
    expect(await ids({ query: `machine_id=${m4090x1}`, filter: { maxDphTotal: "0.302082" } })).toEqual([]);
  });

  it("the structured filter narrows like query clauses", async () => {
    const found = await ids({
      filter: { gpuNames: ["RTX 4090", "A100 SXM4"], minNumGpus: 2, maxNumGpus: 4, minGpuRamGb: 40, datacenter: true },
    });
    expect(found.sort()).toEqual(offerIds(a100dc, 2, 4).sort());
  });
});

describe("order", () => {
  it("defaults to score descending: DLPerf per $/hr × reliability³", async () => {
    const { offers } = await search();
    const scores = offers.map((offer) => offer.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    for (const offer of offers) {
      expect(offer.score).toBeCloseTo(offer.dlperfPerDphTotal * offer.reliability ** 3, 9);
      expect(offer.dlperfPerDphTotal).toBeCloseTo((offer.dlperf as number) / Number(offer.dphTotal), 9);
    }
  });

  it("sorts any numeric field both ways, ties broken by id", async () => {
    const asc = (await search({ orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }] })).offers;
    const prices = asc.map((offer) => Number(offer.dphTotal));
    expect(prices).toEqual([...prices].sort((a, b) => a - b));
    const desc = (await search({ orderBy: [{ field: "DPH_TOTAL", direction: "DESC" }] })).offers;
    expect(desc.map((o) => o.id)).toEqual(asc.map((o) => o.id).reverse());

    const byGpus = (await search({ orderBy: [{ field: "NUM_GPUS", direction: "DESC" }, { field: "DURATION", direction: "ASC" }] }))
      .offers;
    const counts = byGpus.map((offer) => offer.numGpus);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
  });
});

describe("pagination", () => {
  it.each([
    ["default order", {}],
    ["one key ascending", { orderBy: [{ field: "NUM_GPUS", direction: "ASC" }] }],
    ["mixed directions", { orderBy: [{ field: "GPU_RAM", direction: "DESC" }, { field: "DPH_TOTAL", direction: "ASC" }] }],
    ["duration", { orderBy: [{ field: "DURATION", direction: "DESC" }], query: "verified=any" }],
    ["other storage size", { storageGb: 500, orderBy: [{ field: "SCORE", direction: "ASC" }] }],
    ["more disk by score (bounded by the stored score)", { storageGb: 500 }],
    ["more disk by price (bounded by the stored price)", { storageGb: 500, orderBy: [{ field: "DPH_TOTAL", direction: "ASC" }] }],
  ])("pages through %s without duplicates or gaps", async (_name, variables) => {
    const whole = await ids(variables);
    expect(whole.length).toBeGreaterThan(5);
    expect(await walk(variables)).toEqual(whole);
  });

  it("rejects a cursor made for another order, and bad page sizes", async () => {
    const { pageInfo } = await search({ first: 1 });
    const wrong = await app.gql(OFFERS, { first: 1, after: pageInfo.endCursor, orderBy: [{ field: "DLPERF", direction: "ASC" }] });
    expect(wrong.errors?.[0].extensions?.code).toBe("VALIDATION");
    expect((await app.gql(OFFERS, { after: "nonsense" })).errors?.[0].extensions?.code).toBe("VALIDATION");
    expect((await app.gql(OFFERS, { first: 101 })).errors?.[0].extensions?.code).toBe("VALIDATION");
    expect((await app.gql(OFFERS, { storageGb: -1 })).errors?.[0].extensions?.code).toBe("VALIDATION");
  });
});

describe("storage pricing", () => {
  it("dphTotal adds storageGb of storage at the monthly price over 720 hours", async () => {
    const query = `machine_id=${m3090de} num_gpus=2`;
    const [none] = (await search({ query, storageGb: 0 })).offers;
    const [lots] = (await search({ query, storageGb: 720 })).offers;
    const [standard] = (await search({ query })).offers;
    expect(none.dphTotal).toBe(formatMoney(parseMoney(none.pricePerGpuHour)! * 2n));
    // 720 GB for 720 hours is one GB-month.
    expect(lots.dphTotal).toBe(formatMoney(parseMoney(none.dphTotal)! + 150_007n));
    expect(standard.dphTotal).toBe(formatMoney(dphTotalMicros(parseMoney(none.dphTotal)!, 150_007n, 10)));
    expect(lots.score).toBeLessThan(standard.score);
    // The filter prices the same storage the result shows.
    expect(await ids({ query: `${query} dph<=${lots.dphTotal}`, storageGb: 720 })).toHaveLength(1);
    expect(await ids({ query: `${query} dph<${lots.dphTotal}`, storageGb: 720 })).toHaveLength(0);
  });

  it("the stored default-disk ranking equals the per-query computation", async () => {
    const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query(`
        SELECT count(*)::int AS mismatches FROM offer
        WHERE dph_total_micros <> gpu_dph_micros + (storage_cost_micros * 10000 + 360000) / 720000
           OR dlperf_per_dphtotal <> dlperf * 1000000 / GREATEST(dph_total_micros, 1)
           OR score <> dlperf_per_dphtotal * (reliability * reliability * reliability)`);
      expect(rows[0].mismatches).toBe(0);
    } finally {
      await client.end();
    }
    // storageGb 10.0001 takes the computed path; it prices within a micro-dollar of the stored one.
    const stored = await search({ orderBy: [{ field: "SCORE", direction: "DESC" }] });
    const computed = await search({ orderBy: [{ field: "SCORE", direction: "DESC" }], storageGb: 10.0004 });
    expect(computed.offers.map((o) => [o.id, o.dphTotal, o.score])).toEqual(stored.offers.map((o) => [o.id, o.dphTotal, o.score]));
  });
});

describe("access and errors", () => {
  it("answers anonymous callers, and shows no host private data", async () => {
    const result = await app.gql(`{ offers(first: 1) { edges { node { id hostId machineId } } } }`);
    expect(result.errors).toBeUndefined();
    expect(JSON.stringify(result.data)).not.toContain("example.com");
    expect(result.data.offers.edges[0].node.hostId).toBe(`User:${hostId}`);
  });

  it("a query it cannot read fails with INVALID_QUERY naming the token", async () => {
    for (const [query, token] of [
      ["gpu_nmae=RTX_4090", "gpu_nmae"],
      ["num_gpus>=two", "two"],
      ["gpu_name in [A,B", "[A,B"],
      ["verified>true", ">"],
    ]) {
      const result = await app.gql(OFFERS, { query });
      expect(result.data).toBeNull();
      expect(result.errors?.[0].extensions?.code).toBe("INVALID_QUERY");
      expect(result.errors?.[0].message).toContain(token);
    }
  });

  it("sends user values as bound parameters", async () => {
    const { offers } = await search({ query: `gpu_name="x' OR 1=1 --"`, filter: { gpuNames: ["'; DROP TABLE offer; --"] } });
    expect(offers).toEqual([]);
    expect(await prisma.offer.count()).toBeGreaterThan(0);
  });
});

describe("the reference's vocabulary", () => {
  let v100jp: number;
  let grace: number;
  let deverified: number;

  beforeAll(async () => {
    v100jp = await machine({
      gpuName: "Tesla V100",
      numGpus: 4,
      minChunk: 2,
      cudaMaxGood: 11.8,
      inetDownMbps: 300,
      diskSpaceGb: 60,
      reliability: 0.97,
      countryCode: "JP",
      geolocation: "Tokyo, JP",
    });
    grace = await machine({ gpuName: "H100 SXM", cpuName: "NVIDIA Grace CPU", pcieGen: 5, pricePerGpuHourMicros: 2_500_000n });
    deverified = await machine({ verification: "DEVERIFIED" });
    await machine({ gpuName: "Tesla T4", pricePerGpuHourMicros: 90_000n });
  });

  it("runs the reference CLI's default query unchanged", async () => {
    const defaults = (await ids()).sort();
    expect(defaults).toEqual(expect.arrayContaining([...offerIds(v100jp, 2, 4), ...offerIds(grace, 1)]));
    expect((await ids({ query: "external=false rentable=true verified=true" })).sort()).toEqual(defaults);
    expect(await ids({ query: "external=true" })).toEqual([]);
  });

  it("runs the ten common reference searches, each returning exactly the offers that match", async () => {
    const all = (await search()).offers;
    const dollars = (money: string) => Number(money);
    const searches: [string, (offer: OfferNode) => boolean][] = [
      ["gpu_name=RTX_4090 num_gpus=1", (o) => o.gpuName === "RTX 4090" && o.numGpus === 1],
      ["reliability>0.98 num_gpus>=4", (o) => o.reliability > 0.98 && o.numGpus >= 4],
      ["dph<1.0 gpu_ram>=24", (o) => dollars(o.dphTotal) < 1 && (o.gpuRam as number) >= 24],
      ["geolocation in [US,CA]", (o) => ["US", "CA"].includes(o.countryCode as string)],
      ["compute_cap>=800", (o) => (o.computeCap as number) >= 800],
      ["inet_down>500", (o) => (o.inetDown as number) > 500],
      ["cuda_vers>=12.0", (o) => (o.cudaMaxGood as number) >= 12],
      ["disk_space>=100", (o) => (o.diskSpace as number) >= 100],
      ["datacenter=true", (o) => o.datacenter === true],
      ["dlperf>=20 rentable=true", (o) => (o.dlperf as number) >= 20 && o.rentable === true],
    ];
    for (const [query, matches] of searches) {
      const expected = all.filter(matches).map((offer) => offer.id).sort();
      // Every search keeps some offers and drops others, so it proves its filter.
      expect(expected.length, query).toBeGreaterThan(0);
      expect(expected.length, query).toBeLessThan(all.length);
      expect((await ids({ query })).sort(), query).toEqual(expected);
    }
  });

  it("answers the reference's id, verification, hardware and host fields", async () => {
    const [offerId] = offerIds(v100jp, 2);
    expect(await ids({ query: `id=${offerId}` })).toEqual([offerId]);
    expect(await ids({ query: `id=${offerId.slice("Offer:".length)}` })).toEqual([offerId]);
    expect(await ids({ query: `id!=${offerId} machine_id=${v100jp}` })).toEqual(offerIds(v100jp, 4));

    expect(await ids({ query: "verification=deverified verified=any rentable=any" })).toEqual(offerIds(deverified, 1));
    expect(await ids({ query: "verification=unverified verified=any rentable=any" })).toEqual(offerIds(unverified, 1));
    expect((await ids({ query: "verification=verified" })).sort()).toEqual((await ids()).sort());

    expect(await ids({ query: "pci_gen>=5" })).toEqual(offerIds(grace, 1));
    expect(await ids({ query: "cpu_arch=arm64" })).toEqual(offerIds(grace, 1));
    expect((await ids({ query: "cpu_arch=amd64" })).sort()).toEqual((await ids({ query: `machine_id!=${grace}` })).sort());
    expect((await ids({ query: "gpu_arch=nvidia vms_enabled=false" })).sort()).toEqual((await ids()).sort());
    expect(await ids({ query: "gpu_arch=amd" })).toEqual([]);
    expect((await ids({ query: `gpu_frac<1 machine_id=${v100jp}` })).sort()).toEqual(offerIds(v100jp, 2));
    expect((await ids({ query: `host_id=${hostId} machine_id in [${v100jp},${grace}]` })).sort()).toEqual(
      [...offerIds(v100jp, 2, 4), ...offerIds(grace, 1)].sort(),
    );
  });

  it("refuses a reference field this marketplace does not record by name, not as unknown", async () => {
    for (const query of ["bw_nvlink>=100", "gpu_display_active=false", "reliability2>0.9"]) {
      const field = query.split(/[=<>]/)[0];
      const result = await app.gql(OFFERS, { query });
      expect(result.data, query).toBeNull();
      expect(result.errors?.[0].extensions?.code, query).toBe("UNRECORDED_FIELD");
      expect(result.errors?.[0].message).toContain(`${field} (`);
      expect(result.errors?.[0].message).toContain("not recorded by this marketplace");
      expect(result.errors?.[0].message).not.toMatch(/unknown/i);
    }
  });
});

describe("order by location and by the bid to win now", () => {
  const everything = "verified=any rentable=any";

  beforeAll(async () => {
    const client = (await prisma.user.create({ data: { email: "client@example.com", passwordHash: "x" } })).id;
    /** An on-demand rental holding GPUs of the machine, as createInstance leaves it, and the offers synced. */
    const onDemand = async (machineId: number, numGpus: number) => {
      await prisma.instance.create({
        data: {
          clientId: client,
          machineId,
          kind: "ON_DEMAND",
          numGpus,
          pricePerGpuHourMicros: 400_000n,
          storagePricePerGbMonthMicros: 0n,
          inetUpPricePerGbMicros: 0n,
          inetDownPricePerGbMicros: 0n,
          endDate: future,
          bidPlacedAt: new Date(),
          image: "ubuntu:22.04",
          diskGb: 10,
          launchMode: "SSH",
          onstart: "",
          env: [],
          ports: [],
          status: "SCHEDULING",
          intendedStatus: "RUNNING",
          statusChangedAt: new Date(),
        },
      });
      await syncOffers(prisma, machineId);
    };
    const half = await machine({ numGpus: 2, countryCode: "NZ", geolocation: "Auckland, NZ", minBidPerGpuHourMicros: 150_000n });
    await onDemand(half, 1);
    await machine({ countryCode: "NO", geolocation: "Oslo, Norway", minBidPerGpuHourMicros: 90_000n });
    await onDemand(await machine({ countryCode: "PE", geolocation: "Lima, Peru", minBidPerGpuHourMicros: 90_000n }), 1);
    await machine({ countryCode: "NO", geolocation: "Oslo, Norway", minBidPerGpuHourMicros: 150_000n });
    await machine({ countryCode: "FR", geolocation: "Île-de-France, FR", minBidPerGpuHourMicros: 120_000n });
  });

  /**
   * Compares two offers in the order asked for: nulls last either way, the offer id breaking ties in
   * the same direction (global ids share their "Offer:" prefix, so they compare as the bare ids do).
   */
  const inOrder = (key: (offer: OfferNode) => bigint | string | null, direction: "ASC" | "DESC") => (a: OfferNode, b: OfferNode) => {
    const [x, y] = [key(a), key(b)];
    if (x === null || y === null) return x === y ? compare(a.id, b.id, direction) : x === null ? 1 : -1;
    const byKey = typeof x === "string" ? dictionary.compare(x, y as string) : compare(x, y, "ASC");
    return byKey === 0 ? compare(a.id, b.id, direction) : byKey * (direction === "ASC" ? 1 : -1);
  };
  /** Ids compare by their bytes; places as a dictionary orders them. */
  const compare = <T extends bigint | string>(x: T, y: T, direction: "ASC" | "DESC") => (x < y ? -1 : x > y ? 1 : 0) * (direction === "ASC" ? 1 : -1);
  const dictionary = new Intl.Collator("und");
  const bid = (offer: OfferNode) => (offer.winningBid === null ? null : parseMoney(offer.winningBid as string));
  const location = (offer: OfferNode) => offer.geolocation as string;

  it.each([
    ["GEOLOCATION", location],
    ["WINNING_BID", bid],
  ] as const)("sorts by %s both ways", async (field, key) => {
    // The second query is searched model by model and the parts merged: the merge keeps the order.
    for (const [query, direction] of [
      [everything, "ASC"],
      [everything, "DESC"],
      [`${everything} gpu_name in [RTX_4090,RTX_3090]`, "ASC"],
    ] as const) {
      const { offers } = await search({ query, orderBy: [{ field, direction }] });
      expect(offers.length).toBeGreaterThan(10);
      expect(offers.map((o) => o.id)).toEqual([...offers].sort(inOrder(key, direction)).map((o) => o.id));
    }
  });

  it("puts offers without a winning bid last both ways, after bids and locations that differ", async () => {
    for (const direction of ["ASC", "DESC"] as const) {
      const bids = (await search({ query: everything, orderBy: [{ field: "WINNING_BID", direction }] })).offers.map(bid);
      expect(bids.filter((b) => b === null).length).toBeGreaterThanOrEqual(2);
      expect(new Set(bids.filter((b) => b !== null)).size).toBeGreaterThanOrEqual(2);
      expect(bids.slice(-2)).toEqual([null, null]);
    }
    const locations = (await search({ query: everything, orderBy: [{ field: "GEOLOCATION", direction: "ASC" }] })).offers.map(location);
    expect(locations[0]).toBe("Auckland, NZ");
    expect(new Set(locations).size).toBeGreaterThanOrEqual(5);
    // Among the I's, before the L's: not after every plain letter as the bytes of "Î" would put it.
    const france = locations.indexOf("Île-de-France, FR");
    expect(locations[france - 1] < "I" && locations[france + 1] >= "L").toBe(true);
  });

  it("searches by the bid to win now: a bound, or null for offers no bid can win", async () => {
    const all = (await search({ query: everything })).offers;
    const withBid = (keep: (micros: bigint | null) => boolean) => all.filter((offer) => keep(bid(offer))).map((offer) => offer.id).sort();
    expect(withBid((micros) => micros === null).length).toBeGreaterThanOrEqual(2);
    expect((await ids({ query: `${everything} winning_bid=null` })).sort()).toEqual(withBid((micros) => micros === null));
    expect((await ids({ query: `${everything} winning_bid<=0.12` })).sort()).toEqual(withBid((micros) => micros !== null && micros <= 120_000n));
  });

  it.each([
    ["location ascending", [{ field: "GEOLOCATION", direction: "ASC" }]],
    ["location descending", [{ field: "GEOLOCATION", direction: "DESC" }]],
    ["bid to win ascending", [{ field: "WINNING_BID", direction: "ASC" }]],
    ["bid to win descending", [{ field: "WINNING_BID", direction: "DESC" }]],
    ["bid to win, then location the other way", [{ field: "WINNING_BID", direction: "ASC" }, { field: "GEOLOCATION", direction: "DESC" }]],
    ["location, then bid to win", [{ field: "GEOLOCATION", direction: "DESC" }, { field: "WINNING_BID", direction: "DESC" }]],
  ])("pages through %s: every offer once, in order", async (_name, orderBy) => {
    const whole = await ids({ query: everything, orderBy });
    expect(whole.length).toBeGreaterThan(10);
    expect(await walk({ query: everything, orderBy })).toEqual(whole);
  });

  it("reads a cursor's null bid as after every bid, and refuses forged keys", async () => {
    const cursorFor = async (field: string) => {
      const { pageInfo } = await search({ query: everything, orderBy: [{ field, direction: "ASC" }], first: 1 });
      return JSON.parse(Buffer.from(pageInfo.endCursor!, "base64url").toString("utf8"));
    };
    const forge = (cursor: object, k: unknown[]) => Buffer.from(JSON.stringify({ ...cursor, k })).toString("base64url");
    const byBid = await cursorFor("WINNING_BID");
    const ascending = await ids({ query: everything, orderBy: [{ field: "WINNING_BID", direction: "ASC" }] });
    const firstNull = (await search({ query: everything, orderBy: [{ field: "WINNING_BID", direction: "ASC" }] })).offers.findIndex(
      (offer) => offer.winningBid === null,
    );
    const nullId = ascending[firstNull].replace(/^Offer:/, "");
    expect(await ids({ query: everything, orderBy: [{ field: "WINNING_BID", direction: "ASC" }], after: forge({ ...byBid, id: nullId }, [null]) })).toEqual(
      ascending.slice(firstNull + 1),
    );

    const byLocation = await cursorFor("GEOLOCATION");
    const refused = [
      ["WINNING_BID", forge(byBid, ["0.15"])],
      ["WINNING_BID", forge(byBid, [150000])],
      ["WINNING_BID", forge(byBid, [])],
      ["GEOLOCATION", forge(byLocation, [null])],
      ["GEOLOCATION", forge(byLocation, ["Texas\u0000, US"])],
      ["GEOLOCATION", forge(byLocation, ["x".repeat(101)])],
      ["GEOLOCATION", forge({ ...byLocation, id: "Texas, US" }, ["Texas, US"])],
    ];
    for (const [field, after] of refused) {
      const result = await app.gql(OFFERS, { query: everything, orderBy: [{ field, direction: "ASC" }], after });
      expect(result.errors?.[0].extensions?.code, after).toBe("VALIDATION");
    }
    const fine = await app.gql(OFFERS, { query: everything, orderBy: [{ field: "GEOLOCATION", direction: "ASC" }], after: forge(byLocation, ["M"]) });
    expect(fine.errors).toBeUndefined();
    expect(fine.data.offers.edges.every((edge: { node: OfferNode }) => (edge.node.geolocation as string) > "M")).toBe(true);
  });
});

describe("size filters, searched size by size", () => {
  const everything = "verified=any rentable=any";

  beforeAll(async () => {
    // Big boxes of several sizes and models, priced so that every order interleaves them.
    await machine({ gpuName: "H100 SXM", numGpus: 8, pricePerGpuHourMicros: 2_300_000n });
    await machine({ gpuName: "H100 SXM", numGpus: 16, minChunk: 4, pricePerGpuHourMicros: 1_900_000n, reliability: 0.97 });
    await machine({ gpuName: "H200", numGpus: 8, minChunk: 2, pricePerGpuHourMicros: 3_100_000n });
    await machine({ gpuName: "A100 SXM4", numGpus: 10, minChunk: 10, pricePerGpuHourMicros: 1_100_000n, verification: "UNVERIFIED" });
    await machine({ gpuName: "RTX 4090", numGpus: 12, minChunk: 2, pricePerGpuHourMicros: 350_000n });
    await machine({ gpuName: "Tesla T4", numGpus: 16, minChunk: 8, pricePerGpuHourMicros: 110_000n });
    await machine({ gpuName: "L40S", numGpus: 16, minChunk: 16, pricePerGpuHourMicros: 800_000n, online: false });
  });

  const sizeSearches: [query: string, matches: (offer: OfferNode) => boolean][] = [
    ["num_gpus>=8 gpu_ram>=80", (o) => o.numGpus >= 8 && (o.gpuRam as number) >= 80],
    ["compute_cap>=800 gpu_total_ram>=160", (o) => (o.computeCap as number) >= 800 && (o.gpuTotalRam as number) >= 160],
    ["num_gpus>2 num_gpus<=8", (o) => o.numGpus > 2 && o.numGpus <= 8],
    ["gpu_ram>=24 gpu_total_ram<200 datacenter=false", (o) => (o.gpuRam as number) >= 24 && (o.gpuTotalRam as number) < 200 && o.datacenter === false],
  ];
  const orders = [
    [{ field: "SCORE", direction: "DESC" }],
    [{ field: "SCORE", direction: "ASC" }],
    [{ field: "DPH_TOTAL", direction: "ASC" }],
    [{ field: "DPH_TOTAL", direction: "DESC" }, { field: "NUM_GPUS", direction: "ASC" }],
  ];

  it.each(sizeSearches)("%s: the same offers in the same order as the whole search filtered, page by page too", async (query, matches) => {
    for (const orderBy of orders) {
      // The whole search has no size bound, so it is one ordered statement; its matches in its order are the answer.
      const whole = (await search({ query: everything, orderBy })).offers;
      expect(whole.length).toBeLessThan(100);
      const expected = whole.filter(matches).map((offer) => offer.id);
      expect(expected.length, `${query} ${JSON.stringify(orderBy)}`).toBeGreaterThan(3);
      expect(await ids({ query: `${everything} ${query}`, orderBy }), `${query} ${JSON.stringify(orderBy)}`).toEqual(expected);
      expect(await walk({ query: `${everything} ${query}`, orderBy })).toEqual(expected);
    }
  });

  it("splits a lower bound on the size ordered by score or price, and leaves a model filter to the model's indexes", () => {
    const splits = (args: OfferSearchArgs) => planOfferSearch(args).sql.text.includes("WITH RECURSIVE");
    for (const [query] of sizeSearches) expect(splits({ query }), query).toBe(true);
    expect(splits({ filter: { minNumGpus: 4 }, orderBy: [{ field: "dph_total", direction: "ASC" }] })).toBe(true);
    expect(splits({ query: "num_gpus<=2" })).toBe(false);
    expect(splits({ query: "num_gpus>=2", orderBy: [{ field: "inet_down", direction: "DESC" }] })).toBe(false);
    expect(splits({ query: "num_gpus>=2", storageGb: 50 })).toBe(false);
    expect(splits({ query: "gpu_name=RTX_4090 num_gpus>=2" })).toBe(false);
  });
});

describe("statements per request", () => {
  it("a page of 100 offers is one SQL statement, whatever the page size, reading the columns of the fields asked for", async () => {
    for (let i = 0; i < 25; i++) await machine({ numGpus: 8, minChunk: 1, gpuName: i % 2 ? "RTX 4090" : "RTX 3090" });
    const statements: string[] = [];
    const query = pg.Client.prototype.query;
    // Counts at the driver: every statement Prisma sends goes through a pg Client.
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const config = args[0];
      statements.push(typeof config === "string" ? config : (config as { text: string }).text);
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    try {
      const counts: Record<number, number> = {};
      for (const first of [5, 100]) {
        statements.length = 0;
        const page = await search({ first, query: "verified=any" });
        expect(page.offers).toHaveLength(first);
        counts[first] = statements.length;
      }
      expect(counts[100]).toBe(counts[5]);
      expect(counts[100]).toBe(1);

      // A selection of a few fields reads only their columns (no machine join without cpuName or
      // pcieGen), with the same values as a page of every field; a fragment reads every column.
      const few = "id gpuName dphTotal durationDays winningBid";
      statements.length = 0;
      const narrow = await app.gql(`{ offers(first: 100, query: "verified=any") { edges { cursor node { ${few} } } } }`);
      expect(narrow.errors).toBeUndefined();
      expect(statements).toHaveLength(1);
      expect(statements[0]).not.toMatch(/cpu_name|JOIN machine/);
      const full = await search({ first: 100, query: "verified=any" });
      const picked = (node: Record<string, unknown>) => ({ ...node, durationDays: Math.round(node.durationDays as number) });
      expect(narrow.data.offers.edges.map((edge: { node: Record<string, unknown> }) => picked(edge.node))).toEqual(
        full.offers.map((offer) => picked(Object.fromEntries(few.split(" ").map((field) => [field, offer[field]])))),
      );
      statements.length = 0;
      const viaFragment = await app.gql(`{ offers(first: 1) { edges { node { ...F } } } } fragment F on Offer { cpuName pcieGen }`);
      expect(viaFragment.errors).toBeUndefined();
      expect(statements[0]).toMatch(/cpu_name/);
    } finally {
      pg.Client.prototype.query = query;
    }
  });
});
