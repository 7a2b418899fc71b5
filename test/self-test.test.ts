import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { setOperator } from "../domain/operators.ts";
import { prisma } from "../infra/db.ts";
import { type AgentProcess, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";

/**
 * The self-test end to end: the operator (or the host) requests it, the real agent program (process
 * runtime) receives it over its connection, runs its checks on this host and reports; the report is
 * the operator's and the host's to read, and nobody else's to read or request.
 */
const app = useTestApp();
const agents: AgentProcess[] = [];
let dir: string;
let operator: { userId: number; key: string };

const REQUEST = `mutation ($id: ID!) {
  requestSelfTest(machineId: $id) { __typename ... on MutationRequestSelfTestSuccess { data { id status machineId } } ... on Error { code } }
}`;
const LATEST = `query ($id: ID!) { machine(id: $id) { latestSelfTest { id status reportedAt checks { name passed value unit message } } } }`;

/** A recorded nvidia-smi: two RTX 4090s, driver 550.54.15 offering CUDA 12.4 (metrics queries get zeros). */
const FAKE_NVIDIA_SMI = `#!/bin/sh
case "$1" in
  --query-gpu=index*)
    echo "index, name, memory.total [MiB], driver_version, pcie.link.gen.max, pcie.link.width.max, power.limit [W], compute_cap"
    echo "0, NVIDIA GeForce RTX 4090, 24564 MiB, 550.54.15, 4, 16, 450.00 W, 8.9"
    echo "1, NVIDIA GeForce RTX 4090, 24564 MiB, 550.54.15, 4, 16, 450.00 W, 8.9" ;;
  --query-gpu=*) echo "0, 40, 0"; echo "0, 41, 0" ;;
  *) echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |" ;;
esac
`;

async function machineWithAgent(label: string, env: Record<string, string> = {}) {
  const host = await createAccount(label);
  const { machineId, key } = await registerAndList(app, host.key);
  agents.push(spawnAgent({ api: app.url, key, machineId, stateDir: await mkdtemp(join(dir, `${label}-`)), env }));
  return { host, id: `Machine:${machineId}`, machineKey: key };
}

async function reported(id: string, key: string) {
  let latest: { status: string } | undefined;
  await expect
    .poll(async () => (latest = (await app.gql(LATEST, { id }, key)).data?.machine?.latestSelfTest)?.status, { timeout: 60_000, interval: 200 })
    .not.toBe("PENDING");
  return latest as { id: string; status: string; reportedAt: string; checks: { name: string; passed: boolean; value: number | null; unit: string | null; message: string }[] };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "self-test-"));
  await writeFile(join(dir, "nvidia-smi"), FAKE_NVIDIA_SMI);
  await chmod(join(dir, "nvidia-smi"), 0o755);
  operator = await createAccount("operator");
  await setOperator(prisma, (await prisma.user.findUniqueOrThrow({ where: { id: operator.userId } })).email, true);
});

async function stopAgents() {
  for (const agent of agents) if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGTERM");
  await Promise.all(agents.map((agent) => agent.exited));
}

afterAll(async () => {
  await stopAgents();
  await rm(dir, { recursive: true, force: true });
});

