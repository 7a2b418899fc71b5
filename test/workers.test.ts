import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GPU_MODELS } from "../domain/dlperf.ts";
import { ValidationError } from "../domain/errors.ts";
import { expireListings, LISTING_ROLL_STEP_MS, listMachine, registerMachine, rollListingEndDates } from "../domain/machines.ts";
import { prisma } from "../infra/db.ts";
import { redisConnection } from "../infra/redis.ts";
import { queuePrefix } from "../infra/queues.ts";
import { jobs, startWorkers } from "../workers/index.ts";

const DAY_MS = 86_400_000;

async function unlistedMachine(hostId: number): Promise<number> {
  const model = GPU_MODELS.find((m) => m.gpuName === "RTX 4090")!;
  const { machine } = await registerMachine(hostId, {
      ...model,
      numGpus: 4,
      pcieBw: 24,
      cpuName: "AMD EPYC 7542 32-Core Processor",
      cpuCores: 64,
      cpuRamMb: 262_144,
      diskSpaceGb: 2000,
      diskBw: 3000,
      inetUpMbps: 500,
      inetDownMbps: 1000,
      cudaMaxGood: 12.4,
      driverVersion: "550.54.15",
      countryCode: "DE",
      geolocation: "Hesse, DE",
    });
  return machine.id;
}

async function listedMachine(hostId: number, endDate: Date): Promise<number> {
  const machineId = await unlistedMachine(hostId);
  await listMachine(hostId, { machineId, pricePerGpuHour: 450_000n, endDate });
  return machineId;
}

const rentableOffers = (machineId: number) => prisma.offer.count({ where: { machineId, rentable: true } });

describe("offer expiry", () => {
  let hostId: number;
  beforeAll(async () => {
    hostId = (await prisma.user.create({ data: { email: "expiry@example.com", passwordHash: "unused" } })).id;
  });

  it("makes offers of machines past their end date unrentable, once", async () => {
    const now = new Date();
    const expiring = await listedMachine(hostId, new Date(now.getTime() + DAY_MS));
    const lasting = await listedMachine(hostId, new Date(now.getTime() + 30 * DAY_MS));
    expect(await rentableOffers(expiring)).toBe(3);

    expect(await expireListings(now)).toBe(0);
    expect(await rentableOffers(expiring)).toBe(3);

    const later = new Date(now.getTime() + 2 * DAY_MS);
    expect(await expireListings(later)).toBe(1);
    expect(await rentableOffers(expiring)).toBe(0);
    expect(await prisma.offer.count({ where: { machineId: expiring } })).toBe(3);
    expect(await rentableOffers(lasting)).toBe(3);
    expect(await expireListings(later)).toBe(0);
  });

  it("keeps a rolling end date at now + duration: rolled forward, never expired; a fixed end date ends it", async () => {
    const now = new Date();
    const rolling = await listedMachine(hostId, new Date(now.getTime() + DAY_MS));
    await listMachine(hostId, { machineId: rolling, pricePerGpuHour: 450_000n, duration: 2 }, now);
    const endDate = async () => (await prisma.machine.findUniqueOrThrow({ where: { id: rolling } })).endDate!.getTime();
    expect(await endDate()).toBe(now.getTime() + 2 * DAY_MS);

    // Within a roll step of now + duration: left alone.
    expect(await rollListingEndDates(new Date(now.getTime() + LISTING_ROLL_STEP_MS / 2))).toBe(0);
    expect(await endDate()).toBe(now.getTime() + 2 * DAY_MS);

    // Three days on, the fixed listing would have lapsed; the rolling one moved with time.
    const later = new Date(now.getTime() + 3 * DAY_MS);
    expect(await rollListingEndDates(later)).toBe(1);
    expect(await endDate()).toBe(later.getTime() + 2 * DAY_MS);
    expect(await expireListings(later)).toBe(0);
    expect(await rentableOffers(rolling)).toBe(3);
    const offers = await prisma.offer.findMany({ where: { machineId: rolling } });
    expect(offers.every((offer) => offer.endDate.getTime() === later.getTime() + 2 * DAY_MS)).toBe(true);

    // A price change keeps the rolling end; a fixed end date stops the rolling.
    await listMachine(hostId, { machineId: rolling, pricePerGpuHour: 300_000n });
    expect(await prisma.machine.findUniqueOrThrow({ where: { id: rolling } })).toMatchObject({ listingDurationSeconds: 2 * 86_400 });
    await listMachine(hostId, { machineId: rolling, pricePerGpuHour: 300_000n, endDate: new Date(Date.now() + DAY_MS) });
    expect(await rollListingEndDates(later)).toBe(0);
    expect(await expireListings(later)).toBe(1);
    expect(await rentableOffers(rolling)).toBe(0);
  });

  it("a duration with an end date, out of range, or no end at all on a first listing is a typed error; nothing written", async () => {
    const machineId = await listedMachine(hostId, new Date(Date.now() + DAY_MS));
    const fresh = await unlistedMachine(hostId);
    const before = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
    const cases: [number, object][] = [
      [machineId, { duration: 2, endDate: new Date(Date.now() + DAY_MS) }],
      [machineId, { duration: 0 }],
      [machineId, { duration: 400 }],
      [fresh, {}],
    ];
    for (const [id, change] of cases) {
      const error = await listMachine(hostId, { machineId: id, pricePerGpuHour: 100_000n, ...change }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
    }
    expect(await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).toEqual(before);
    expect(await prisma.machine.findUniqueOrThrow({ where: { id: fresh } })).toMatchObject({ listed: false, endDate: null });
  });

  describe("through BullMQ on Redis", () => {
    const connection = redisConnection();
    afterAll(async () => {
      for (const job of jobs) {
        const queue = new Queue(job.name, { connection, prefix: queuePrefix() });
        await queue.obliterate({ force: true });
        await queue.close();
      }
      await connection.quit();
    });

    it("runs the expiry job as soon as the workers start, then every minute", async () => {
      const machineId = await listedMachine(hostId, new Date(Date.now() + DAY_MS));
      // Time passes: the end date is now behind, and the offers still say rentable.
      await prisma.machine.update({ where: { id: machineId }, data: { endDate: new Date(Date.now() - 1000) } });
      expect(await rentableOffers(machineId)).toBe(3);

      const workers = await startWorkers();
      try {
        await expect.poll(() => rentableOffers(machineId), { timeout: 10_000, interval: 100 }).toBe(0);
        const queue = new Queue("offer-expiry", { connection, prefix: queuePrefix() });
        const schedulers = await queue.getJobSchedulers();
        expect(schedulers).toMatchObject([{ key: "offer-expiry", every: 60_000 }]);
        await queue.close();
      } finally {
        await workers.close();
      }
    });
  });
});
