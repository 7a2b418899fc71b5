import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_GPU_RUNTIME_MESSAGE, SPARED_PER_DAY } from "../domain/agent/failures.ts";
import { machineHeartbeat } from "../domain/agent/liveness.ts";
import { FAILED_ASSIGNMENT_PENALTY_SECONDS } from "../domain/agent/reliability.ts";
import { reportInstanceState } from "../domain/agent/reports.ts";
import { createInstance } from "../domain/instances/service.ts";
import { searchOffers } from "../domain/offers/search.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { eventually } from "./support/agent-process.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

// A failed launch counts against the machine's reliability unless the API can stand behind the cause
// the agent names: a host cannot spare itself by blaming every failure on its clients.

let auction: AuctionWorker;
beforeAll(async () => {
  auction = await startAuctionWorker();
});
afterAll(async () => {
  await auction.close();
  await closePubSub();
});

const weight = async (machineId: number) => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).reliabilityWeight;

/** A 1-GPU rental of `image` on the machine, once the auction has given it its GPU (LOADING). */
async function loading(clientId: number, machineId: number, image: string, extra: Record<string, unknown> = {}) {
  const { instance } = await createInstance(clientId, { offerId: `${machineId}-1`, image, diskGb: 1, launchMode: "ENTRYPOINT", ...extra });
  await eventually(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).status === "LOADING");
  return instance.id;
}

/** Reports the launch FAILED with the claimed cause: whether the machine was spared, and the instance's status message. */
async function fail(machineId: number, instanceId: number, failureCause: "IMAGE_UNAVAILABLE" | "NO_GPU_RUNTIME" | null, message = "pull access denied") {
  const before = await weight(machineId);
  const reported = await reportInstanceState(machineId, { instanceId, status: "FAILED", message, failureCause });
  const after = await weight(machineId);
  const record = await prisma.launchFailure.findFirstOrThrow({ where: { instanceId }, orderBy: { id: "desc" } });
  // Spared: no penalty at all; counted: the failed assignment's penalty (and the decay since).
  if (record.spared) expect(after).toBe(before);
  else expect(after - before).toBeGreaterThan(FAILED_ASSIGNMENT_PENALTY_SECONDS - 1);
  expect(record.claimedCause).toBe(failureCause);
  return { spared: record.spared, status: reported.status, message: reported.statusMessage };
}

describe("whose fault a failed launch is", () => {
  it("spares a pull refusal only while nothing refutes it and within a daily bound; counts failures with no cause", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const other = await createAccount("other");
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    await machineHeartbeat(machineId, { containerGpus: true });

    // An image that never ran anywhere: the client's, as the agent says.
    const ghost = await fail(machineId, await loading(client.userId, machineId, "ghost/image:1"), "IMAGE_UNAVAILABLE");
    expect(ghost).toMatchObject({ spared: true, status: "EXITED", message: "failed to start: pull access denied" });

    // An image that ran for this client: it exists and the client may pull it, so the failure is the machine's.
    const ran = await loading(client.userId, machineId, "works/fine:1");
    await reportInstanceState(machineId, { instanceId: ran, status: "RUNNING" });
    expect((await fail(machineId, await loading(client.userId, machineId, "works/fine:1"), "IMAGE_UNAVAILABLE")).spared).toBe(false);
    // A public image (no credentials on either rental) that ran for another account: the same.
    expect((await fail(machineId, await loading(other.userId, machineId, "works/fine:1"), "IMAGE_UNAVAILABLE")).spared).toBe(false);
    // With credentials of its own, another account's failure to pull it can be its credentials'.
    const withAuth = await loading(other.userId, machineId, "works/fine:1", { registryAuth: { username: "me", password: "wrong" } });
    expect((await fail(machineId, withAuth, "IMAGE_UNAVAILABLE")).spared).toBe(true);

    // No cause named, or a GPU runtime the machine's heartbeat says it has: the machine's.
    expect((await fail(machineId, await loading(client.userId, machineId, "ghost/other:1"), null, "docker create failed")).spared).toBe(false);
    expect((await fail(machineId, await loading(client.userId, machineId, "ghost/other:2"), "NO_GPU_RUNTIME")).spared).toBe(false);

    // The bound: SPARED_PER_DAY spared pull refusals a day (two so far), then they count.
    for (let i = 2; i < SPARED_PER_DAY; i++) {
      expect((await fail(machineId, await loading(client.userId, machineId, `ghost/more:${i}`), "IMAGE_UNAVAILABLE")).spared).toBe(true);
    }
    expect((await fail(machineId, await loading(client.userId, machineId, "ghost/more:last"), "IMAGE_UNAVAILABLE")).spared).toBe(false);
    // Another machine's bound is its own.
    const second = await createListedMachine(host.userId, { numGpus: 1 });
    expect((await fail(second, await loading(client.userId, second, "ghost/second:1"), "IMAGE_UNAVAILABLE")).spared).toBe(true);
  });

  it("a machine whose engine cannot hand out GPUs is not offered; a launch it refuses for that tells the client and spares it", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    // The 1-GPU offer: the machine's other GPU is free for it.
    const rentable = async () =>
      (await searchOffers(prisma, { query: `machine_id=${machineId} num_gpus=1 verified=any rentable=any` })).offers.map((offer) => offer.rentable);
    // Rented before its agent said anything.
    const instanceId = await loading(client.userId, machineId, "pytorch/pytorch:latest");
    expect(await rentable()).toEqual([true]);

    await machineHeartbeat(machineId, { containerGpus: false, gpulessTestMode: false });
    expect(await rentable()).toEqual([false]);
    expect((await searchOffers(prisma, { query: `machine_id=${machineId} verified=any` })).offers).toEqual([]);
    await expect(createInstance(client.userId, { offerId: `${machineId}-1`, image: "a/b", diskGb: 1, launchMode: "SSH" })).rejects.toMatchObject({
      code: "OFFER_UNAVAILABLE",
      message: expect.stringContaining("cannot hand out GPUs"),
    });

    const refused = await fail(machineId, instanceId, "NO_GPU_RUNTIME", "this machine's docker runtime cannot hand out GPUs");
    expect(refused).toEqual({ spared: true, status: "EXITED", message: NO_GPU_RUNTIME_MESSAGE });

    // Its agent in the GPU-less test mode says so, and the machine is offered again; so is one with a GPU runtime.
    await machineHeartbeat(machineId, { containerGpus: false, gpulessTestMode: true });
    expect(await rentable()).toEqual([true]);
    await machineHeartbeat(machineId, { containerGpus: false });
    expect(await rentable()).toEqual([false]);
    await machineHeartbeat(machineId, { containerGpus: true });
    expect(await rentable()).toEqual([true]);
  });
});
