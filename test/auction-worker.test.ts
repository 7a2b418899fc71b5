import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUCTION_QUEUE, enqueueClearing, requeueStaleClearings } from "../domain/auction/service.ts";
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

async function bid(machineId: number, numGpus: number, price: string) {
  const result = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus, { bidPricePerGpuHour: price }) }, client.key)).data.createInstance);
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
