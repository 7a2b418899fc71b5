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
import { freePortRange } from "./support/ports.ts";
import { createAccount, createListedMachine, unwrap } from "./support/rentals.ts";

// The process runtime (demo, fast tests): an SSH instance is a real sshd of its own on the port its
// container port 22 was mapped to, taking the instance's keys as they change.

const app = useTestApp();
let auction: AuctionWorker;
let dir: string;
let agent: AgentProcess;

beforeAll(async () => {
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "connection-process-"));
});

afterAll(async () => {
  if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
    agent.child.kill("SIGTERM");
    await agent.exited;
  }
  const runtime = new ProcessRuntime(join(dir, "agent", "processes"), pino({ level: "silent" }));
  for (const container of await runtime.list()) await runtime.remove(container.label, 0);
  await auction.close();
  await closePubSub();
  await rm(dir, { recursive: true, force: true });
});

describe("SSH under the process runtime", () => {
  it("runs a per-instance sshd on the mapped port that takes attached keys", async () => {
    const host = await createAccount("host");
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const start = await freePortRange(1);
    await prisma.machine.update({ where: { id: machineId }, data: { directPortStart: start, directPortEnd: start } });
    const { token } = await issueApiKey(prisma, {
      userId: host.userId,
      name: "agent",
      scope: "MACHINE",
      machineId,
    });
    agent = spawnAgent({ api: app.url, key: token, machineId, stateDir: join(dir, "agent") });

    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    const keyFile = join(dir, "key");
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
    const created = await app.gql(
      `mutation ($input: CreateInstanceInput!) { createInstance(input: $input) {
         __typename ... on MutationCreateInstanceSuccess { data { instance { id } } } ... on Error { code message } } }`,
      { input: { offerId: `${machineId}-1`, image: "demo/workload:latest", diskGb: 1, launchMode: "SSH" } },
      client.key,
    );
    const id = unwrap(created.data.createInstance).instance.id as string;
    const connection = await eventually(async () => {
      const response = await app.gql(`query ($id: ID!) { instance(id: $id) { status connection { publicHost sshPort } } }`, { id }, client.key);
      return response.data?.instance.connection ?? undefined;
    }, 30_000);
    expect(connection.sshPort).toBe(start);

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
