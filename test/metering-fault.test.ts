import type { ChildProcess } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { ledgerMismatches, postEntry } from "../domain/billing/ledger.ts";
import { startPrivateRedis, type LocalService } from "../infra/local-services.ts";
import { prisma } from "../infra/db.ts";
import { seededRandom } from "../domain/seededRandom.ts";
import { eventAt, expectedCharges, instanceAt, ledgerTotals, meteringClocks } from "./support/metering.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";
import { useWorkerProcesses } from "./support/worker-process.ts";

const KILLS = 10;
const startWorkerProcess = useWorkerProcesses();
let redis: LocalService | undefined;

afterAll(async () => {
  await redis?.stop();
});

const nowSec = () => Date.now() / 1000;

async function kill(child: ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once("exit", resolve));
}

/** Restarts the private Redis on the same port, empty (no persistence): the scheduler and jobs are gone. */
async function restartRedis(url: string): Promise<void> {
  await redis!.stop();
  redis = await startPrivateRedis(Number(new URL(url).port));
}

describe("kill -9 of the metering worker and a Redis restart", () => {
  it("ends with every balance equal to the exact charges of the RUNNING and stored intervals", async () => {
    redis = await startPrivateRedis();
    const url = redis.url;
    const host = await createAccount("host", { credit: 0n });
    const clients = [await createAccount("a", { credit: 0n }), await createAccount("b", { credit: 0n })];
    for (const client of clients) {
      await prisma.$transaction((tx) => postEntry(tx, { userId: client.userId, kind: "ADJUSTMENT", amountMicros: 1_000_000_000n, description: "credit" }));
    }
    const machines = [await createListedMachine(host.userId), await createListedMachine(host.userId)];
    const ids: number[] = [];
    const start = nowSec();
    for (let i = 0; i < 12; i++) {
      const id = await instanceAt(clients[i % 2].userId, machines[i % 2], start, { numGpus: 1 + (i % 4), diskGb: 10 + i * 7, bid: i % 3 === 0 ? 250_000n : undefined });
      await eventAt(id, "ALLOCATED", start);
      await eventAt(id, "AGENT_RUNNING", start);
      ids.push(id);
    }

    // Seeded, so that a failing sequence of kills can be replayed.
    const seed = Number(process.env.METERING_FAULT_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    console.info(`metering fault sequence: METERING_FAULT_SEED=${seed}`);
    const clientIds = clients.map((client) => client.userId);
    // 0 until the first worker has made the clocks.
    const slowestClock = async () => Math.min(...clientIds.map(await meteringClocks()).map((clock) => clock || 0));

    let worker = await startWorkerProcess("workers/metering.ts", "metering worker started", { REDIS_URL: url });
    for (let k = 0; k < KILLS; k++) {
      // Each worker gets to meter before it dies, and dies at some point of its ticks, not on a boundary.
      const clock = await slowestClock();
      await expect.poll(slowestClock, { timeout: 20_000, interval: 50 }).toBeGreaterThan(clock);
      await new Promise((resolve) => setTimeout(resolve, random() * 1000));
      // Instances change while the worker lives and while it is dead.
      const id = ids[Math.floor(random() * ids.length)];
      const { status } = await prisma.instance.findUniqueOrThrow({ where: { id }, select: { status: true } });
      if (status === "RUNNING") await eventAt(id, "STOP_REQUESTED", nowSec());
      else if (status === "STOPPED") await eventAt(id, "START_REQUESTED", nowSec());
      else if (status === "SCHEDULING") await eventAt(id, "ALLOCATED", nowSec());
      else if (status === "LOADING") await eventAt(id, "AGENT_RUNNING", nowSec());
      await kill(worker);
      // The next worker starts behind: at least one whole second passes while none runs.
      const died = nowSec();
      await expect.poll(nowSec, { timeout: 5_000, interval: 50 }).toBeGreaterThanOrEqual(died + 1);
      if (k === KILLS / 2) await restartRedis(url);
      worker = await startWorkerProcess("workers/metering.ts", "metering worker started", { REDIS_URL: url });
    }
    await eventAt(ids[0], "DESTROY_REQUESTED", nowSec());
    const end = Math.floor(nowSec()) + 1;
    // The last worker catches up past `end` in every phase (the clocks lag 2 s behind real time).
    await expect.poll(slowestClock, { timeout: 20_000, interval: 200 }).toBeGreaterThanOrEqual(end);
    await kill(worker);

    expect(await ledgerMismatches(prisma)).toEqual([]);
    const { charged, earned } = await expectedCharges(await meteringClocks());
    expect(charged.get(clients[0].userId)).toBeGreaterThan(0n);
    expect(await ledgerTotals("CHARGE")).toEqual(charged);
    expect(await ledgerTotals("EARNING")).toEqual(earned);
    for (const client of clients) {
      const { balanceMicros } = await prisma.user.findUniqueOrThrow({ where: { id: client.userId } });
      expect(balanceMicros).toBe(1_000_000_000n - charged.get(client.userId)!);
    }
  }, 180_000);
});
