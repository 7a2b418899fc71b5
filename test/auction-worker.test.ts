import { Queue } from "bullmq";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUCTION_QUEUE, clearMachinesNow, enqueueClearing, requeueStaleClearings } from "../domain/auction/service.ts";
import { syncOffers } from "../domain/offers/sync.ts";
import { prisma } from "../infra/db.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, expectAllocationValid, instanceInput, unwrap, waitForClearings } from "./support/rentals.ts";

const app = useTestApp();
const connection = redisConnection();
const queue = new Queue(AUCTION_QUEUE, { connection, prefix: redisKey("bull") });
afterAll(async () => {
  await queue.close();
  await connection.quit();
});

let host: { userId: number; key: string };
let client: { userId: number; key: string };
beforeAll(async () => {
  host = await createAccount("host");
  client = await createAccount("client");
});

async function bid(machineId: number, numGpus: number, price: string, key = client.key) {
  const result = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus, { bidPricePerGpuHour: price }) }, key)).data.createInstance);
  expect(result.__typename).toBe("CreateInstancePayload");
  return Number(result.instance.id.split(":")[1]);
}

describe("auction queue", () => {
  it("keeps one waiting clearing per machine however many events arrive", async () => {
    await queue.drain();
    const machineId = await createListedMachine(host.userId);
    await Promise.all(Array.from({ length: 25 }, () => enqueueClearing(machineId)));
    const other = await createListedMachine(host.userId);
    await enqueueClearing(other);
    const waiting = await queue.getWaiting();
    expect(waiting.map((job) => job.data.machineId).sort()).toEqual([machineId, other].sort());
    await queue.drain();
  });

  it("requeues machines whose clearing was requested but never ran", async () => {
    await queue.drain();
    // Only this machine's request is stale: the machines before it, whatever their age, asked for none.
    await prisma.machine.updateMany({ data: { clearingRequestedAt: null } });
    const machineId = await createListedMachine(host.userId);
    await prisma.machine.update({ where: { id: machineId }, data: { clearingRequestedAt: new Date(Date.now() - 60_000) } });
    expect(await requeueStaleClearings(5_000)).toBe(1);
    expect((await queue.getWaiting()).map((job) => job.data.machineId)).toEqual([machineId]);
    await queue.drain();
    await prisma.machine.update({ where: { id: machineId }, data: { clearingRequestedAt: null } });
  });
});

