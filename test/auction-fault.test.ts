import { Queue } from "bullmq";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AUCTION_QUEUE } from "../domain/auction/service.ts";
import { liveInstances } from "../domain/auction/contracts.ts";
import { syncOfferDisk } from "../domain/offers/sync.ts";
import { prisma } from "../infra/db.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
import { createAccount, createListedMachine, expectAllocationValid, waitForClearings } from "./support/rentals.ts";
import { useWorkerProcesses } from "./support/worker-process.ts";

const MACHINES = 40;
const BIDS_PER_MACHINE = 12;
/** Machines whose rows the test holds locked, so the worker's clearings of them wait inside their transactions. */
const HELD = 24;

const connection = redisConnection();
const queue = new Queue(AUCTION_QUEUE, { connection, prefix: redisKey("bull") });
const startWorker = useWorkerProcesses();

afterAll(async () => {
  await queue.close();
  await connection.quit();
});

let machineIds: number[];

beforeAll(async () => {
  const host = await createAccount("host");
  const client = await createAccount("client");
  machineIds = [];
  for (let i = 0; i < MACHINES; i++) machineIds.push(await createListedMachine(host.userId, { numGpus: 4 }));
  // Contracts as createInstance leaves them: waiting in SCHEDULING, their machines flagged for clearing,
  // their disk reserved.
  const now = Date.now();
  await prisma.instance.createMany({
    data: machineIds.flatMap((machineId, m) =>
      Array.from({ length: BIDS_PER_MACHINE }, (_, b) => {
        const onDemand = b === 0 && m % 3 === 0;
        return {
          clientId: client.userId,
          machineId,
          kind: onDemand ? ("ON_DEMAND" as const) : ("INTERRUPTIBLE" as const),
          numGpus: [1, 2, 1, 4][(m + b) % 4],
          pricePerGpuHourMicros: 400_000n,
          storagePricePerGbMonthMicros: 0n,
          inetUpPricePerGbMicros: 0n,
          inetDownPricePerGbMicros: 0n,
          endDate: new Date(now + 86_400_000),
          bidPerGpuHourMicros: onDemand ? null : BigInt(100_000 + ((m * 7919 + b * 104_729) % 300_000)),
          bidPlacedAt: new Date(now + b),
          image: "ubuntu:22.04",
          diskGb: 10,
          launchMode: "SSH" as const,
          onstart: "",
          env: [],
          ports: [],
          status: "SCHEDULING" as const,
          intendedStatus: "RUNNING" as const,
          statusChangedAt: new Date(now),
        };
      }),
    ),
  });
  await prisma.machine.updateMany({ where: { id: { in: machineIds } }, data: { clearingRequestedAt: new Date(now) } });
  // Their offers show the disk they reserve, as createInstance leaves them.
  for (const machine of await prisma.machine.findMany({ where: { id: { in: machineIds } } })) await syncOfferDisk(prisma, machine);
}, 120_000);

describe("kill -9 of the auction worker while it clears", () => {
  it("leaves every machine's allocation valid, and a restarted worker finishes the work", async () => {
    // The clearing is held at a known point: the test locks the rows of the last HELD machines, so the
    // worker clears the others and then waits, in one open clearing transaction per held machine.
    const held = machineIds.slice(MACHINES - HELD);
    const holder = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query("SELECT id FROM machine WHERE id = ANY($1) FOR UPDATE", [held]);

    const first = await startWorker("workers/auction.ts", "auction worker started");
    await vi.waitFor(
      async () => {
        expect(await prisma.machine.count({ where: { id: { in: machineIds }, clearingRequestedAt: { not: null } } })).toBe(HELD);
        // Every held machine's clearing, waiting alone for its row (fewer than the jobs the worker takes at once).
        expect(await queue.getActiveCount()).toBe(HELD);
      },
      { timeout: 60_000, interval: 50 },
    );
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    const pendingAfterKill = await prisma.machine.count({ where: { id: { in: machineIds }, clearingRequestedAt: { not: null } } });
    expect(pendingAfterKill).toBe(HELD);
    expect(await queue.getActiveCount()).toBeGreaterThan(0); // jobs the dead worker held

    // Right after the kill: no machine holds more GPUs than it has, and each cleared machine's
    // allocation is exactly the auction's (a half-applied clearing would break one or the other).
    for (const machineId of machineIds) {
      const machine = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
      const holding = (await liveInstances(prisma, machineId)).filter((i) => i.status === "LOADING" || i.status === "RUNNING");
      expect(holding.reduce((sum, i) => sum + i.numGpus, 0)).toBeLessThanOrEqual(machine.numGpus);
      if (machine.clearingRequestedAt === null) await expectAllocationValid(machineId);
      else expect(holding).toEqual([]);
    }

    await holder.query("ROLLBACK");
    await holder.end();

    const second = await startWorker("workers/auction.ts", "auction worker started");
    await waitForClearings(60_000);
    for (const machineId of machineIds) await expectAllocationValid(machineId);
    expect(await prisma.instance.count({ where: { machineId: { in: machineIds }, status: "SCHEDULING" } })).toBe(0);
    second.kill("SIGTERM");
    expect(await new Promise((resolve) => second.once("exit", resolve))).toBe(0);
  }, 120_000);
});
