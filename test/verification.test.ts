import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { setOperator } from "../domain/operators.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount, DAY } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";

const app = useTestApp();

const SPECS = {
  gpuName: "RTX 4090", numGpus: 2, gpuRamMb: 24564, computeCap: 890, tflopsPerGpu: 82.6, gpuMemBw: 1008, pcieGen: 4, pcieBw: 24.5,
  cpuName: "EPYC", cpuCores: 32, cpuRamMb: 128000, diskSpaceGb: 1000, diskBw: 3000, inetUpMbps: 500, inetDownMbps: 500,
  cudaMaxGood: 12.4, driverVersion: "550.54.15", countryCode: "DE", geolocation: "Frankfurt, DE",
};
const REGISTER = `mutation ($input: RegisterMachineInput!) {
  registerMachine(input: $input) { __typename ... on MutationRegisterMachineSuccess { data { machine { id datacenter verification } } } }
}`;
const LIST = `mutation ($input: ListMachineInput!) { listMachine(input: $input) { __typename } }`;
const SET_VERIFICATION = `mutation ($id: ID!, $v: VerificationState!, $note: String) {
  setMachineVerification(machineId: $id, verification: $v, note: $note) {
    __typename
    ... on MutationSetMachineVerificationSuccess { data { id verification datacenter } }
    ... on Error { code message }
    ... on ValidationError { issues { path message } }
  }
}`;
const SET_DATACENTER = `mutation ($id: ID!, $dc: Boolean!, $note: String) {
  setMachineDatacenter(machineId: $id, datacenter: $dc, note: $note) {
    __typename
    ... on MutationSetMachineDatacenterSuccess { data { id verification datacenter } }
    ... on Error { code }
  }
}`;

let host: { userId: number; key: string };
let operator: { userId: number; key: string };
let machineId: string;
let operatorReadOnly: string;

const emailOf = async (userId: number) => (await prisma.user.findUniqueOrThrow({ where: { id: userId } })).email;

/** The machine's offers as a client's search finds them (anonymous, the reference's default query added). */
async function found(query: string): Promise<{ verified: boolean; datacenter: boolean }[]> {
  const localId = machineId.split(":")[1];
  const response = await app.gql(`{ offers(query: "machine_id=${localId} ${query}") { edges { node { verified datacenter } } } }`);
  expect(response.errors).toBeUndefined();
  return response.data.offers.edges.map((edge: { node: unknown }) => edge.node);
}

beforeAll(async () => {
  host = await createAccount("host");
  operator = await createAccount("operator");
  await setOperator(prisma, await emailOf(operator.userId), true);
  operatorReadOnly = (await issueApiKey(prisma, { userId: operator.userId, name: "ro", scope: "ACCOUNT", permissions: ["READ"] })).token;
  const registered = await app.gql(REGISTER, { input: SPECS }, host.key);
  machineId = registered.data.registerMachine.data.machine.id;
  const endDate = new Date(Date.now() + 10 * DAY).toISOString();
  expect((await app.gql(LIST, { input: { machineId, pricePerGpuHour: "0.50", endDate } }, host.key)).data.listMachine.__typename).toBe(
    "MutationListMachineSuccess",
  );
});