describe("machine self-tests", () => {
  it("an operator's request reaches the agent, which runs every check and reports; operator and host read it", async () => {
    const machine = await machineWithAgent("gpu-host", { PATH: `${dir}:${process.env.PATH}` });
    const requested = await app.gql(REQUEST, { id: machine.id }, operator.key);
    expect(requested.data.requestSelfTest.data).toMatchObject({ status: "PENDING", machineId: machine.id });
    // A second request while it is pending is the same test.
    expect((await app.gql(REQUEST, { id: machine.id }, machine.host.key)).data.requestSelfTest.data.id).toBe(requested.data.requestSelfTest.data.id);

    const report = await reported(machine.id, operator.key);
    expect(report.status, JSON.stringify(report.checks)).toBe("PASSED");
    const byName = Object.fromEntries(report.checks.map((check) => [check.name, check]));
    expect(Object.keys(byName)).toEqual(["GPU_VISIBLE", "CUDA", "DISK_WRITE", "DISK_READ", "NETWORK_DOWN", "NETWORK_UP", "CONTAINER_START"]);
    expect(byName.GPU_VISIBLE).toMatchObject({ passed: true, value: 2, message: expect.stringContaining("RTX 4090") });
    expect(byName.CUDA).toMatchObject({ passed: true, value: 12.4 });
    for (const name of ["DISK_WRITE", "DISK_READ"]) expect(byName[name]).toMatchObject({ passed: true, unit: "MB/s", value: expect.any(Number) });
    for (const name of ["NETWORK_DOWN", "NETWORK_UP"]) expect(byName[name]).toMatchObject({ passed: true, unit: "Mbps", value: expect.any(Number) });
    expect(Math.min(byName.DISK_WRITE.value!, byName.NETWORK_DOWN.value!)).toBeGreaterThan(0);
    expect(byName.CONTAINER_START.passed).toBe(true);
    console.log(`self-test figures: ${report.checks.map((c) => `${c.name}=${c.value ?? "-"}${c.unit ? ` ${c.unit}` : ""}`).join(", ")}`);

    const host = await app.gql(`query ($id: ID!) { machine(id: $id) { selfTests { id status } } }`, { id: machine.id }, machine.host.key);
    expect(host.data.machine.selfTests).toEqual([{ id: report.id, status: "PASSED" }]);

    // The agent reports once: a second report is refused and changes nothing.
    const again = await app.gql(
      `mutation ($id: ID!) { reportSelfTest(selfTestId: $id, checks: [{ name: GPU_VISIBLE, passed: false, message: "forged" }]) { __typename ... on Error { code } } }`,
      { id: report.id },
      machine.machineKey,
    );
    expect(again.data.reportSelfTest.code).toBe("CONFLICT");
    expect((await reported(machine.id, operator.key)).status).toBe("PASSED");
  }, 120_000);

  it("on a host without an NVIDIA driver the GPU checks fail and say why; the rest still run", async () => {
    const machine = await machineWithAgent("gpu-less-host", { PATH: "/usr/local/bin:/usr/bin:/bin" });
    expect((await app.gql(REQUEST, { id: machine.id }, machine.host.key)).data.requestSelfTest.data.status).toBe("PENDING");
    const report = await reported(machine.id, machine.host.key);
    expect(report.status).toBe("FAILED");
    const byName = Object.fromEntries(report.checks.map((check) => [check.name, check]));
    expect(byName.GPU_VISIBLE).toMatchObject({ passed: false, value: null, message: expect.stringContaining("nvidia-smi") });
    expect(byName.CUDA.passed).toBe(false);
    for (const name of ["DISK_WRITE", "DISK_READ", "NETWORK_DOWN", "NETWORK_UP", "CONTAINER_START"]) expect(byName[name].passed).toBe(true);
  }, 120_000);

  it("a client, another host or another machine's agent can neither request nor read a machine's self-tests", async () => {
    await stopAgents(); // their heartbeats would change the database under the comparison below
    const host = await createAccount("host");
    const { machineId } = await registerAndList(app, host.key);
    const id = `Machine:${machineId}`;
    expect((await app.gql(REQUEST, { id }, host.key)).data.requestSelfTest.data.status).toBe("PENDING");
    const [test] = await prisma.machineSelfTest.findMany({ where: { machineId } });

    const client = await createAccount("client");
    const otherHost = await createAccount("other-host");
    const { machineId: otherMachine } = await registerAndList(app, otherHost.key);
    const otherAgent = (await issueApiKey(prisma, { userId: otherHost.userId, name: "agent", scope: "MACHINE", machineId: otherMachine })).token;
    const before = await databaseSnapshot();
    for (const key of [client.key, otherHost.key, otherAgent, undefined]) {
      const request = await app.gql(REQUEST, { id }, key);
      expect(["NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED"]).toContain(request.data.requestSelfTest.code);
      const read = await app.gql(`query ($id: ID!) { machine(id: $id) { selfTests { id } latestSelfTest { id } } }`, { id }, key);
      expect(read.data?.machine ?? null).toBeNull();
      expect(JSON.stringify(read)).not.toContain(`MachineSelfTest:${test.id}`);
      const forged = await app.gql(
        `mutation ($id: ID!) { reportSelfTest(selfTestId: $id, checks: [{ name: GPU_VISIBLE, passed: true, message: "forged" }]) { __typename ... on Error { code } } }`,
        { id: `MachineSelfTest:${test.id}` },
        key,
      );
      expect(["NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED"]).toContain(forged.data.reportSelfTest.code);
    }
    expect(await databaseSnapshot()).toBe(before);
  }, 60_000);
});
