import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import { createAccount as createAccountWithKey } from "../../domain/accounts.ts";
import { clearMachine } from "../../domain/auction/clearing.ts";
import { auctionMachine, liveInstances, toContract } from "../../domain/auction/contracts.ts";
import { issueApiKey } from "../../domain/apiKeys.ts";
import { postEntry } from "../../domain/billing/ledger.ts";
import { gpuModel } from "../../domain/dlperf.ts";
import { applyListing, type ListMachineInput, registerMachine } from "../../domain/machines.ts";
import { vetMachine } from "../../domain/verification.ts";
import { prisma } from "../../infra/db.ts";
import type { TestApp } from "./app.ts";

/** Fixtures and checks shared by the rental tests (instances, auction, race, fault, bench). */

export const DAY = 86_400_000;

/** What test accounts start with unless told otherwise: renting and starting need credit. */
export const TEST_CREDIT_MICROS = 1_000_000_000n;

export async function createAccount(label = "user", options: { credit?: bigint } = {}): Promise<{ userId: number; key: string }> {
  const user = await prisma.user.create({
    data: { email: `${label}-${randomBytes(6).toString("hex")}@example.com`, passwordHash: "x", emailVerified: true },
  });
  const credit = options.credit ?? TEST_CREDIT_MICROS;
  if (credit !== 0n) {
    await prisma.$transaction((tx) => postEntry(tx, { userId: user.id, kind: "ADJUSTMENT", amountMicros: credit, description: "test credit" }));
  }
  const { token } = await issueApiKey(prisma, { userId: user.id, name: "test", scope: "ACCOUNT" });
  return { userId: user.id, key: token };
}

/** An account as signup makes it (argon2 hash, a key named "signup"), without signup's per-address limit. */
export async function signedUpAccount(label = "user"): Promise<{ userId: number; token: string }> {
  const session = await createAccountWithKey({ email: `${label}-${randomBytes(6).toString("hex")}@example.com`, password: "long enough password" });
  return { userId: session.userId, token: session.key.token };
}

/** What the agent of a machine of `numGpus` RTX 4090s reports: registerMachine's input. */
export function machineSpecs(numGpus: number) {
  const model = gpuModel("RTX 4090")!;
  return {
    gpuName: model.gpuName,
    gpuRamMb: model.gpuRamMb,
    computeCap: model.computeCap,
    tflopsPerGpu: model.tflopsPerGpu,
    gpuMemBw: model.gpuMemBw,
    pcieGen: model.pcieGen,
    numGpus,
    pcieBw: 24.5,
    cpuName: "AMD EPYC 7543 32-Core Processor",
    cpuCores: 64,
    cpuRamMb: 256_000,
    diskSpaceGb: 2000,
    diskBw: 6500,
    inetUpMbps: 900,
    inetDownMbps: 950,
    cudaMaxGood: 12.4,
    driverVersion: "550.54.15",
    countryCode: "DE",
    geolocation: "Frankfurt, DE",
  };
}

/**
 * A machine its host registers and lists through the API, as a new host's (unverified: search finds
 * it with `verified=any`): its global id.
 */
export async function listMachineThroughApi(
  app: TestApp,
  hostKey: string,
  listing: { numGpus: number; pricePerGpuHour: string; minBidPerGpuHour: string },
): Promise<string> {
  const registered = await app.gql(
    `mutation ($input: RegisterMachineInput!) { registerMachine(input: $input) {
       __typename ... on MutationRegisterMachineSuccess { data { machine { id } } } ... on Error { code message } } }`,
    { input: machineSpecs(listing.numGpus) },
    hostKey,
  );
  expect(registered.data.registerMachine.__typename, JSON.stringify(registered)).toBe("MutationRegisterMachineSuccess");
  const machineId: string = registered.data.registerMachine.data.machine.id;
  const listed = await app.gql(
    `mutation ($input: ListMachineInput!) { listMachine(input: $input) { __typename ... on Error { code message } } }`,
    {
      input: {
        machineId,
        pricePerGpuHour: listing.pricePerGpuHour,
        minBidPerGpuHour: listing.minBidPerGpuHour,
        endDate: new Date(Date.now() + 30 * DAY).toISOString(),
      },
    },
    hostKey,
  );
  expect(listed.data.listMachine.__typename, JSON.stringify(listed)).toBe("MutationListMachineSuccess");
  return machineId;
}

