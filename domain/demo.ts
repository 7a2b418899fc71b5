import { randomBytes } from "node:crypto";
import { prisma, type Tx } from "../infra/db.ts";
import { createAccount } from "./accounts.ts";
import { issueApiKey } from "./apiKeys.ts";
import { gpuModel, pcieBandwidth } from "./dlperf.ts";
import { ConflictError } from "./errors.ts";
import { addMachine, applyListing, type RegisterMachineInput } from "./machines.ts";
import { vetMachine } from "./verification.ts";
import { MICROS_PER_DOLLAR } from "./money.ts";
import { syncOffers } from "./offers/sync.ts";
import { seededRandom } from "./seededRandom.ts";
import { DAY_MS } from "./time.ts";

/*
 * Demo data for `npm start` on an empty database: a host with 50 listed machines of common GPUs
 * across a dozen countries, and a client with credit. A seeded generator keeps it the same on
 * every machine. Everything goes through the services the API uses, so it passes the same
 * validation and its offers come from syncOffers.
 */

export const DEMO_HOST_EMAIL = "host@demo.local";
export const DEMO_CLIENT_EMAIL = "client@demo.local";
export const DEMO_CREDIT_MICROS = 100n * MICROS_PER_DOLLAR;
const DEMO_KEY_NAME = "demo (printed at start)";

type Random = ReturnType<typeof seededRandom>;
const int = (random: Random, min: number, max: number) => min + Math.floor(random() * (max - min + 1));
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)];
/** Micro-dollars from a whole number of mills (thousandths of a dollar) drawn from [min, max]. */
const mills = (random: Random, min: number, max: number) => BigInt(int(random, min, max)) * 1000n;

type Tier = "consumer" | "workstation" | "datacenter";

/** Machines per GPU model, with the on-demand price range per GPU-hour in mills. */
const FLEET: readonly { gpuName: string; machines: number; tier: Tier; price: [number, number] }[] = [
  { gpuName: "RTX 4090", machines: 10, tier: "consumer", price: [350, 600] },
  { gpuName: "RTX 3090", machines: 6, tier: "consumer", price: [150, 300] },
  { gpuName: "RTX 3080", machines: 3, tier: "consumer", price: [100, 180] },
  { gpuName: "RTX 3060", machines: 2, tier: "consumer", price: [60, 120] },
  { gpuName: "RTX 4080", machines: 2, tier: "consumer", price: [200, 350] },
  { gpuName: "RTX 5090", machines: 2, tier: "consumer", price: [600, 900] },
  { gpuName: "GTX 1080 Ti", machines: 1, tier: "consumer", price: [50, 100] },
  { gpuName: "RTX A4000", machines: 2, tier: "workstation", price: [120, 200] },
  { gpuName: "RTX A5000", machines: 2, tier: "workstation", price: [180, 300] },
  { gpuName: "RTX A6000", machines: 3, tier: "workstation", price: [400, 700] },
  { gpuName: "Tesla V100", machines: 1, tier: "datacenter", price: [200, 400] },
  { gpuName: "A40", machines: 2, tier: "datacenter", price: [350, 550] },
  { gpuName: "L40S", machines: 3, tier: "datacenter", price: [700, 1000] },
  { gpuName: "A100 PCIE", machines: 2, tier: "datacenter", price: [900, 1300] },
  { gpuName: "A100 SXM4", machines: 4, tier: "datacenter", price: [1100, 1600] },
  { gpuName: "H100 PCIE", machines: 2, tier: "datacenter", price: [1800, 2300] },
  { gpuName: "H100 SXM", machines: 3, tier: "datacenter", price: [2200, 2800] },
];

const LOCATIONS: readonly [countryCode: string, geolocation: string][] = [
  ["US", "Texas, US"],
  ["US", "California, US"],
  ["US", "Virginia, US"],
  ["US", "Oregon, US"],
  ["DE", "Hesse, DE"],
  ["DE", "Bavaria, DE"],
  ["CA", "Quebec, CA"],
  ["CA", "Ontario, CA"],
  ["FR", "Île-de-France, FR"],
  ["NL", "North Holland, NL"],
  ["SE", "Stockholm, SE"],
  ["JP", "Tokyo, JP"],
  ["SG", "Singapore, SG"],
  ["BR", "São Paulo, BR"],
  ["PL", "Masovia, PL"],
  ["GB", "England, GB"],
  ["FI", "Uusimaa, FI"],
  ["KR", "Seoul, KR"],
];

