import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { authenticateApiKey, issueApiKey } from "../domain/apiKeys.ts";
import { chunkDlperf, gpuModel, machineDlperf } from "../domain/dlperf.ts";
import { NotFoundError, ValidationError } from "../domain/errors.ts";
import {
  listMachine,
  type ListMachineInput,
  myMachines,
  registerMachine,
  type RegisterMachineInput,
  setMinBid,
  unlistMachine,
} from "../domain/machines.ts";
import { vetMachine } from "../domain/verification.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";

import { DAY_MS as DAY } from "../domain/time.ts";

function specs(overrides: Partial<RegisterMachineInput> = {}): RegisterMachineInput {
  const { gpuName, gpuRamMb, computeCap, tflopsPerGpu, gpuMemBw, pcieGen } = gpuModel("RTX 4090")!;
  return {
    gpuName,
    gpuRamMb,
    computeCap,
    tflopsPerGpu,
    gpuMemBw,
    pcieGen,
    numGpus: 8,
    pcieBw: 24.5,
    cpuName: "AMD EPYC 7543 32-Core Processor",
    cpuCores: 128,
    cpuRamMb: 515_000,
    diskSpaceGb: 3800,
    diskBw: 6500,
    inetUpMbps: 900,
    inetDownMbps: 950,
    cudaMaxGood: 12.4,
    driverVersion: "550.54.15",
    countryCode: "de",
    geolocation: "Frankfurt, DE",
    ...overrides,
  };
}

function listing(machineId: number, overrides: Partial<ListMachineInput> = {}): ListMachineInput {
  return {
    machineId,
    pricePerGpuHour: 389_000n,
    minBidPerGpuHour: 250_000n,
    storagePricePerGbMonth: 150_000n,
    inetUpPricePerGb: 5_000n,
    inetDownPricePerGb: 2_000n,
    minChunk: 1,
    endDate: new Date(Date.now() + 30 * DAY),
    ...overrides,
  };
}

async function newHost(): Promise<{ id: number; key: string }> {
  const user = await prisma.user.create({
    data: { email: `host-${randomBytes(4).toString("hex")}@example.com`, passwordHash: "unused" },
  });
  const key = await issueApiKey(prisma, { userId: user.id, name: "test", scope: "ACCOUNT" });
  return { id: user.id, key: key.token };
}

const register = (hostId: number, input = specs()) => registerMachine(hostId, input);
const list = (hostId: number, input: ListMachineInput) => listMachine(hostId, input);

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

async function expectInvalid(promise: Promise<unknown>, field: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).issues.map((issue) => issue.path.join("."))).toContain(field);
}

const offersOf = (machineId: number) => prisma.offer.findMany({ where: { machineId }, orderBy: { numGpus: "asc" } });

/** Everything the host services may change about a machine, for "nothing changed" checks. */
async function snapshot(machineId: number) {
  const machine = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
  const { updatedAt: _, ...rest } = machine;
  return { machine: rest, offers: await offersOf(machineId), keys: await prisma.apiKey.count() };
}

