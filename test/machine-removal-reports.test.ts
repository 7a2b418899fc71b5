import { beforeAll, describe, expect, it } from "vitest";
import { machineAssignments } from "../domain/agent/assignments.ts";
import { setOperator } from "../domain/operators.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { databaseSnapshot } from "./support/snapshot.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();

let host: { userId: number; key: string };
let renter: { userId: number; key: string };
let stranger: { userId: number; key: string };

beforeAll(async () => {
  host = await createAccount("host");
  renter = await createAccount("renter");
  stranger = await createAccount("stranger");
});

const REMOVE = /* GraphQL */ `
  mutation ($id: ID!) {
    removeMachine(machineId: $id) {
      __typename
      ... on MutationRemoveMachineSuccess { data { id removedAt listed } }
      ... on Error { code }
      ... on MachineNotRemovableError { reason liveContracts }
    }
  }
`;
const UNLIST = `mutation ($id: ID!) { unlistMachine(machineId: $id) { __typename } }`;
const DESTROY = `mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`;
const REPORT = /* GraphQL */ `
  mutation ($id: ID!, $reason: MachineReportReason!, $text: String!) {
    reportMachine(machineId: $id, reason: $reason, text: $text) {
      __typename
      ... on MutationReportMachineSuccess { data { id machineId reason text } }
      ... on Error { code }
      ... on ValidationError { issues { path } }
    }
  }
`;

const rent = async (client: { key: string }, machineId: number) =>
  unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, client.key)).data.createInstance);

describe("removeMachine", () => {
  it("refuses a listed machine and one with live contracts (typed, nothing written), then removes it from every listing and keeps its history", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const id = `Machine:${machineId}`;
    const rental = await rent(renter, machineId);

    let before = await databaseSnapshot();
    expect((await app.gql(REMOVE, { id }, host.key)).data.removeMachine).toMatchObject({ code: "MACHINE_LISTED", reason: "LISTED", liveContracts: 1 });
    expect(await databaseSnapshot()).toBe(before);

    await app.gql(UNLIST, { id }, host.key);
    before = await databaseSnapshot();
    expect((await app.gql(REMOVE, { id }, host.key)).data.removeMachine).toMatchObject({ code: "LIVE_CONTRACTS", reason: "LIVE_CONTRACTS", liveContracts: 1 });
    // Another account's machine does not exist for the caller.
    expect((await app.gql(REMOVE, { id }, stranger.key)).data.removeMachine).toMatchObject({ code: "NOT_FOUND" });
    expect(await databaseSnapshot()).toBe(before);

    // The rental ends: now it can go.
    await app.gql(DESTROY, { id: rental.instance.id }, renter.key);
    await expect.poll(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: Number(rental.instance.id.split(":")[1]) } })).status).toBe("DESTROYED");
    const removed = await app.gql(REMOVE, { id }, host.key);
    expect(removed.data.removeMachine.__typename, JSON.stringify(removed)).toBe("MutationRemoveMachineSuccess");
    expect(removed.data.removeMachine.data).toMatchObject({ id, listed: false, removedAt: expect.any(String) });

    // Gone from the host's machines, from search and from others' view; listing it again is NOT_FOUND.
    const mine = await app.gql(`{ myMachines { nodes { id } } }`, {}, host.key);
    expect(mine.data.myMachines.nodes.map((m: { id: string }) => m.id)).not.toContain(id);
    const search = await app.gql(`{ offers(query: "machine_id=${machineId} rentable=any verified=any") { edges { node { id } } } }`);
    expect(search.data.offers.edges).toEqual([]);
    expect((await app.gql(`query ($id: ID!) { machine(id: $id) { id } }`, { id }, stranger.key)).data.machine).toBeNull();
    const relist = await app.gql(
      `mutation ($input: ListMachineInput!) { listMachine(input: $input) { __typename ... on Error { code } } }`,
      { input: { machineId: id, pricePerGpuHour: "1.00", endDate: new Date(Date.now() + 86_400_000).toISOString() } },
      host.key,
    );
    expect(relist.data.listMachine.code).toBe("NOT_FOUND");
    expect((await app.gql(REMOVE, { id }, host.key)).data.removeMachine.code).toBe("NOT_FOUND");
    // Its history stays: the renter's instance and its machine row for the statements.
    const kept = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
    expect(kept.removedAt).not.toBeNull();
    expect((await app.gql(`query ($id: ID!) { instance(id: $id) { id status machineId } }`, { id: rental.instance.id }, renter.key)).data.instance).toMatchObject({
      status: "DESTROYED",
      machineId: id,
    });
    // The agent's desired state is empty: it removes what is left of destroyed instances.
    expect((await machineAssignments(machineId)).instances).toEqual([]);
  });
});