/** A verified, listed datacenter machine of `numGpus` RTX 4090s: $0.40 on demand, $0.10 min bid unless told otherwise. */
export async function createListedMachine(
  hostId: number,
  options: { numGpus?: number; listing?: Partial<ListMachineInput> } = {},
): Promise<number> {
  const { machine } = await registerMachine(hostId, machineSpecs(options.numGpus ?? 8));
  await prisma.$transaction(async (tx) => {
    await applyListing(tx, hostId, {
      machineId: machine.id,
      pricePerGpuHour: 400_000n,
      minBidPerGpuHour: 100_000n,
      storagePricePerGbMonth: 100_000n,
      inetUpPricePerGb: 5_000n,
      inetDownPricePerGb: 2_000n,
      minChunk: 1,
      endDate: new Date(Date.now() + 30 * DAY),
      ...options.listing,
    });
    await vetMachine(tx, machine.id, { verification: "VERIFIED", datacenter: true });
  });
  return machine.id;
}

/**
 * The auction's invariants on the stored state of one machine: GPUs of LOADING and RUNNING
 * instances never exceed the machine's; and the stored allocation is exactly what `clearMachine`
 * decides for the machine's contracts (so on-demand rentals are never displaced by bids and no
 * lower bid runs while a higher one is paused for lack of GPUs; clearing.ts's property tests prove
 * those of the function); the holders' GPU indices never overlap; and the disks of the instances not
 * destroyed fit the machine's, the offers showing what is free.
 */
export async function expectAllocationValid(machineId: number): Promise<void> {
  const machine = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
  const live = await liveInstances(prisma, machineId);
  const holding = live.filter((i) => i.status === "LOADING" || i.status === "RUNNING");
  expect(holding.reduce((sum, i) => sum + i.numGpus, 0)).toBeLessThanOrEqual(machine.numGpus);
  const now = new Date();
  const clearing = clearMachine(auctionMachine(machine), live.map((i) => toContract(i, now)));
  const shouldRun = clearing.outcomes.filter((o) => o.runs).map((o) => o.instanceId).sort((a, b) => a - b);
  expect(holding.map((i) => i.id).sort((a, b) => a - b)).toEqual(shouldRun);
  expectGpuIndicesValid(machine.numGpus, holding);
  // Disk is reserved by every instance not destroyed, and offers show what is left.
  const { _sum } = await prisma.instance.aggregate({ where: { machineId, status: { not: "DESTROYED" } }, _sum: { diskGb: true } });
  const reserved = _sum.diskGb ?? 0;
  expect(reserved).toBeLessThanOrEqual(machine.diskSpaceGb);
  const offers = await prisma.offer.findMany({ where: { machineId }, select: { diskSpace: true } });
  expect(offers.every((offer) => offer.diskSpace === machine.diskSpaceGb - reserved), `${machine.diskSpaceGb - reserved} GB free`).toBe(true);
}

/** Holders of a machine's GPUs each hold exactly their number of its indices, and no index twice. */
export function expectGpuIndicesValid(machineGpus: number, holding: { id: number; numGpus: number; gpuIndices: number[] }[]): void {
  for (const instance of holding) {
    expect(instance.gpuIndices, `instance ${instance.id}`).toHaveLength(instance.numGpus);
    expect(instance.gpuIndices.every((index) => index >= 0 && index < machineGpus)).toBe(true);
  }
  const all = holding.flatMap((instance) => instance.gpuIndices);
  expect(new Set(all).size, `indices ${JSON.stringify(holding.map((i) => [i.id, i.gpuIndices]))}`).toBe(all.length);
}

export const CREATE_INSTANCE = /* GraphQL */ `
  mutation Create($input: CreateInstanceInput!) {
    createInstance(input: $input) {
      __typename
      ... on MutationCreateInstanceSuccess {
        data {
          __typename
          instance { id kind status numGpus pricePerGpuHour bidPerGpuHour endDate containerLabel statusMessage }
          apiKey { token apiKey { scope instanceId } }
        }
      }
      ... on Error { code message }
      ... on InsufficientGpusError { requested available }
      ... on InsufficientDiskError { requestedGb availableGb }
      ... on BidTooLowError { minBidPerGpuHour }
      ... on ValidationError { issues { path message } }
    }
  }
`;

export function instanceInput(machineId: number, numGpus: number, extra: Record<string, unknown> = {}) {
  return { offerId: `Offer:${machineId}-${numGpus}`, image: "pytorch/pytorch:latest", diskGb: 20, launchMode: "SSH", ...extra };
}

/** A mutation result union flattened: the success's `data` (with its own __typename), or the error. */
export function unwrap<T = any>(result: any): T {
  return result && typeof result.__typename === "string" && result.__typename.endsWith("Success") ? result.data : result;
}

/** Waits until every requested clearing has run (no machine flagged), polling the database. */
export async function waitForClearings(timeoutMs = 20_000): Promise<void> {
  await expect.poll(() => prisma.machine.count({ where: { clearingRequestedAt: { not: null } } }), { timeout: timeoutMs, interval: 50 }).toBe(0);
}