/** CPU model and its threads; consumer rigs of 4 or more GPUs sit on workstation boards. */
const CPUS: Record<Tier, readonly [name: string, cores: number][]> = {
  consumer: [
    ["AMD Ryzen 9 7950X 16-Core Processor", 32],
    ["AMD Ryzen 9 5950X 16-Core Processor", 32],
    ["Intel Core i9-13900K", 32],
  ],
  workstation: [
    ["AMD Ryzen Threadripper PRO 5975WX 32-Cores", 64],
    ["Intel Xeon W-3375", 76],
    ["AMD EPYC 7443P 24-Core Processor", 48],
    ["AMD EPYC 7542 32-Core Processor", 64],
  ],
  datacenter: [
    ["AMD EPYC 7763 64-Core Processor", 128],
    ["Intel Xeon Platinum 8480+", 112],
    ["AMD EPYC 9654 96-Core Processor", 192],
    ["Intel Xeon Gold 6338", 64],
  ],
};

/** Driver and the newest CUDA it runs; Blackwell needs 570 or later. */
const DRIVERS: readonly [driverVersion: string, cudaMaxGood: number][] = [
  ["535.183.01", 12.2],
  ["550.54.15", 12.4],
  ["560.35.03", 12.6],
  ["570.124.06", 12.8],
];

const GPU_COUNTS: Record<Tier, readonly number[]> = {
  consumer: [1, 1, 2, 2, 4, 4, 8],
  workstation: [1, 2, 4, 4, 8],
  datacenter: [4, 8, 8, 8],
};

export interface DemoMachine {
  specs: RegisterMachineInput;
  reliability: number;
  verified: boolean;
  datacenter: boolean;
  pricePerGpuHour: bigint;
  minBidPerGpuHour: bigint;
  storagePricePerGbMonth: bigint;
  inetUpPricePerGb: bigint;
  inetDownPricePerGb: bigint;
  minChunk: number;
  listingDays: number;
}

/** The demo fleet: the same 50 machines on every run. */
export function demoMachines(): DemoMachine[] {
  const random = seededRandom(20_261_127);
  const fleet: DemoMachine[] = [];
  for (const { gpuName, machines, tier, price } of FLEET) {
    const model = gpuModel(gpuName);
    if (!model) throw new Error(`demo GPU ${gpuName} is missing from GPU_MODELS`);
    for (let i = 0; i < machines; i++) {
      const numGpus = pick(random, GPU_COUNTS[tier]);
      const datacenter = tier === "datacenter" ? random() < 0.8 : random() < 0.1;
      const [cpuName, cpuCores] = pick(random, CPUS[tier === "consumer" && numGpus >= 4 ? "workstation" : tier]);
      const [countryCode, geolocation] = pick(random, LOCATIONS);
      const [driverVersion, cudaMaxGood] =
        model.computeCap >= 1200 ? DRIVERS[DRIVERS.length - 1] : pick(random, DRIVERS);
      // Measured PCIe bandwidth: most GPUs sit in x16 slots, some consumer rigs in x8.
      const lanes = tier === "consumer" && random() < 0.25 ? 8 : 16;
      const pcieBw = Math.round(pcieBandwidth(model.pcieGen, lanes) * (0.75 + random() * 0.2) * 10) / 10;
      const ramPerGpuGb = tier === "datacenter" ? pick(random, [128, 192, 256]) : pick(random, [32, 48, 64]);
      const pricePerGpuHour = mills(random, price[0], price[1]);
      fleet.push({
        specs: {
          gpuName,
          numGpus,
          gpuRamMb: model.gpuRamMb,
          computeCap: model.computeCap,
          tflopsPerGpu: model.tflopsPerGpu,
          gpuMemBw: model.gpuMemBw,
          pcieGen: model.pcieGen,
          pcieBw,
          cpuName,
          cpuCores,
          cpuRamMb: numGpus * ramPerGpuGb * 1024,
          diskSpaceGb: pick(random, tier === "datacenter" ? [4000, 8000, 15000] : [1000, 2000, 4000]),
          diskBw: int(random, 15, 70) * 100,
          inetUpMbps: tier === "datacenter" ? int(random, 20, 100) * 100 : int(random, 2, 20) * 50,
          inetDownMbps: tier === "datacenter" ? int(random, 20, 100) * 100 : int(random, 5, 40) * 50,
          cudaMaxGood,
          driverVersion,
          countryCode,
          geolocation,
        },
        reliability: Math.round((datacenter ? 0.98 + random() * 0.019 : 0.9 + random() * 0.095) * 10_000) / 10_000,
        verified: datacenter || random() < 0.85,
        datacenter,
        pricePerGpuHour,
        // Interruptible reserve: 40–80% of the on-demand price.
        minBidPerGpuHour: (pricePerGpuHour * BigInt(int(random, 40, 80))) / 100n,
        storagePricePerGbMonth: mills(random, 100, 200),
        inetUpPricePerGb: datacenter ? mills(random, 0, 5) : mills(random, 2, 20),
        inetDownPricePerGb: datacenter ? mills(random, 0, 5) : mills(random, 2, 20),
        minChunk: numGpus >= 4 && random() < 0.3 ? 2 : 1,
        listingDays: int(random, 30, 180),
      });
    }
  }
  return fleet;
}