describe("clearing machines together", () => {
  /** Machines of 4 GPUs, each with bids for more GPUs than it has (two win), waiting for their clearing. */
  async function contestedMachines(count: number): Promise<number[]> {
    const machineIds: number[] = [];
    for (let i = 0; i < count; i++) {
      const machineId = await createListedMachine(host.userId, { numGpus: 4 });
      // A bidder per machine, each well within its spend rate.
      const { key } = await createAccount("bidder");
      for (const [gpus, price] of [[2, "0.20"], [2, "0.30"], [1, "0.25"], [4, "0.15"]] as const) await bid(machineId, gpus, `${price}${i}`, key);
      machineIds.push(machineId);
    }
    await queue.drain();
    return machineIds;
  }

  const offerColumns = { id: true, gpusFreeOfOnDemand: true, winningBidMicros: true, rented: true, rentable: true } as const;

  it("clears every machine of a batch in one transaction, each as it would be cleared alone", async () => {
    const machineIds = await contestedMachines(3);
    const cleared = await clearMachinesNow(machineIds);
    for (const machineId of machineIds) {
      const changes = await cleared.get(machineId)!;
      expect(changes.map((c) => c.to).sort()).toEqual(["LOADING", "LOADING", "PAUSED", "PAUSED"]);
      await expectAllocationValid(machineId);
      expect(await prisma.instance.count({ where: { machineId, bidStanding: null } })).toBe(0);
      // The batch's offers are what a full sync of the machine writes.
      const offers = await prisma.offer.findMany({ where: { machineId }, select: offerColumns, orderBy: { id: "asc" } });
      await syncOffers(prisma, machineId);
      expect(await prisma.offer.findMany({ where: { machineId }, select: offerColumns, orderBy: { id: "asc" } })).toEqual(offers);
    }
    const writers = await prisma.$queryRaw<{ xid: string }[]>`SELECT DISTINCT xmin::text AS xid FROM machine WHERE id = ANY(${machineIds}::int[])`;
    expect(writers).toHaveLength(1);
    expect(await prisma.machine.count({ where: { id: { in: machineIds }, clearingRequestedAt: { not: null } } })).toBe(0);
  });

  it("clears the others when one machine's clearing fails or its row is held", async () => {
    const [first, failing, held, last] = await contestedMachines(4);
    await prisma.$executeRawUnsafe(`
      CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'instance % refused', NEW.id; END $$`);
    await prisma.$executeRawUnsafe(
      `CREATE TRIGGER refuse_update BEFORE UPDATE ON instance FOR EACH ROW WHEN (NEW.machine_id = ${failing}) EXECUTE FUNCTION refuse_update()`,
    );
    const holder = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM machine WHERE id = $1 FOR UPDATE", [held]);
      const cleared = await clearMachinesNow([first, failing, held, last]);
      await expect(cleared.get(failing)).rejects.toThrow(/refused/);
      for (const machineId of [first, last]) {
        expect(await cleared.get(machineId)).toHaveLength(4);
        await expectAllocationValid(machineId);
      }
      // The held machine waits for its row, alone; the others did not wait for it.
      expect(await prisma.machine.findUniqueOrThrow({ where: { id: held } })).toMatchObject({ clearingRequestedAt: expect.any(Date) });
      await holder.query("ROLLBACK");
      expect(await cleared.get(held)).toHaveLength(4);
      await expectAllocationValid(held);
      // The failing machine stays flagged, for its job's next attempt and the maintenance job.
      expect(await prisma.machine.findUniqueOrThrow({ where: { id: failing } })).toMatchObject({ clearingRequestedAt: expect.any(Date) });
      expect(await prisma.instance.count({ where: { machineId: failing, status: "SCHEDULING" } })).toBe(4);
    } finally {
      await holder.end();
      await prisma.$executeRawUnsafe("DROP TRIGGER refuse_update ON instance");
      await prisma.$executeRawUnsafe("DROP FUNCTION refuse_update");
    }
    await clearMachinesNow([failing]);
    await expectAllocationValid(failing);
  });
});

describe("auction worker", () => {
  let worker: AuctionWorker;
  beforeAll(async () => {
    worker = await startAuctionWorker();
  });
  afterAll(() => worker.close());

  it("clears every machine an event touched: highest bids run, the rest pause with the price to win", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const a = await bid(machineId, 2, "0.20");
    const b = await bid(machineId, 2, "0.30");
    const c = await bid(machineId, 1, "0.25");
    const d = await bid(machineId, 1, "0.15");
    await waitForClearings();
    const status = async (id: number) => prisma.instance.findUniqueOrThrow({ where: { id } });
    expect((await status(b)).status).toBe("LOADING");
    expect((await status(c)).status).toBe("LOADING");
    expect((await status(d)).status).toBe("LOADING");
    expect(await status(a)).toMatchObject({ status: "PAUSED", statusMessage: "outbid: $0.250001/GPU/hr needed" });
    await expectAllocationValid(machineId);
  });

  it("reaches the same allocation whatever order the bids arrive in", async () => {
    const bids: [number, string][] = [[2, "0.31"], [1, "0.45"], [4, "0.22"], [2, "0.27"], [1, "0.12"], [4, "0.40"], [1, "0.33"]];
    const outcome = async (order: [number, string][]) => {
      const machineId = await createListedMachine(host.userId, { numGpus: 8 });
      for (const [gpus, price] of order) await bid(machineId, gpus, price);
      await waitForClearings();
      await expectAllocationValid(machineId);
      const rows = await prisma.instance.findMany({ where: { machineId } });
      return rows.map((i) => `${i.numGpus}@${i.bidPerGpuHourMicros}:${i.status}`).sort();
    };
    const forward = await outcome(bids);
    expect(await outcome([...bids].reverse())).toEqual(forward);
    expect(await outcome([bids[3], bids[0], bids[6], bids[2], bids[5], bids[1], bids[4]])).toEqual(forward);
    expect(forward.filter((s) => s.endsWith("LOADING")).length).toBeGreaterThan(0);
    expect(forward.filter((s) => s.endsWith("PAUSED")).length).toBeGreaterThan(0);
  });
});