describe("reportMachine", () => {
  it("only a renter reports; the host sees the report without the reporter, operators see all", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const id = `Machine:${machineId}`;
    await rent(renter, machineId);

    // Someone who never rented it: typed error, nothing written; bad input too.
    let before = await databaseSnapshot();
    expect((await app.gql(REPORT, { id, reason: "NETWORK", text: "slow" }, stranger.key)).data.reportMachine.code).toBe("NOT_A_RENTER");
    expect((await app.gql(REPORT, { id: "Machine:999999", reason: "NETWORK", text: "slow" }, stranger.key)).data.reportMachine.code).toBe("NOT_A_RENTER");
    expect((await app.gql(REPORT, { id, reason: "NETWORK", text: "  " }, renter.key)).data.reportMachine).toMatchObject({ code: "VALIDATION", issues: [{ path: ["text"] }] });
    expect((await app.gql(REPORT, { id, reason: "NETWORK", text: "x".repeat(2001) }, renter.key)).data.reportMachine.code).toBe("VALIDATION");
    expect(await databaseSnapshot()).toBe(before);

    const report = await app.gql(REPORT, { id, reason: "GPU_ERRORS", text: "nvidia-smi shows 0 GPUs" }, renter.key);
    expect(report.data.reportMachine.data).toMatchObject({ machineId: id, reason: "GPU_ERRORS", text: "nvidia-smi shows 0 GPUs" });

    // The host: its machine's reports, never who wrote them.
    const REPORTS = `{ myMachines { nodes { id reports { totalCount edges { node { id reason text createdAt } } } } } }`;
    const hostView = await app.gql(REPORTS, {}, host.key);
    const machine = hostView.data.myMachines.nodes.find((m: { id: string }) => m.id === id);
    expect(machine.reports.totalCount).toBe(1);
    expect(machine.reports.edges[0].node).toMatchObject({ reason: "GPU_ERRORS", text: "nvidia-smi shows 0 GPUs" });
    expect(JSON.stringify(hostView)).not.toContain(`User:${renter.userId}`);
    const reporterForHost = await app.gql(`{ myMachines { nodes { reports { edges { node { reporterId } } } } } }`, {}, host.key);
    expect(reporterForHost.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    // Nobody else sees them: not the renter, not a stranger.
    expect((await app.gql(`{ machineReports { totalCount } }`, {}, renter.key)).errors?.[0]?.extensions?.code).toBe("FORBIDDEN");

    // Operators see every report, with its reporter.
    const operator = await createAccount("operator");
    await prisma.$transaction(async (tx) => {
      const { email } = await tx.user.findUniqueOrThrow({ where: { id: operator.userId } });
      await setOperator(tx, email, true);
    });
    const all = await app.gql(`{ machineReports { totalCount edges { node { machineId reason reporterId } } } }`, {}, operator.key);
    expect(all.errors).toBeUndefined();
    expect(all.data.machineReports.edges.map((e: { node: unknown }) => e.node)).toContainEqual({ machineId: id, reason: "GPU_ERRORS", reporterId: `User:${renter.userId}` });
  });
});