const DEMO_PORT_BASE = 40_000;
const DEMO_PORTS_PER_MACHINE = 100;

/** Registers, rates, verifies and lists the fleet for the host, in the caller's transaction. */
async function loadFleet(db: Tx, hostId: number, now: Date): Promise<void> {
  for (const [index, demo] of demoMachines().entries()) {
    const { machine } = await addMachine(db, hostId, demo.specs);
    // Reliability comes from the machine's track record; demo machines start with one. They share one
    // host, so each gets direct ports of its own (100 from 40000 up).
    const directPortStart = DEMO_PORT_BASE + index * DEMO_PORTS_PER_MACHINE;
    await db.machine.update({
      where: { id: machine.id },
      data: { reliability: demo.reliability, directPortStart, directPortEnd: directPortStart + DEMO_PORTS_PER_MACHINE - 1 },
    });
    await syncOffers(db, machine.id, now);
    await vetMachine(db, machine.id, { verification: demo.verified ? "VERIFIED" : "UNVERIFIED", datacenter: demo.datacenter });
    await applyListing(db, hostId, {
      machineId: machine.id,
      pricePerGpuHour: demo.pricePerGpuHour,
      minBidPerGpuHour: demo.minBidPerGpuHour,
      storagePricePerGbMonth: demo.storagePricePerGbMonth,
      inetUpPricePerGb: demo.inetUpPricePerGb,
      inetDownPricePerGb: demo.inetDownPricePerGb,
      minChunk: demo.minChunk,
      endDate: new Date(now.getTime() + demo.listingDays * DAY_MS),
    });
  }
}

/** Credit with its ledger entry, in one transaction, so the balance stays the sum of the ledger. */
async function creditDemo(db: Tx, userId: number): Promise<void> {
  await db.ledgerEntry.create({
    data: { userId, kind: "ADJUSTMENT", amountMicros: DEMO_CREDIT_MICROS, description: "Demo credit" },
  });
  await db.user.update({ where: { id: userId }, data: { balanceMicros: { increment: DEMO_CREDIT_MICROS } } });
}

/**
 * Loads the demo data when the database has no account at all; returns whether it did. The demo
 * accounts get random passwords nobody knows: they are used through the keys `issueDemoKeys` prints.
 */
export async function loadDemoData(now = new Date()): Promise<boolean> {
  if ((await prisma.user.count()) > 0) return false;
  const accounts: number[] = [];
  try {
    for (const email of [DEMO_HOST_EMAIL, DEMO_CLIENT_EMAIL]) {
      accounts.push((await createAccount({ email, password: randomBytes(24).toString("base64url") })).userId);
    }
  } catch (error) {
    // Another process starting on the same empty database got there first.
    if (error instanceof ConflictError) return false;
    throw error;
  }
  const [hostId, clientId] = accounts;
  try {
    await prisma.$transaction(
      async (tx) => {
        await loadFleet(tx, hostId, now);
        await creditDemo(tx, clientId);
        // Verified as a real account would be (email and a card), so that the demo client's spend
        // rate limit (CARD_VERIFIED) lets it rent the demo's largest offers. No card is on file.
        await tx.user.updateMany({ where: { id: { in: accounts } }, data: { emailVerified: true, cardVerifiedAt: now } });
      },
      { timeout: 120_000 },
    );
  } catch (error) {
    // Without its machines the demo would stay half-loaded: the next start loads it again.
    await prisma.user.deleteMany({ where: { id: { in: accounts } } });
    throw error;
  }
  return true;
}

export interface DemoKey {
  role: "host" | "client";
  email: string;
  token: string;
}

/**
 * Keys are stored hashed, so the demo's cannot be shown again: each start revokes the demo
 * accounts' full-account keys and issues one fresh key per account (machine agent keys stay).
 * Returns nothing when the demo accounts do not exist.
 */
export async function issueDemoKeys(): Promise<DemoKey[]> {
  return prisma.$transaction(async (tx) => {
    const users = await tx.user.findMany({
      where: { email: { in: [DEMO_HOST_EMAIL, DEMO_CLIENT_EMAIL] } },
      select: { id: true, email: true },
      orderBy: { id: "asc" },
    });
    await tx.apiKey.updateMany({
      where: { userId: { in: users.map((user) => user.id) }, scope: "ACCOUNT", revokedAt: null },
      data: { revokedAt: new Date() },
    });
    const keys: DemoKey[] = [];
    for (const user of users) {
      const key = await issueApiKey(tx, { userId: user.id, name: DEMO_KEY_NAME, scope: "ACCOUNT" });
      keys.push({ role: user.email === DEMO_HOST_EMAIL ? "host" : "client", email: user.email, token: key.token });
    }
    return keys;
  });
}
