import { beforeAll, describe, expect, it } from "vitest";
import { earningsEstimate } from "../domain/market/estimate.ts";
import { dayStart, dropPartitionsBefore, ensurePartitions, rollUp, runMarketSampler } from "../domain/market/sampler.ts";
import { DAY_MS, HOUR_MS } from "../domain/time.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const app = useTestApp();
const NOW = new Date();

let host: { userId: number; key: string };
let client: { userId: number; key: string };
const machines: Record<"a" | "b" | "c", number> = { a: 0, b: 0, c: 0 };
const instances: number[] = [];

async function instance(machineId: number, kind: "ON_DEMAND" | "INTERRUPTIBLE", numGpus: number, bid: bigint | null, status = "RUNNING") {
  const row = await prisma.instance.create({
    data: {
      clientId: client.userId, machineId, kind, numGpus, pricePerGpuHourMicros: 400_000n, storagePricePerGbMonthMicros: 0n,
      inetUpPricePerGbMicros: 0n, inetDownPricePerGbMicros: 0n, endDate: new Date(NOW.getTime() + DAY_MS),
      bidPerGpuHourMicros: bid, bidPlacedAt: NOW, image: "x", diskGb: 10, launchMode: "SSH", onstart: "", env: [], ports: [],
      status: status as "RUNNING", intendedStatus: "RUNNING", statusChangedAt: NOW,
    },
  });
  instances.push(row.id);
  return row.id;
}

