import { Agent, request } from "node:http";
import { seededRandom } from "../domain/seededRandom.ts";
import { DAY_MS } from "../domain/time.ts";

/*
 * The auction benchmark's load, shared by the benchmarks that run under it (bench/auction.ts,
 * bench/order-book.ts): machines to bid on, a seeded plan of bids, and clients placing them through
 * the API as fast as it answers.
 */

export const AUCTION_GPUS = 8;

/**
 * `machineCount` listed 8-GPU machines (offers written by the real syncOffers) and `clients` bidding
 * accounts; returns the clients' API keys. The project's modules are imported here, after the
 * caller has pointed DATABASE_URL at the benchmark's database.
 */
export async function seedAuction(machineCount: number, clients: number): Promise<string[]> {
  const [{ prisma }, { syncOffers }, { issueApiKey }] = await Promise.all([
    import("../infra/db.ts"),
    import("../domain/offers/sync.ts"),
    import("../domain/apiKeys.ts"),
  ]);
  const { postEntry } = await import("../domain/billing/ledger.ts");
  const host = await prisma.user.create({ data: { email: "host@bench.example", passwordHash: "x" } });
  const random = seededRandom(7);
  const endDate = new Date(Date.now() + 30 * DAY_MS);
  await prisma.machine.createMany({
    data: Array.from({ length: machineCount }, () => ({
      hostId: host.id,
      gpuName: "RTX 4090",
      numGpus: AUCTION_GPUS,
      gpuRamMb: 24_564,
      computeCap: 890,
      tflopsPerGpu: 82.6,
      gpuMemBw: 1008,
      pcieGen: 4,
      pcieBw: 24.5,
      cpuName: "AMD EPYC 7543",
      cpuCores: 64,
      cpuRamMb: 256_000,
      diskSpaceGb: 2000,
      diskBw: 6000,
      inetUpMbps: 900,
      inetDownMbps: 900,
      cudaMaxGood: 12.4,
      driverVersion: "550.54.15",
      countryCode: "DE",
      geolocation: "Frankfurt, DE",
      verification: "VERIFIED" as const,
      dlperf: 200,
      listed: true,
      pricePerGpuHourMicros: BigInt(300_000 + Math.floor(random() * 300_000)),
      minBidPerGpuHourMicros: 100_000n,
      storagePricePerGbMonthMicros: 100_000n,
      inetUpPricePerGbMicros: 0n,
      inetDownPricePerGbMicros: 0n,
      endDate,
    })),
  });
  const machines = await prisma.machine.findMany({ select: { id: true } });
  // A few machines at a time: at 10,000 machines one after the other takes minutes.
  for (let i = 0; i < machines.length; i += SEED_PARALLEL) {
    await Promise.all(machines.slice(i, i + SEED_PARALLEL).map(({ id }) => syncOffers(prisma, id)));
  }
  const keys: string[] = [];
  for (let i = 0; i < clients; i++) {
    // Established accounts (email and card verified, a year old, $1,000 paid and credited): no spend
    // rate limit (domain/billing/spendLimit.ts) and credit for every bid, as for a heavy bidder.
    const yearAgo = new Date(Date.now() - 365 * DAY_MS);
    const user = await prisma.user.create({
      data: { email: `client${i}@bench.example`, passwordHash: "x", emailVerified: true, cardVerifiedAt: yearAgo, createdAt: yearAgo },
    });
    await prisma.payment.create({ data: { userId: user.id, kind: "CHECKOUT", status: "SUCCEEDED", amountMicros: CREDIT_MICROS, completedAt: yearAgo } });
    await prisma.$transaction((tx) => postEntry(tx, { userId: user.id, kind: "ADJUSTMENT", amountMicros: CREDIT_MICROS, description: "bench credit" }));
    keys.push((await issueApiKey(prisma, { userId: user.id, name: "bench", scope: "ACCOUNT" })).token);
  }
  await prisma.$disconnect();
  return keys;
}

const SEED_PARALLEL = 8;

/** What each bidding account has paid and holds: far more than its bids can spend in a run. */
const CREDIT_MICROS = 1_000_000_000n;

export interface PlannedBid {
  machineId: number;
  numGpus: number;
  price: string;
}

/** `count` bids on random machines, chunk sizes and prices: the same plan for the same arguments. */
export function auctionBidPlan(count: number, machines: number): PlannedBid[] {
  const random = seededRandom(42);
  return Array.from({ length: count }, () => {
    const machineId = 1 + Math.floor(random() * machines);
    const numGpus = [1, 1, 1, 2, 2, 4, 8][Math.floor(random() * 7)];
    const cents = 10 + Math.floor(random() * 50);
    return { machineId, numGpus, price: `0.${String(cents).padStart(2, "0")}${Math.floor(random() * 10)}` };
  });
}

const CREATE = `mutation ($input: CreateInstanceInput!) {
  createInstance(input: $input) { __typename ... on MutationCreateInstanceSuccess { data { instance { id } } } ... on Error { code message } }
}`;

/** A lean client: node:http over kept-alive sockets, one per concurrent client. */
function leanAgent(keys: readonly string[]): Agent {
  return new Agent({ keepAlive: true, maxSockets: keys.length });
}

function postGraphql(url: string, agent: Agent, key: string, body: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request(url, { method: "POST", agent, headers: { "content-type": "application/json", authorization: `Bearer ${key}` } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve(text));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Before the clock starts: each client reads its bids once through the API at `url`, so that the
 * API has opened its database connections and loaded its query engine, as the floor's clients are
 * connected before its clock starts. Changes nothing.
 */
export async function warmUp(url: string, keys: readonly string[]): Promise<void> {
  const agent = leanAgent(keys);
  const body = JSON.stringify({ query: "{ bids(first: 1) { pageInfo { hasNextPage } } }" });
  const answers = await Promise.all(keys.map((key) => postGraphql(url, agent, key, body)));
  agent.destroy();
  const failed = answers.find((text) => !(JSON.parse(text) as { data?: unknown }).data);
  if (failed) throw new Error(`warm-up failed: ${failed}`);
}

/**
 * Places `plan` through the API at `url`, one client per key, each sending its next bid when the
 * last one is answered. Returns when each placed bid (by instance id) was sent, and the refusals.
 */
export async function placeBids(url: string, keys: readonly string[], plan: readonly PlannedBid[]): Promise<{ sentAt: Map<number, number>; failures: string[] }> {
  const sentAt = new Map<number, number>();
  const failures: string[] = [];
  const agent = leanAgent(keys);
  const post = (body: string, key: string) => postGraphql(url, agent, key, body);
  let next = 0;
  await Promise.all(
    keys.map(async (key) => {
      while (next < plan.length) {
        const bid = plan[next++];
        const body = JSON.stringify({
          query: CREATE,
          variables: {
            input: {
              offerId: `${bid.machineId}-${bid.numGpus}`,
              image: "pytorch/pytorch:latest",
              diskGb: 20,
              launchMode: "SSH",
              bidPricePerGpuHour: bid.price,
            },
          },
        });
        const t0 = Date.now();
        const text = await post(body, key);
        const result = (JSON.parse(text) as { data?: { createInstance: { data?: { instance: { id: string } }; message?: string } } }).data?.createInstance;
        if (result?.data) sentAt.set(Number(result.data.instance.id.split(":")[1]), t0);
        else failures.push(result?.message ?? text);
      }
    }),
  );
  agent.destroy();
  return { sentAt, failures };
}
