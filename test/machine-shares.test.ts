import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { clearMachineNow } from "../domain/auction/service.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { subscribe } from "./support/ws.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, expectAllocationValid, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();

let host: { userId: number; key: string };
let alice: { userId: number; key: string };
let bob: { userId: number; key: string };

beforeAll(async () => {
  host = await createAccount("host");
  alice = await createAccount("alice");
  bob = await createAccount("bob");
});

const OFFERS = /* GraphQL */ `
  query ($query: String) {
    offers(query: $query, first: 100) { edges { node { id numGpus cpuCores cpuCoresEffective cpuRam diskSpace rentable } } }
  }
`;
const INSTANCE = /* GraphQL */ `
  query ($id: ID!) { instance(id: $id) { id status numGpus gpuIndices } }
`;
const MACHINE_INSTANCES = /* GraphQL */ `
  query { myMachines { nodes { id contracts { edges { node { instanceId status gpuIndices diskGb } } } } } }
`;
const ASSIGNMENTS = /* GraphQL */ `
  subscription ($machineId: ID!) { assignments(machineId: $machineId) { instances { instanceId desiredState gpuIndices cpuCores memoryMb } } }
`;
const LIFECYCLE = (name: string) => /* GraphQL */ `
  mutation ($id: ID!) { ${name}(id: $id) { __typename ... on Error { code message } } }
`;

async function rent(client: { key: string }, machineId: number, numGpus: number, extra: Record<string, unknown> = {}) {
  return unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus, extra) }, client.key)).data.createInstance);
}

async function offersOf(machineId: number) {
  const result = await app.gql(OFFERS, { query: `machine_id=${machineId} rentable=any` });
  return (result.data.offers.edges as { node: { numGpus: number; cpuCores: number; cpuCoresEffective: number; cpuRam: number; diskSpace: number; rentable: boolean } }[])
    .map((e) => e.node)
    .sort((a, b) => a.numGpus - b.numGpus);
}

async function gpuIndicesOf(id: string, key: string): Promise<number[]> {
  return (await app.gql(INSTANCE, { id }, key)).data.instance.gpuIndices;
}

describe("CPU and RAM shares on offers", () => {
  it("gives each offer its share of the machine's cores and RAM, searchable as cpu_cores_effective and cpu_ram", async () => {
    // createListedMachine: 8 GPUs, 64 cores, 256,000 MB of RAM.
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    expect((await offersOf(machineId)).map(({ numGpus, cpuCores, cpuCoresEffective, cpuRam }) => ({ numGpus, cpuCores, cpuCoresEffective, cpuRam }))).toEqual([
      { numGpus: 1, cpuCores: 64, cpuCoresEffective: 8, cpuRam: 32 },
      { numGpus: 2, cpuCores: 64, cpuCoresEffective: 16, cpuRam: 64 },
      { numGpus: 4, cpuCores: 64, cpuCoresEffective: 32, cpuRam: 128 },
      { numGpus: 8, cpuCores: 64, cpuCoresEffective: 64, cpuRam: 256 },
    ]);
    const found = async (query: string) =>
      ((await app.gql(OFFERS, { query: `machine_id=${machineId} ${query}` })).data.offers.edges as { node: { numGpus: number } }[]).map((e) => e.node.numGpus).sort();
    expect(await found("cpu_cores_effective>=16 cpu_cores_effective<40")).toEqual([2, 4]);
    expect(await found("cpu_ram>=128")).toEqual([4, 8]);
  });
});

describe("disk is reserved", () => {
  it("counts every instance's disk until it is destroyed; offers show what is free; asking for more is a typed error naming it", async () => {
    // createListedMachine: 2000 GB of disk.
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    expect((await offersOf(machineId)).every((o) => o.diskSpace === 2000)).toBe(true);

    const first = await rent(alice, machineId, 1, { diskGb: 1500 });
    expect(first.__typename).toBe("CreateInstancePayload");
    const bid = await rent(bob, machineId, 1, { diskGb: 300, bidPricePerGpuHour: "0.20" });
    expect(bid.__typename).toBe("CreateInstancePayload");
    expect((await offersOf(machineId)).every((o) => o.diskSpace === 200)).toBe(true);

    const refused = await rent(bob, machineId, 1, { diskGb: 201 });
    expect(refused).toMatchObject({ __typename: "InsufficientDiskError", code: "INSUFFICIENT_DISK", requestedGb: 201, availableGb: 200 });
    expect(refused.message).toContain("200 GB");
    expect(await prisma.instance.count({ where: { machineId } })).toBe(2);

    // Stopped, the disk stays reserved; destroyed, it is free again.
    const stopped = await app.gql(LIFECYCLE("stopInstance"), { id: first.instance.id }, alice.key);
    expect(stopped.errors).toBeUndefined();
    expect(stopped.data.stopInstance.__typename).toBe(
      "MutationStopInstanceSuccess",
    );
    expect((await rent(bob, machineId, 1, { diskGb: 201 })).__typename).toBe("InsufficientDiskError");
    expect((await app.gql(LIFECYCLE("destroyInstance"), { id: first.instance.id }, alice.key)).data.destroyInstance.__typename).toBe(
      "MutationDestroyInstanceSuccess",
    );
    expect((await offersOf(machineId)).every((o) => o.diskSpace === 1700)).toBe(true);
    const last = await rent(bob, machineId, 1, { diskGb: 1700 });
    expect(last.__typename).toBe("CreateInstancePayload");
    // No disk left: the offers show it and are not rentable, whatever the GPUs.
    expect((await offersOf(machineId)).every((o) => o.diskSpace === 0 && !o.rentable)).toBe(true);
    await clearMachineNow(machineId);
    expect((await offersOf(machineId)).every((o) => !o.rentable)).toBe(true);
    expect(await rent(alice, machineId, 1, { diskGb: 1 })).toMatchObject({ __typename: "InsufficientDiskError", availableGb: 0 });

    // Destroyed, its disk comes back and the clearing that follows puts the offers back on the market.
    await app.gql(LIFECYCLE("destroyInstance"), { id: last.instance.id }, bob.key);
    await clearMachineNow(machineId);
    expect((await offersOf(machineId)).map((o) => [o.diskSpace, o.rentable])).toEqual([
      [1700, true],
      [1700, true],
      [1700, true],
      [1700, true],
    ]);
  });
});