describe("machine services", () => {
  let host: { id: number; key: string };
  let other: { id: number; key: string };

  beforeAll(async () => {
    host = await newHost();
    other = await newHost();
  });

  it("registers a machine unverified and unlisted, with its DLPerf and a MACHINE key that authenticates", async () => {
    const input = specs();
    const { machine, apiKey } = await register(host.id, input);
    expect(machine).toMatchObject({
      hostId: host.id,
      gpuName: "RTX 4090",
      numGpus: 8,
      countryCode: "DE",
      verification: "UNVERIFIED",
      listed: false,
      datacenter: false,
    });
    expect(machine.dlperf).toBe(machineDlperf({ ...input, numGpus: 8, cpuCores: 128, diskBw: 6500 }));
    expect(machine.dlperf).toBeGreaterThan(300);

    const viewer = await authenticateApiKey(prisma, apiKey.token);
    expect(viewer).toMatchObject({ userId: host.id, scope: "MACHINE", machineId: machine.id, instanceId: null });
    expect(await offersOf(machine.id)).toEqual([]);
  });

  it.each<[string, Partial<RegisterMachineInput>]>([
    ["numGpus", { numGpus: 0 }],
    ["numGpus", { numGpus: 17 }],
    ["numGpus", { numGpus: 2.5 }],
    ["gpuRamMb", { gpuRamMb: 512 }],
    ["computeCap", { computeCap: 8.6 }],
    ["computeCap", { computeCap: 865 }],
    ["tflopsPerGpu", { tflopsPerGpu: -1 }],
    ["gpuMemBw", { gpuMemBw: 1e9 }],
    ["pcieGen", { pcieGen: 7 }],
    ["pcieBw", { pcieGen: 3, pcieBw: 24.5 }],
    ["cpuCores", { cpuCores: 0 }],
    ["cpuRamMb", { cpuRamMb: 10 }],
    ["diskSpaceGb", { diskSpaceGb: 0 }],
    ["diskBw", { diskBw: -5 }],
    ["inetUpMbps", { inetUpMbps: -1 }],
    ["inetDownMbps", { inetDownMbps: 1e7 }],
    ["cudaMaxGood", { cudaMaxGood: 0 }],
    ["driverVersion", { driverVersion: "latest" }],
    ["countryCode", { countryCode: "XX" }],
    ["countryCode", { countryCode: "DEU" }],
    ["geolocation", { geolocation: "   " }],
    ["gpuName", { gpuName: "" }],
    ["cpuName", { cpuName: "x".repeat(200) }],
  ])("refuses an invalid %s and writes nothing", async (field, override) => {
    const before = { machines: await prisma.machine.count(), keys: await prisma.apiKey.count() };
    await expectInvalid(register(host.id, specs(override)), field);
    expect({ machines: await prisma.machine.count(), keys: await prisma.apiKey.count() }).toEqual(before);
  });

  it("lists an 8-GPU machine as chunks of 1, 2, 4 and 8 GPUs with the listing's prices", async () => {
    const { machine } = await register(host.id);
    const listed = await list(host.id, listing(machine.id));
    expect(listed).toMatchObject({ listed: true, pricePerGpuHourMicros: 389_000n, minChunk: 1 });

    const offers = await offersOf(machine.id);
    expect(offers.map((offer) => offer.numGpus)).toEqual([1, 2, 4, 8]);
    for (const offer of offers) {
      expect(offer).toMatchObject({
        id: `${machine.id}-${offer.numGpus}`,
        hostId: host.id,
        pricePerGpuMicros: 389_000n,
        gpuDphMicros: 389_000n * BigInt(offer.numGpus),
        minBidMicros: 250_000n,
        storageCostMicros: 150_000n,
        inetUpCostMicros: 5_000n,
        inetDownCostMicros: 2_000n,
        gpuTotalRam: 24576 * offer.numGpus,
        dlperf: chunkDlperf(listed, offer.numGpus),
        verified: false,
      });
    }
    expect(offers[3].dlperf).toBe(listed.dlperf);
  });

  it("relisting changes what it names and keeps what it omits", async () => {
    const { machine } = await register(host.id);
    await list(host.id, listing(machine.id));
    await list(host.id, { machineId: machine.id, pricePerGpuHour: 500_000n, minChunk: 4, endDate: new Date(Date.now() + DAY) });

    const offers = await offersOf(machine.id);
    expect(offers.map((offer) => offer.numGpus)).toEqual([4, 8]);
    expect(offers.map((offer) => offer.gpuDphMicros)).toEqual([2_000_000n, 4_000_000n]);
    expect(offers[0]).toMatchObject({
      minBidMicros: 250_000n,
      storageCostMicros: 150_000n,
      inetUpCostMicros: 5_000n,
      inetDownCostMicros: 2_000n,
    });

    // A kept min bid never exceeds a new, lower price; the chunk size stays as last set.
    await list(host.id, { machineId: machine.id, pricePerGpuHour: 200_000n, endDate: new Date(Date.now() + DAY) });
    expect(await prisma.machine.findUniqueOrThrow({ where: { id: machine.id } })).toMatchObject({
      pricePerGpuHourMicros: 200_000n,
      minBidPerGpuHourMicros: 200_000n,
      storagePricePerGbMonthMicros: 150_000n,
      minChunk: 4,
    });

    // Null asks for the default.
    await list(host.id, { ...listing(machine.id), minBidPerGpuHour: null, storagePricePerGbMonth: null, minChunk: null });
    expect(await prisma.machine.findUniqueOrThrow({ where: { id: machine.id } })).toMatchObject({
      minBidPerGpuHourMicros: 389_000n,
      storagePricePerGbMonthMicros: 0n,
      inetUpPricePerGbMicros: 5_000n,
      minChunk: 1,
    });
  });

  it("a first listing takes the defaults for what it omits", async () => {
    const { machine } = await register(host.id);
    await list(host.id, { machineId: machine.id, pricePerGpuHour: 500_000n, endDate: new Date(Date.now() + DAY) });
    const offers = await offersOf(machine.id);
    expect(offers.map((offer) => offer.numGpus)).toEqual([1, 2, 4, 8]);
    expect(offers[0]).toMatchObject({ minBidMicros: 500_000n, storageCostMicros: 0n, inetUpCostMicros: 0n, inetDownCostMicros: 0n });
  });

  it("setMinBid updates the offers' min bid, never above the price", async () => {
    const { machine } = await register(host.id);
    await list(host.id, listing(machine.id));
    const updated = await setMinBid(host.id, machine.id, 300_000n);
    expect(updated.minBidPerGpuHourMicros).toBe(300_000n);
    expect((await offersOf(machine.id)).map((offer) => offer.minBidMicros)).toEqual([300_000n, 300_000n, 300_000n, 300_000n]);

    const before = await snapshot(machine.id);
    await expectInvalid(setMinBid(host.id, machine.id, 389_001n), "pricePerGpuHour");
    await expectInvalid(setMinBid(host.id, machine.id, -1n), "pricePerGpuHour");
    expect(await snapshot(machine.id)).toEqual(before);
  });

  it("unlisting removes the offers", async () => {
    const { machine } = await register(host.id);
    await list(host.id, listing(machine.id));
    const unlisted = await unlistMachine(host.id, machine.id);
    expect(unlisted.listed).toBe(false);
    expect(await offersOf(machine.id)).toEqual([]);
  });

  it.each<[string, Partial<ListMachineInput>]>([
    ["pricePerGpuHour", { pricePerGpuHour: 0n }],
    ["pricePerGpuHour", { pricePerGpuHour: 101_000_000n }],
    ["minBidPerGpuHour", { minBidPerGpuHour: 400_000n }],
    ["minBidPerGpuHour", { minBidPerGpuHour: -1n }],
    ["storagePricePerGbMonth", { storagePricePerGbMonth: -1n }],
    ["inetUpPricePerGb", { inetUpPricePerGb: 11_000_000n }],
    ["inetDownPricePerGb", { inetDownPricePerGb: -1n }],
    ["minChunk", { minChunk: 3 }],
    ["minChunk", { minChunk: 0 }],
    ["minChunk", { minChunk: 16 }],
    ["endDate", { endDate: new Date(Date.now() - 1000) }],
    ["endDate", { endDate: new Date(Date.now() + 400 * DAY) }],
    ["machineId", { machineId: Number.NaN }],
  ])("refuses a listing with an invalid %s and changes nothing", async (field, override) => {
    const { machine } = await register(host.id);
    await list(host.id, listing(machine.id, { minChunk: 2 }));
    const before = await snapshot(machine.id);
    await expectInvalid(list(host.id, listing(machine.id, override)), field);
    expect(await snapshot(machine.id)).toEqual(before);
  });

  it("treats another account's machine as missing and changes nothing", async () => {
    const { machine } = await register(host.id);
    await list(host.id, listing(machine.id));
    const before = await snapshot(machine.id);

    for (const attempt of [
      () => list(other.id, listing(machine.id, { pricePerGpuHour: 1_000n, minBidPerGpuHour: 1_000n })),
      () => unlistMachine(other.id, machine.id),
      () => setMinBid(other.id, machine.id, 0n),
    ]) {
      expect(await rejection(attempt())).toBeInstanceOf(NotFoundError);
    }
    expect(await snapshot(machine.id)).toEqual(before);
    expect((await myMachines(prisma, other.id)).map((m) => m.id)).not.toContain(machine.id);
  });

  it("verification by an operator reaches the offers", async () => {
    const { machine } = await register(host.id);
    await list(host.id, listing(machine.id));
    await prisma.$transaction((tx) => vetMachine(tx, machine.id, { verification: "VERIFIED" }));
    expect((await offersOf(machine.id)).every((offer) => offer.verified && offer.rentable)).toBe(true);
    await prisma.$transaction((tx) => vetMachine(tx, machine.id, { verification: "DEVERIFIED" }));
    expect((await offersOf(machine.id)).some((offer) => offer.verified || offer.rentable)).toBe(false);
    expect(await rejection(prisma.$transaction((tx) => vetMachine(tx, 2_000_000_000, { verification: "VERIFIED" })))).toBeInstanceOf(
      NotFoundError,
    );
  });

  it("myMachines lists only the host's machines, oldest first", async () => {
    const mine = await myMachines(prisma, host.id);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((machine) => machine.hostId === host.id)).toBe(true);
    expect(mine.map((machine) => machine.id)).toEqual([...mine.map((machine) => machine.id)].sort((a, b) => a - b));
  });
});