/** A sample row of `gpuName` at `time`, for the rollup and history tests. */
async function insertSample(table: string, gpuName: string, time: Date, v: { price: [bigint, bigint, bigint]; bid?: [bigint, bigint, bigint]; rented: number; total: number; samples?: number }) {
  const samples = v.samples ?? 1;
  await prisma.$executeRawUnsafe(
    `INSERT INTO ${table} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
    time, gpuName, samples, 3 * samples, 5 * samples, v.total, v.rented, v.total - v.rented,
    v.price[0], v.price[1], v.price[2], v.price[0] + v.price[1] + v.price[2], 3 * samples,
    v.bid?.[0] ?? null, v.bid?.[1] ?? null, v.bid?.[2] ?? null, v.bid ? v.bid[0] + v.bid[1] : 0n, v.bid ? 2 * samples : 0, 10.5,
  );
}

beforeAll(async () => {
  host = await createAccount("host");
  client = await createAccount("client");
  machines.a = await createListedMachine(host.userId, { numGpus: 8, listing: { pricePerGpuHour: 400_000n } });
  machines.b = await createListedMachine(host.userId, { numGpus: 4, listing: { pricePerGpuHour: 300_000n } });
  machines.c = await createListedMachine(host.userId, { numGpus: 2, listing: { pricePerGpuHour: 500_000n } });
  // A fully rented by a bid; B: a bid on 2 GPUs and 1 on demand; C idle. A paused bid counts for nothing.
  await instance(machines.a, "INTERRUPTIBLE", 8, 200_000n);
  await instance(machines.b, "INTERRUPTIBLE", 2, 150_000n);
  await instance(machines.b, "ON_DEMAND", 1, null);
  await instance(machines.c, "INTERRUPTIBLE", 2, 90_000n, "PAUSED");
});

describe("sampling", () => {
  it("records the market of the minute per GPU model, once per minute", async () => {
    await prisma.$transaction((tx) => runMarketSampler(tx, NOW));
    expect((await prisma.$transaction((tx) => runMarketSampler(tx, NOW))).sampled).toBe(0);
    const rows = await prisma.$queryRawUnsafe<Record<string, unknown>[]>(
      `SELECT * FROM price_sample WHERE gpu_name = 'RTX 4090' AND bucket_start = date_trunc('minute', $1::timestamptz)`,
      NOW,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      samples: 1,
      machines_sum: 3n,
      offers_sum: 9n, // chunks 1,2,4,8 + 1,2,4 + 1,2
      gpus_total_sum: 14n,
      gpus_rented_sum: 11n,
      gpus_available_sum: 3n,
      price_min: 300_000n,
      price_p50: 400_000n,
      price_p90: 500_000n,
      price_sum: 1_200_000n,
      price_count: 3n,
      bid_min: 150_000n,
      bid_p50: 150_000n,
      bid_p90: 200_000n,
      bid_sum: 350_000n,
      bid_count: 2n,
    });
    expect(rows[0].dlperf_per_dollar).toBeGreaterThan(0);
    // The minute is rolled up at once.
    const [hour] = await prisma.$queryRawUnsafe<{ samples: number; price_p50: bigint }[]>(
      `SELECT samples, price_p50 FROM price_rollup_hour WHERE gpu_name = 'RTX 4090' AND bucket_start = date_trunc('hour', $1::timestamptz)`,
      NOW,
    );
    expect(hour).toEqual({ samples: 1, price_p50: 400_000n });
  });

  it("rollups are the aggregates of their minutes, and rerunning them changes nothing", async () => {
    const hour = new Date(dayStart(NOW).getTime() - 3 * DAY_MS + 5 * HOUR_MS);
    await prisma.$transaction((tx) => ensurePartitions(tx, hour, hour));
    const minutes = Array.from({ length: 60 }, (_, i) => ({
      price: [BigInt(100_000 + i * 1000), BigInt(200_000 + ((i * 37) % 60) * 1000), BigInt(300_000 + i * 500)] as [bigint, bigint, bigint],
      bid: i % 3 === 0 ? undefined : ([BigInt(50_000 + i), BigInt(60_000 + i), 0n] as [bigint, bigint, bigint]),
      rented: i % 10,
      total: 10,
    }));
    for (const [i, m] of minutes.entries()) await insertSample("price_sample", "ROLL GPU", new Date(hour.getTime() + i * 60_000), m);
    // A minute of the next hour, which the hour must not take.
    await insertSample("price_sample", "ROLL GPU", new Date(hour.getTime() + HOUR_MS), { price: [1n, 1n, 1n], rented: 0, total: 10 });
    for (let run = 0; run < 2; run++) {
      await rollUp(prisma, "hour", hour, new Date(hour.getTime() + 1));
      await rollUp(prisma, "day", hour, hour);
    }
    const [row] = await prisma.$queryRawUnsafe<Record<string, unknown>[]>(
      `SELECT * FROM price_rollup_hour WHERE gpu_name = 'ROLL GPU' AND bucket_start = $1`,
      hour,
    );
    const sorted = (values: bigint[]) => [...values].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const disc = (values: bigint[], p: number) => sorted(values)[Math.max(0, Math.ceil(p * values.length) - 1)];
    const bids = minutes.filter((m) => m.bid).map((m) => m.bid!);
    expect(row).toMatchObject({
      samples: 60,
      gpus_total_sum: 600n,
      gpus_rented_sum: BigInt(minutes.reduce((sum, m) => sum + m.rented, 0)),
      price_min: sorted(minutes.map((m) => m.price[0]))[0],
      price_p50: disc(minutes.map((m) => m.price[1]), 0.5),
      price_p90: disc(minutes.map((m) => m.price[2]), 0.9),
      price_sum: minutes.reduce((sum, m) => sum + m.price[0] + m.price[1] + m.price[2], 0n),
      price_count: 180n,
      bid_min: sorted(bids.map((b) => b[0]))[0],
      bid_p50: disc(bids.map((b) => b[1]), 0.5),
      bid_count: BigInt(2 * bids.length),
    });
    const days = await prisma.$queryRawUnsafe<{ samples: number; price_min: bigint }[]>(
      `SELECT samples, price_min FROM price_rollup_day WHERE gpu_name = 'ROLL GPU'`,
    );
    expect(days).toEqual([{ samples: 61, price_min: 1n }]);
  });

  it("drops the minute partitions past retention, and the hourly rows past theirs", async () => {
    const old = new Date(dayStart(NOW).getTime() - 20 * DAY_MS);
    await prisma.$transaction((tx) => ensurePartitions(tx, old, new Date(old.getTime() + DAY_MS)));
    await insertSample("price_sample", "OLD GPU", old, { price: [1n, 1n, 1n], rented: 0, total: 1 });
    await insertSample("price_rollup_hour", "OLD GPU", new Date(NOW.getTime() - 500 * DAY_MS), { price: [1n, 1n, 1n], rented: 0, total: 1 });
    const { dropped } = await prisma.$transaction((tx) => runMarketSampler(tx, NOW));
    const name = (day: Date) => `price_sample_${day.toISOString().slice(0, 10).replaceAll("-", "")}`;
    expect(dropped).toEqual([name(old), name(new Date(old.getTime() + DAY_MS))]);
    const left = await prisma.$queryRawUnsafe<{ n: bigint }[]>(
      `SELECT (SELECT count(*) FROM price_sample WHERE gpu_name = 'OLD GPU') + (SELECT count(*) FROM price_rollup_hour WHERE gpu_name = 'OLD GPU') AS n`,
    );
    expect(left[0].n).toBe(0n);
    // The days kept stay; nothing newer than retention is dropped.
    expect(await prisma.$transaction((tx) => dropPartitionsBefore(tx, new Date(NOW.getTime() - 8 * DAY_MS)))).toEqual([]);
  });
});

const HISTORY = /* GraphQL */ `
  query ($gpuName: String!, $from: DateTime!, $to: DateTime!, $bucket: PriceBucket!) {
    priceHistory(gpuName: $gpuName, from: $from, to: $to, bucket: $bucket) { time samples minPrice p50Price avgPrice minBid utilization }
  }
`;

describe("priceHistory", () => {
  const day = new Date(dayStart(NOW).getTime() - 2 * DAY_MS);
  beforeAll(async () => {
    // One marker price per table: the point shows which table served it.
    await prisma.$transaction((tx) => ensurePartitions(tx, day, day));
    await insertSample("price_sample", "MARK GPU", new Date(day.getTime() + 60_000), { price: [1_000n, 2_000n, 3_000n], rented: 1, total: 4 });
    await insertSample("price_rollup_hour", "MARK GPU", day, { price: [2_000n, 2_000n, 2_000n], rented: 30, total: 240, samples: 60 });
    await insertSample("price_rollup_day", "MARK GPU", day, { price: [3_000n, 3_000n, 3_000n], bid: [10n, 20n, 30n], rented: 720, total: 5760, samples: 1440 });
  });

  it("serves each bucket size from its table, to anonymous callers", async () => {
    const range = { gpuName: "MARK GPU", from: day.toISOString(), to: new Date(day.getTime() + DAY_MS).toISOString() };
    const minute = await app.gql(HISTORY, { ...range, bucket: "MINUTE" });
    expect(minute.data.priceHistory).toEqual([
      { time: new Date(day.getTime() + 60_000).toISOString(), samples: 1, minPrice: "0.001", p50Price: "0.002", avgPrice: "0.002", minBid: null, utilization: 0.25 },
    ]);
    const hour = await app.gql(HISTORY, { ...range, bucket: "HOUR" });
    expect(hour.data.priceHistory).toMatchObject([{ time: day.toISOString(), samples: 60, minPrice: "0.002", utilization: 0.125 }]);
    const days = await app.gql(HISTORY, { ...range, bucket: "DAY" });
    expect(days.data.priceHistory).toMatchObject([{ samples: 1440, minPrice: "0.003", minBid: "0.00001", utilization: 0.125 }]);
  });

  it("refuses ranges too long for the bucket, and reversed ones", async () => {
    const long = await app.gql(HISTORY, {
      gpuName: "MARK GPU", from: new Date(NOW.getTime() - 2 * DAY_MS).toISOString(), to: NOW.toISOString(), bucket: "MINUTE",
    });
    expect(long.errors?.[0].extensions?.code).toBe("VALIDATION");
    expect(long.errors?.[0].message).toMatch(/^to: /);
    const reversed = await app.gql(HISTORY, { gpuName: "MARK GPU", from: NOW.toISOString(), to: day.toISOString(), bucket: "DAY" });
    expect(reversed.errors?.[0].extensions?.code).toBe("VALIDATION");
    const ok = await app.gql(HISTORY, { gpuName: "MARK GPU", from: new Date(NOW.getTime() - 90 * DAY_MS).toISOString(), to: NOW.toISOString(), bucket: "HOUR" });
    expect(ok.errors).toBeUndefined();
  });
});

const SERIES = /* GraphQL */ `
  query ($gpuName: String!, $from: DateTime!, $to: DateTime!, $bucket: PriceBucket!) {
    priceSeries(gpuName: $gpuName, from: $from, to: $to, bucket: $bucket) { gpuName bucket timestamps samples minPrice p50Price avgPrice minBid utilization }
  }
`;

describe("priceSeries", () => {
  const to = new Date(dayStart(NOW).getTime() + DAY_MS);
  const from = new Date(to.getTime() - 7 * DAY_MS);
  const times = [from.getTime() + 60_000, from.getTime() + 3 * DAY_MS, to.getTime() - 60_000].map((ms) => new Date(ms));
  beforeAll(async () => {
    await prisma.$transaction((tx) => ensurePartitions(tx, from, to));
    // Inserted out of order: the series comes back in time order.
    await insertSample("price_sample", "SERIES GPU", times[2], { price: [5_000n, 6_000n, 7_000n], bid: [100n, 200n, 300n], rented: 2, total: 8 });
    await insertSample("price_sample", "SERIES GPU", times[0], { price: [1_000n, 2_000n, 3_000n], rented: 1, total: 4 });
    await insertSample("price_sample", "SERIES GPU", times[1], { price: [1_500n, 2_500n, 3_500n], rented: 0, total: 0 });
  });

  it("answers a week of minute buckets as parallel arrays in time order, with the points' values", async () => {
    const range = { gpuName: "SERIES GPU", from: from.toISOString(), to: to.toISOString(), bucket: "MINUTE" };
    const result = await app.gql(SERIES, range);
    expect(result.errors).toBeUndefined();
    expect(result.data.priceSeries).toEqual({
      gpuName: "SERIES GPU",
      bucket: "MINUTE",
      timestamps: times.map((time) => time.getTime() / 1000),
      samples: [1, 1, 1],
      minPrice: ["0.001", "0.0015", "0.005"],
      p50Price: ["0.002", "0.0025", "0.006"],
      avgPrice: ["0.002", "0.0025", "0.006"],
      minBid: [null, null, "0.0001"],
      utilization: [0.25, null, 0.25],
    });
    // The last day as points: the same values.
    const lastDay = { ...range, from: new Date(to.getTime() - DAY_MS).toISOString() };
    const [point] = (await app.gql(HISTORY, lastDay)).data.priceHistory;
    expect(point).toEqual({ time: times[2].toISOString(), samples: 1, minPrice: "0.005", p50Price: "0.006", avgPrice: "0.006", minBid: "0.0001", utilization: 0.25 });
    // Through a fragment every column is read; one column alone reads only that one.
    const viaFragment = await app.gql(
      `query ($gpuName: String!, $from: DateTime!, $to: DateTime!, $bucket: PriceBucket!) {
         priceSeries(gpuName: $gpuName, from: $from, to: $to, bucket: $bucket) { ...S }
       }
       fragment S on PriceSeries { p90Price dlperfPerDollar gpusTotal }`,
      range,
    );
    expect(viaFragment.data.priceSeries).toEqual({ p90Price: ["0.003", "0.0035", "0.007"], dlperfPerDollar: [10.5, 10.5, 10.5], gpusTotal: [4, 0, 8] });
    const empty = await app.gql(SERIES, { ...range, gpuName: "NO SUCH GPU" });
    expect(empty.data.priceSeries).toMatchObject({ timestamps: [], minPrice: [] });
  });

  it("refuses ranges too long for the bucket", async () => {
    const long = await app.gql(SERIES, {
      gpuName: "SERIES GPU", from: new Date(to.getTime() - 8 * DAY_MS).toISOString(), to: to.toISOString(), bucket: "MINUTE",
    });
    expect(long.errors?.[0].extensions?.code).toBe("VALIDATION");
    expect(long.errors?.[0].message).toMatch(/^to: .*MINUTE: 7 days/);
  });
});

describe("marketStats", () => {
  it("counts fully rented machines in the market", async () => {
    const result = await app.gql(`{ marketStats { gpuName machines machinesFullyRented gpusTotal gpusRented gpusAvailable utilization minPrice p50Price p90Price minBid p90Bid } }`);
    expect(result.data.marketStats).toEqual([
      {
        gpuName: "RTX 4090", machines: 3, machinesFullyRented: 1, gpusTotal: 14, gpusRented: 11, gpusAvailable: 3,
        utilization: 11 / 14, minPrice: "0.30", p50Price: "0.40", p90Price: "0.50", minBid: "0.15", p90Bid: "0.20",
      },
    ]);
  });
});

describe("earningsEstimate", () => {
  const ESTIMATE = /* GraphQL */ `
    query ($specs: MachineSpecsInput!) {
      earningsEstimate(specs: $specs) { source similarMachines perDay perDayLow perDayHigh windowDays }
    }
  `;

  it("takes what similar machines earned per GPU-day, scaled to the GPUs asked about", async () => {
    const end = dayStart(NOW);
    await prisma.machine.updateMany({ where: { id: { in: Object.values(machines) } }, data: { createdAt: new Date(end.getTime() - 40 * DAY_MS) } });
    // Over the 28-day window A (8 GPUs) earned $1 per GPU-day, B (4 GPUs) $2; C (2 GPUs) is not similar to 8.
    const earned: [number, number, bigint][] = [[machines.a, instances[0], 28n * 8n * 1_000_000n], [machines.b, instances[1], 28n * 4n * 2_000_000n], [machines.c, instances[3], 10n ** 9n]];
    for (const [machineId, instanceId, amount] of earned) {
      const periodStart = new Date(end.getTime() - 3 * DAY_MS);
      await prisma.timeAccrual.create({
        data: {
          instanceId, clientId: client.userId, hostId: host.userId, machineId, category: "GPU", periodStart, unitPriceMicros: amount,
          units: 1, startedAt: periodStart, endedAt: new Date(periodStart.getTime() + HOUR_MS), seconds: 3600n, amountMicros: amount,
        },
      });
    }
    // Outside the window: not counted.
    await prisma.timeAccrual.create({
      data: {
        instanceId: instances[0], clientId: client.userId, hostId: host.userId, machineId: machines.a, category: "GPU",
        periodStart: new Date(end.getTime() - 30 * DAY_MS), unitPriceMicros: 10n ** 9n, units: 1, startedAt: new Date(end.getTime() - 30 * DAY_MS),
        endedAt: new Date(end.getTime() - 30 * DAY_MS + HOUR_MS), seconds: 3600n, amountMicros: 10n ** 9n,
      },
    });
    const result = await app.gql(ESTIMATE, { specs: { gpuName: "RTX 4090", numGpus: 8 } });
    expect(result.data.earningsEstimate).toEqual({
      source: "EARNINGS", similarMachines: 2, perDay: "12.00", perDayLow: "10.00", perDayHigh: "14.00", windowDays: 28,
    });
  });

  it("falls back on price history × utilization, and says when there is neither", async () => {
    await insertSample("price_rollup_day", "H100 SXM", new Date(dayStart(NOW).getTime() - 5 * DAY_MS), {
      price: [1_000_000n, 2_000_000n, 3_000_000n], rented: 50, total: 100, samples: 1,
    });
    expect(await earningsEstimate({ gpuName: "H100 SXM", numGpus: 2 }, NOW)).toMatchObject({
      source: "PRICE_HISTORY", perDayMicros: 2_000_000n * 24n / 2n * 2n, utilization: 0.5,
    });
    const none = await app.gql(ESTIMATE, { specs: { gpuName: "NO SUCH GPU", numGpus: 1 } });
    expect(none.data.earningsEstimate).toMatchObject({ source: "NONE", perDay: null });
    const bad = await app.gql(ESTIMATE, { specs: { gpuName: "RTX 4090", numGpus: 0 } });
    expect(bad.errors?.[0].extensions?.code).toBe("VALIDATION");
  });
});
