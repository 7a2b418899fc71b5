import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineHeartbeat, sweepMachineLiveness } from "../domain/agent/liveness.ts";
import { DISCONNECT_PENALTY_SECONDS, FAILED_ASSIGNMENT_PENALTY_SECONDS } from "../domain/agent/reliability.ts";
import { reportInstanceState } from "../domain/agent/reports.ts";
import { createInstance } from "../domain/instances/service.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { jobs } from "../workers/index.ts";
import { eventually } from "./support/agent-process.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

let auction: AuctionWorker;
beforeAll(async () => {
  auction = await startAuctionWorker();
});
afterAll(async () => {
  await auction.close();
  await closePubSub();
});

const HALF_LIFE = 7 * 86_400;
const LAMBDA = Math.LN2 / HALF_LIFE;

/** reliability.ts's formula in plain numbers: the sums after `seconds` in one state, plus a penalty. */
function advance(sums: { good: number; weight: number }, seconds: number, online: boolean, penalty = 0) {
  const d = Math.exp(-LAMBDA * seconds);
  const good = sums.good * d + (online ? (1 - d) / LAMBDA : 0);
  const weight = sums.weight * d + (1 - d) / LAMBDA + penalty;
  return { good, weight, score: good / weight };
}

const machine = (id: number) => prisma.machine.findUniqueOrThrow({ where: { id } });
const offers = (machineId: number) => prisma.offer.findMany({ where: { machineId } });

describe("offline detection", () => {
  it("is a registered periodic job", () => {
    expect(jobs.map((job) => job.name)).toContain("machine-liveness");
  });

  it("takes a silent machine offline and back on its next heartbeat, with its offers and instances", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const silentSinceRegistration = await createListedMachine(host.userId, { numGpus: 1 });
    const start = new Date(Date.now() - 1000);
    await machineHeartbeat(machineId, { cpuLoad: 0.5 }, start);
    const { instance } = await createInstance(client.userId, { offerId: `${machineId}-1`, image: "a/b", diskGb: 10, launchMode: "SSH" });
    await eventually(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).status === "LOADING");
    await reportInstanceState(machineId, { instanceId: instance.id, status: "RUNNING" });
    const before = await machine(machineId);

    // Not yet: within MACHINE_OFFLINE_AFTER_SECONDS (60 by default).
    expect((await sweepMachineLiveness(new Date(start.getTime() + 59_000))).offline).toEqual([]);
    const later = new Date(start.getTime() + 61_000);
    const sweep = await sweepMachineLiveness(later);
    expect(sweep.offline).toEqual([machineId]);
    const offline = await machine(machineId);
    expect(offline.online).toBe(false);
    expect((await machine(silentSinceRegistration)).online).toBe(true);
    expect((await offers(machineId)).every((offer) => !offer.rentable)).toBe(true);
    const waiting = await eventually(async () => {
      const current = await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } });
      return current.status === "SCHEDULING" && current;
    });
    expect(waiting.statusMessage).toMatch(/machine offline/);

    // The disconnect and the outage so far count against it, exactly as reliability.ts says.
    const elapsed = (later.getTime() - before.reliabilityAt.getTime()) / 1000;
    const expected = advance({ good: before.reliabilityGood, weight: before.reliabilityWeight }, elapsed, true, DISCONNECT_PENALTY_SECONDS);
    expect(offline.reliability).toBeCloseTo(expected.score, 9);
    expect(offline.reliability).toBeLessThan(before.reliability);
    expect((await offers(machineId)).map((offer) => offer.reliability)).toEqual((await offers(machineId)).map(() => offline.reliability));

    // The next heartbeat brings it back, and the auction gives the instance its GPUs again.
    await machineHeartbeat(machineId, null, new Date(later.getTime() + 30_000));
    expect((await machine(machineId)).online).toBe(true);
    expect((await offers(machineId)).some((offer) => offer.rentable)).toBe(true);
    await eventually(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).status === "LOADING");
    const back = await machine(machineId);
    const outage = advance({ good: offline.reliabilityGood, weight: offline.reliabilityWeight }, 30, false);
    expect(back.reliability).toBeCloseTo(outage.score, 9);
  });
});

describe("reliability", () => {
  it("counts failed assignments, decays towards the machine's record, and reaches the offers' ranking", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    await machineHeartbeat(machineId, null);
    const { instance } = await createInstance(client.userId, { offerId: `${machineId}-1`, image: "a/b", diskGb: 10, launchMode: "SSH" });
    await eventually(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).status === "LOADING");
    const before = await machine(machineId);
    const scoreBefore = (await offers(machineId))[0].score;

    const failed = await reportInstanceState(machineId, { instanceId: instance.id, status: "FAILED", message: "image not found" });
    expect(failed.status).toBe("EXITED");
    expect(failed.statusMessage).toBe("failed to start: image not found");
    const after = await machine(machineId);
    const elapsed = (after.reliabilityAt.getTime() - before.reliabilityAt.getTime()) / 1000;
    const expected = advance({ good: before.reliabilityGood, weight: before.reliabilityWeight }, elapsed, true, FAILED_ASSIGNMENT_PENALTY_SECONDS);
    expect(after.reliability).toBeCloseTo(expected.score, 9);
    const [offer] = await offers(machineId);
    expect(offer.reliability).toBe(after.reliability);
    expect(offer.score).toBeLessThan(scoreBefore);

    // A week online later, the job stores the recovered score (it moved by more than 0.001).
    const weekLater = new Date(after.reliabilityAt.getTime() + HALF_LIFE * 1000);
    await prisma.machine.update({ where: { id: machineId }, data: { lastHeartbeatAt: weekLater } });
    const sweep = await sweepMachineLiveness(weekLater);
    expect(sweep.rescored).toContain(machineId);
    const recovered = await machine(machineId);
    expect(recovered.reliability).toBeCloseTo(advance({ good: after.reliabilityGood, weight: after.reliabilityWeight }, HALF_LIFE, true).score, 9);
    expect(recovered.reliability).toBeGreaterThan(after.reliability);
    expect((await offers(machineId))[0].reliability).toBe(recovered.reliability);
  });
});