const MACHINE_FIELDS = "id gpuName numGpus verification listed dlperf pricePerGpuHour minBidPerGpuHour minChunk endDate";
const ERROR_FIELDS = "__typename ... on Error { code message } ... on ValidationError { issues { path message } }";

const REGISTER = `mutation ($input: RegisterMachineInput!) {
  registerMachine(input: $input) {
    ${ERROR_FIELDS}
    ... on MutationRegisterMachineSuccess { data { machine { ${MACHINE_FIELDS} } apiKey { token apiKey { scope machineId } } } }
  }
}`;
const LIST = `mutation ($input: ListMachineInput!) {
  listMachine(input: $input) { ${ERROR_FIELDS} ... on MutationListMachineSuccess { data { ${MACHINE_FIELDS} } } }
}`;
const UNLIST = `mutation ($id: ID!) {
  unlistMachine(machineId: $id) { ${ERROR_FIELDS} ... on MutationUnlistMachineSuccess { data { ${MACHINE_FIELDS} } } }
}`;
const SET_MIN_BID = `mutation ($id: ID!, $price: Money!) {
  setMinBid(machineId: $id, pricePerGpuHour: $price) {
    ${ERROR_FIELDS} ... on MutationSetMinBidSuccess { data { ${MACHINE_FIELDS} } }
  }
}`;
const MY_MACHINES = `{ myMachines { nodes { ${MACHINE_FIELDS} } } }`;