describe("GPU indices", () => {
  it("gives co-tenants disjoint indices, shown to each owner, the host and the agent, with their CPU and RAM shares", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const a = await rent(alice, machineId, 2);
    const b = await rent(bob, machineId, 4);
    await clearMachineNow(machineId);
    await expectAllocationValid(machineId);

    const aIndices = await gpuIndicesOf(a.instance.id, alice.key);
    const bIndices = await gpuIndicesOf(b.instance.id, bob.key);
    expect(aIndices).toHaveLength(2);
    expect(bIndices).toHaveLength(4);
    expect(aIndices.filter((i) => bIndices.includes(i))).toEqual([]);
    // Another client cannot read them.
    expect((await app.gql(INSTANCE, { id: a.instance.id }, bob.key)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");

    // The host sees its machine's rentals and their GPUs.
    const mine = await app.gql(MACHINE_INSTANCES, {}, host.key);
    expect(mine.errors).toBeUndefined();
    const hostedMachines = mine.data.myMachines.nodes as { id: string; contracts: { edges: { node: unknown }[] } }[];
    const hosted = hostedMachines.find((m) => m.id === `Machine:${machineId}`)!.contracts.edges.map((edge) => edge.node);
    expect(hosted).toEqual([
      { instanceId: a.instance.id, status: "LOADING", gpuIndices: aIndices, diskGb: 20 },
      { instanceId: b.instance.id, status: "LOADING", gpuIndices: bIndices, diskGb: 20 },
    ]);
    const other = await app.gql(MACHINE_INSTANCES, {}, alice.key);
    expect(other.errors).toBeUndefined();
    expect(other.data.myMachines.nodes).toEqual([]);

    // The agent is told the same devices and the shares to enforce (64 cores and 256,000 MB over 8 GPUs).
    const { token } = await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId });
    const sub = subscribe(app.url, token, ASSIGNMENTS, { machineId: `Machine:${machineId}` });
    const state = await sub.next();
    await sub.close();
    expect(state.instances).toEqual([
      { instanceId: a.instance.id, desiredState: "RUNNING", gpuIndices: aIndices, cpuCores: 16, memoryMb: 64_000 },
      { instanceId: b.instance.id, desiredState: "RUNNING", gpuIndices: bIndices, cpuCores: 32, memoryMb: 128_000 },
    ]);
  });

  it("releases indices on stop, and a restarted instance gets its old ones back when they are free", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const a = await rent(alice, machineId, 2);
    await clearMachineNow(machineId);
    const before = await gpuIndicesOf(a.instance.id, alice.key);
    await app.gql(LIFECYCLE("stopInstance"), { id: a.instance.id }, alice.key);
    await clearMachineNow(machineId);
    expect(await gpuIndicesOf(a.instance.id, alice.key)).toEqual([]);

    await app.gql(LIFECYCLE("startInstance"), { id: a.instance.id }, alice.key);
    await clearMachineNow(machineId);
    expect(await gpuIndicesOf(a.instance.id, alice.key)).toEqual(before);
    await expectAllocationValid(machineId);
  });

  it("takes a preempted bid's indices away and gives them to the on-demand rental; offline and back keeps them disjoint", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const whole = await rent(bob, machineId, 4, { bidPricePerGpuHour: "0.50" });
    await clearMachineNow(machineId);
    expect(await gpuIndicesOf(whole.instance.id, bob.key)).toEqual([0, 1, 2, 3]);

    const onDemand = await rent(alice, machineId, 2);
    const small = await rent(bob, machineId, 2, { bidPricePerGpuHour: "0.30" });
    await clearMachineNow(machineId);
    await expectAllocationValid(machineId);
    expect(await gpuIndicesOf(whole.instance.id, bob.key)).toEqual([]);
    const odIndices = await gpuIndicesOf(onDemand.instance.id, alice.key);
    const smallIndices = await gpuIndicesOf(small.instance.id, bob.key);
    expect([...odIndices, ...smallIndices].sort()).toEqual([0, 1, 2, 3]);

    await prisma.machine.update({ where: { id: machineId }, data: { online: false } });
    await clearMachineNow(machineId);
    expect(await gpuIndicesOf(onDemand.instance.id, alice.key)).toEqual([]);
    await prisma.machine.update({ where: { id: machineId }, data: { online: true } });
    await clearMachineNow(machineId);
    await expectAllocationValid(machineId);
    // Back online, each gets the GPUs it had.
    expect(await gpuIndicesOf(onDemand.instance.id, alice.key)).toEqual(odIndices);
    expect(await gpuIndicesOf(small.instance.id, bob.key)).toEqual(smallIndices);
  });
});
