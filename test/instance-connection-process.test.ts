import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, runOk } from "../agent/exec.ts";
import { ProcessRuntime } from "../agent/runtimes/process.ts";
import { issueApiKey } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { expectJupyterGuarded } from "./support/jupyter.ts";
import { freePortRange } from "./support/ports.ts";
import { createAccount, createListedMachine, unwrap } from "./support/rentals.ts";

// The process runtime (demo, fast tests): an SSH instance is a real sshd of its own on the port its
// container port 22 was mapped to, taking the instance's keys as they change; a JUPYTER instance is
// the host's Jupyter server (Debian's python3-jupyter-server) on the port 8080 was mapped to.

const app = useTestApp();
let auction: AuctionWorker;
let dir: string;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "connection-process-"));
});

afterAll(async () => {
  for (const [index, agent] of agents.entries()) {
    if (agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill("SIGTERM");
      await agent.exited;
    }
    const runtime = new ProcessRuntime(join(dir, `agent-${index}`, "processes"), pino({ level: "silent" }));
    for (const container of await runtime.list()) await runtime.remove(container.label, 0);
  }
  await auction.close();
  await closePubSub();
  await rm(dir, { recursive: true, force: true });
});

/** A machine of its own with a one-port range and a process agent, and a client's rental on it, connected. */
async function rentOnOwnMachine(launchMode: "SSH" | "JUPYTER") {
  const host = await createAccount("host");
  const machineId = await createListedMachine(host.userId, { numGpus: 1 });
  const start = await freePortRange(1);
  await prisma.machine.update({ where: { id: machineId }, data: { directPortStart: start, directPortEnd: start } });
  const { token } = await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId });
  agents.push(spawnAgent({ api: app.url, key: token, machineId, stateDir: join(dir, `agent-${agents.length}`) }));

  const client = await createAccount("client");
  await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
  const created = await app.gql(
    `mutation ($input: CreateInstanceInput!) { createInstance(input: $input) {
       __typename ... on MutationCreateInstanceSuccess { data { instance { id } } } ... on Error { code message } } }`,
    { input: { offerId: `${machineId}-1`, image: "demo/workload:latest", diskGb: 1, launchMode } },
    client.key,
  );
  const id = unwrap(created.data.createInstance).instance.id as string;
  const connection = await eventually(async () => {
    const response = await app.gql(
      `query ($id: ID!) { instance(id: $id) { status connection { publicHost sshPort jupyterUrl jupyterDirectUrl } } }`,
      { id },
      client.key,
    );
    return response.data?.instance.connection ?? undefined;
  }, 30_000);
  return { start, client, id, connection };
}

describe("SSH under the process runtime", () => {
  it("runs a per-instance sshd on the mapped port that takes attached keys", async () => {
    const { start, client, id, connection } = await rentOnOwnMachine("SSH");
    expect(connection.sshPort).toBe(start);
    const keyFile = join(dir, "key");
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);

    const ssh = () =>
      run("ssh", [
        "-i", keyFile, "-p", String(start), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", `${userInfo().username}@127.0.0.1`, "echo $CONTAINER_ID",
      ]);
    expect((await ssh()).code).toBe(255);
    const attached = await app.gql(
      `mutation ($id: ID!, $k: String!) { attachSshKey(instanceId: $id, publicKey: $k) { __typename } }`,
      { id, k: (await readFile(`${keyFile}.pub`, "utf8")).trim() },
      client.key,
    );
    expect(attached.data.attachSshKey.__typename).toBe("MutationAttachSshKeySuccess");
    const login = await eventually(async () => {
      const result = await ssh();
      return result.code === 0 ? result : undefined;
    }, 20_000);
    expect(login.stdout.trim()).toBe(id.split(":")[1]);
  }, 120_000);
});

describe("Jupyter under the process runtime", () => {
  it("runs the host's Jupyter server on the mapped port with the instance's token, directly and through the API; 403 without it", async () => {
    const { start, connection } = await rentOnOwnMachine("JUPYTER");
    expect(Number(new URL(connection.jupyterDirectUrl).port)).toBe(start);
    await expectJupyterGuarded(connection, 60_000);
  }, 120_000);
});