describe("machines over GraphQL", () => {
  const app = useTestApp();
  let host: { id: number; key: string };
  let other: { id: number; key: string };

  beforeAll(async () => {
    host = await newHost();
    other = await newHost();
  });

  const graphqlSpecs = (overrides: Partial<RegisterMachineInput> = {}) => specs({ numGpus: 4, ...overrides });
  const endDate = () => new Date(Date.now() + 10 * DAY).toISOString();

  async function registerOverHttp(key = host.key) {
    const result = await app.gql(REGISTER, { input: graphqlSpecs() }, key);
    expect(result.errors).toBeUndefined();
    return result.data.registerMachine.data as {
      machine: { id: string; dlperf: number };
      apiKey: { token: string; apiKey: { scope: string; machineId: string } };
    };
  }

  it("registers a machine and returns its MACHINE key once", async () => {
    const { machine, apiKey } = await registerOverHttp();
    expect(machine.id).toMatch(/^Machine:\d+$/);
    expect(machine).toMatchObject({ gpuName: "RTX 4090", numGpus: 4, verification: "UNVERIFIED", listed: false });
    expect(apiKey.apiKey).toEqual({ scope: "MACHINE", machineId: machine.id });
    const viewer = await authenticateApiKey(prisma, apiKey.token);
    expect(viewer?.machineId).toBe(Number(machine.id.split(":")[1]));

    // The agent's key acts for its machine only, not for the account.
    const asAgent = await app.gql(REGISTER, { input: graphqlSpecs() }, apiKey.token);
    expect(asAgent.data.registerMachine.__typename).toBe("ForbiddenError");
  });

  it("answers invalid specs with a ValidationError naming the field, and writes nothing", async () => {
    const before = await prisma.machine.count();
    const result = await app.gql(REGISTER, { input: graphqlSpecs({ pcieGen: 9, countryCode: "Narnia" }) }, host.key);
    expect(result.data.registerMachine.__typename).toBe("ValidationError");
    const paths = result.data.registerMachine.issues.map((issue: { path: string[] }) => issue.path.join("."));
    expect(paths).toEqual(expect.arrayContaining(["pcieGen", "countryCode"]));
    expect(await prisma.machine.count()).toBe(before);
  });

  it("refuses anonymous callers on every machine field", async () => {
    const { machine } = await registerOverHttp();
    const attempts = [
      app.gql(REGISTER, { input: graphqlSpecs() }),
      app.gql(LIST, { input: { machineId: machine.id, pricePerGpuHour: "0.5", endDate: endDate() } }),
      app.gql(UNLIST, { id: machine.id }),
      app.gql(SET_MIN_BID, { id: machine.id, price: "0.1" }),
    ];
    for (const result of await Promise.all(attempts)) {
      expect(Object.values(result.data)[0]).toMatchObject({ __typename: "NotAuthenticatedError", code: "UNAUTHENTICATED" });
    }
    const query = await app.gql(MY_MACHINES);
    expect(query.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect((await prisma.machine.findUniqueOrThrow({ where: { id: Number(machine.id.split(":")[1]) } })).listed).toBe(false);
  });

  it("lists, sets the min bid and unlists, keeping the offers in step", async () => {
    const { machine } = await registerOverHttp();
    const id = Number(machine.id.split(":")[1]);
    const listed = await app.gql(
      LIST,
      {
        input: {
          machineId: machine.id,
          pricePerGpuHour: "0.45",
          minBidPerGpuHour: "0.2",
          storagePricePerGbMonth: "0.15",
          minChunk: 2,
          endDate: endDate(),
        },
      },
      host.key,
    );
    expect(listed.data.listMachine.data).toMatchObject({
      listed: true,
      pricePerGpuHour: "0.45",
      minBidPerGpuHour: "0.20",
      minChunk: 2,
    });
    expect((await offersOf(id)).map((offer) => [offer.numGpus, offer.gpuDphMicros])).toEqual([
      [2, 900_000n],
      [4, 1_800_000n],
    ]);

    const bid = await app.gql(SET_MIN_BID, { id: machine.id, price: "0.25" }, host.key);
    expect(bid.data.setMinBid.data.minBidPerGpuHour).toBe("0.25");
    expect((await offersOf(id)).map((offer) => offer.minBidMicros)).toEqual([250_000n, 250_000n]);

    const unlisted = await app.gql(UNLIST, { id: machine.id }, host.key);
    expect(unlisted.data.unlistMachine.data.listed).toBe(false);
    expect(await offersOf(id)).toEqual([]);

    const mine = await app.gql(MY_MACHINES, {}, host.key);
    expect(mine.data.myMachines.nodes.map((m: { id: string }) => m.id)).toContain(machine.id);
  });

  it("changing only the GPU price keeps the storage and bandwidth prices and the min bid", async () => {
    const { machine } = await registerOverHttp();
    const id = Number(machine.id.split(":")[1]);
    const prices = { pricePerGpuHour: "0.45", minBidPerGpuHour: "0.2", storagePricePerGbMonth: "0.15" };
    const bandwidth = { inetUpPricePerGb: "0.01", inetDownPricePerGb: "0.02" };
    const first = await app.gql(LIST, { input: { machineId: machine.id, ...prices, ...bandwidth, endDate: endDate() } }, host.key);
    expect(first.data.listMachine.__typename).toBe("MutationListMachineSuccess");

    const changed = await app.gql(LIST, { input: { machineId: machine.id, pricePerGpuHour: "0.5", endDate: endDate() } }, host.key);
    expect(changed.data.listMachine.data).toMatchObject({ pricePerGpuHour: "0.50", minBidPerGpuHour: "0.20" });
    const offers = await offersOf(id);
    expect(offers.map((offer) => offer.pricePerGpuMicros)).toEqual(offers.map(() => 500_000n));
    for (const offer of offers) {
      expect(offer).toMatchObject({
        minBidMicros: 200_000n,
        storageCostMicros: 150_000n,
        inetUpCostMicros: 10_000n,
        inetDownCostMicros: 20_000n,
      });
    }
  });

  it("answers another account's machine id with NotFoundError and changes nothing", async () => {
    const { machine } = await registerOverHttp();
    const id = Number(machine.id.split(":")[1]);
    await app.gql(LIST, { input: { machineId: machine.id, pricePerGpuHour: "0.5", endDate: endDate() } }, host.key);
    const before = await snapshot(id);

    const attempts = [
      app.gql(LIST, { input: { machineId: machine.id, pricePerGpuHour: "0.01", endDate: endDate() } }, other.key),
      app.gql(UNLIST, { id: machine.id }, other.key),
      app.gql(SET_MIN_BID, { id: machine.id, price: "0" }, other.key),
    ];
    for (const result of await Promise.all(attempts)) {
      expect(Object.values(result.data)[0]).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
    }
    expect(await snapshot(id)).toEqual(before);
    const theirs = await app.gql(MY_MACHINES, {}, other.key);
    expect(theirs.data.myMachines.nodes.map((m: { id: string }) => m.id)).not.toContain(machine.id);
  });

  it.each(["Machine:abc", "Machine:", "12", "", "ApiKey:1", "Machine:-1", "Machine:1.5", "Machine:99999999999"])(
    "answers the malformed machine id %j with a typed error, never a server error",
    async (badId) => {
      const result = await app.gql(UNLIST, { id: badId }, host.key);
      expect(result.errors).toBeUndefined();
      expect(["ValidationError", "NotFoundError"]).toContain(result.data.unlistMachine.__typename);
      const listResult = await app.gql(
        LIST,
        { input: { machineId: badId, pricePerGpuHour: "0.5", endDate: endDate() } },
        host.key,
      );
      expect(listResult.errors).toBeUndefined();
      expect(["ValidationError", "NotFoundError"]).toContain(listResult.data.listMachine.__typename);
    },
  );

  it("answers a missing machine with NotFoundError", async () => {
    const result = await app.gql(UNLIST, { id: "Machine:2000000000" }, host.key);
    expect(result.data.unlistMachine).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
  });
});