describe("verification by operators", () => {
  it("a host cannot declare its machine a datacenter one: registration takes no such field", async () => {
    const before = await prisma.machine.count();
    const response = await app.gql(REGISTER, { input: { ...SPECS, datacenter: true } }, host.key);
    expect(response.errors?.[0]?.message).toContain('"datacenter" is not defined');
    expect(await prisma.machine.count()).toBe(before);
    const own = await app.gql(`query ($id: ID!) { machine(id: $id) { datacenter verification } }`, { id: machineId }, host.key);
    expect(own.data.machine).toEqual({ datacenter: false, verification: "UNVERIFIED" });
  });

  it("an operator verifies and vets a machine; search follows at once and the host reads why", async () => {
    expect(await found("")).toEqual([]);
    expect(await found("verified=any datacenter=true")).toEqual([]);

    const verified = await app.gql(SET_VERIFICATION, { id: machineId, v: "VERIFIED", note: "self-test passed" }, operator.key);
    expect(verified.data.setMachineVerification).toEqual({
      __typename: "MutationSetMachineVerificationSuccess",
      data: { id: machineId, verification: "VERIFIED", datacenter: false },
    });
    expect((await found("")).length).toBeGreaterThan(0);
    expect(await found("verification=verified")).not.toEqual([]);
    expect(await found("datacenter=true")).toEqual([]);

    const vetted = await app.gql(SET_DATACENTER, { id: machineId, dc: true, note: "Tier 3 facility, certificate checked" }, operator.key);
    expect(vetted.data.setMachineDatacenter.data).toMatchObject({ datacenter: true, verification: "VERIFIED" });
    const datacenterOffers = await found("datacenter=true");
    expect(datacenterOffers.length).toBeGreaterThan(0);
    expect(datacenterOffers.every((offer) => offer.datacenter && offer.verified)).toBe(true);

    const deverified = await app.gql(SET_VERIFICATION, { id: machineId, v: "DEVERIFIED", note: "GPU missing in self-test" }, operator.key);
    expect(deverified.data.setMachineVerification.data.verification).toBe("DEVERIFIED");
    expect(await found("")).toEqual([]);
    expect(await found("verified=any verification=deverified rentable=any")).not.toEqual([]);

    const history = await app.gql(
      `query ($id: ID!) { machine(id: $id) { vettingHistory { verification datacenter note createdAt } } }`,
      { id: machineId },
      host.key,
    );
    expect(history.data.machine.vettingHistory.map(({ createdAt: _, ...rest }: { createdAt: string }) => rest)).toEqual([
      { verification: "DEVERIFIED", datacenter: null, note: "GPU missing in self-test" },
      { verification: null, datacenter: true, note: "Tier 3 facility, certificate checked" },
      { verification: "VERIFIED", datacenter: null, note: "self-test passed" },
    ]);
    const stored = await prisma.machineVetting.findMany({ where: { machineId: Number(machineId.split(":")[1]) } });
    expect(stored.every((row) => row.operatorId === operator.userId)).toBe(true);
  });

  it("refuses a deverification without a note, an unknown machine, a host and a read-only operator key; nothing is written", async () => {
    const before = await databaseSnapshot();
    const noNote = await app.gql(SET_VERIFICATION, { id: machineId, v: "DEVERIFIED" }, operator.key);
    expect(noNote.data.setMachineVerification).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["note"] }] });
    const unknown = await app.gql(SET_VERIFICATION, { id: "Machine:2000000000", v: "VERIFIED" }, operator.key);
    expect(unknown.data.setMachineVerification.code).toBe("NOT_FOUND");
    const byHost = await app.gql(SET_DATACENTER, { id: machineId, dc: true }, host.key);
    expect(byHost.data.setMachineDatacenter.code).toBe("FORBIDDEN");
    expect((await app.gql(SET_VERIFICATION, { id: machineId, v: "VERIFIED" }, operatorReadOnly)).data.setMachineVerification.code).toBe("FORBIDDEN");
    expect(await databaseSnapshot()).toBe(before);
  });

  it("an operator reads any host's machine, unlisted too, but not the rentals on it; the role ends with its revocation", async () => {
    const query = `query ($id: ID!) { machine(id: $id) { id listed reportedAddress vettingHistory { note } } }`;
    await app.gql(`mutation ($id: ID!) { unlistMachine(machineId: $id) { __typename } }`, { id: machineId }, host.key);
    expect((await app.gql(query, { id: machineId }, operator.key)).data.machine).toMatchObject({ id: machineId, listed: false });
    const stranger = await createAccount("stranger");
    expect((await app.gql(query, { id: machineId }, stranger.key)).data.machine).toBeNull();

    await setOperator(prisma, await emailOf(operator.userId), false);
    expect((await app.gql(query, { id: machineId }, operator.key)).data.machine).toBeNull();
    const refused = await app.gql(SET_VERIFICATION, { id: machineId, v: "VERIFIED" }, operator.key);
    expect(refused.data.setMachineVerification.code).toBe("FORBIDDEN");
    await setOperator(prisma, await emailOf(operator.userId), true);
  });
});
