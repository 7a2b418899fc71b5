import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ProcessRuntime } from "../agent/runtimes/process.ts";
import { prisma } from "../infra/db.ts";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, processesOf, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, unwrap } from "./support/rentals.ts";
import { spawnStart } from "./support/start-process.ts";
import { subscribe } from "./support/ws.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

// The whole loop with the real agent program (process runtime) against the real API: a host
// registers and lists a machine, its agent connects, a client rents it and watches the instance go
// LOADING → RUNNING on the agent's report, the container stops itself with its own key, and the
// client destroys it.

const app = useTestApp();
let auction: AuctionWorker;
let dir: string;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "agent-e2e-"));
});

afterAll(async () => {
  for (const agent of agents) if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL");
  for (const stateDir of [join(dir, "a"), join(dir, "b")]) {
    const runtime = new ProcessRuntime(join(stateDir, "processes"), pino({ level: "silent" }));
    for (const container of await runtime.list()) await runtime.remove(container.label, 0);
  }
  await auction.close();
  await closePubSub();
  await rm(dir, { recursive: true, force: true });
});

async function rent(clientKey: string, machineId: number, onstart: string): Promise<string> {
  const input = { offerId: `${machineId}-1`, image: "demo/workload:latest", diskGb: 10, launchMode: "ENTRYPOINT", onstart };
  return unwrap((await app.gql(CREATE_INSTANCE, { input }, clientKey)).data.createInstance).instance.id;
}

const statusOf = async (id: string) =>
  (await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } })).status;

describe("agent end to end", () => {
  it("runs an instance from LOADING to RUNNING through the agent's report, stops it from inside, destroys it", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    const { machineId, key } = await registerAndList(app, host.key);
    const stateDir = join(dir, "a");
    const agent = spawnAgent({ api: app.url, key, machineId, stateDir });
    agents.push(agent);
    await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt);

    const watch = subscribe(app.url, client.key, `subscription { instanceStatus { id status statusMessage } }`);
    const envFile = join(dir, "env");
    const id = await rent(client.key, machineId, `env > ${envFile}; exec sleep 120`);
    const label = `C.${id.split(":")[1]}`;
    await watch.next((i) => i.id === id && i.status === "RUNNING", 20_000);
    const seen = watch.values.filter((i) => i.id === id).map((i) => i.status);
    expect(seen.indexOf("LOADING")).toBeLessThan(seen.indexOf("RUNNING"));
    expect(await processesOf(label, app.url)).toHaveLength(1);

    // The container's environment: its id, label and own key, which stops its own instance.
    const env = Object.fromEntries(
      (await readFile(envFile, "utf8")).split("\n").filter(Boolean).map((line) => [line.split("=")[0], line.slice(line.indexOf("=") + 1)]),
    );
    expect(env).toMatchObject({ CONTAINER_ID: id.split(":")[1], CONTAINER_LABEL: label, API_URL: app.url });
    const stop = await app.gql(`mutation ($id: ID!) { stopInstance(id: $id) { __typename } }`, { id }, env.CONTAINER_API_KEY);
    expect(stop.data.stopInstance.__typename).toBe("MutationStopInstanceSuccess");
    await watch.next((i) => i.id === id && i.status === "STOPPED");
    await eventually(async () => (await processesOf(label, app.url)).length === 0);

    const destroyed = await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id }, client.key);
    expect(destroyed.data.destroyInstance.__typename).toBe("MutationDestroyInstanceSuccess");
    const runtime = new ProcessRuntime(join(stateDir, "processes"), pino({ level: "silent" }));
    await eventually(async () => (await runtime.list()).length === 0);
    expect(await statusOf(id)).toBe("DESTROYED");
    await watch.close();
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
  });

  it("runs a stopped instance again when it is started while its stop is still under way", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    const { machineId, key } = await registerAndList(app, host.key);
    const agent = spawnAgent({ api: app.url, key, machineId, stateDir: join(dir, "restart") });
    agents.push(agent);
    await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt);

    const watch = subscribe(app.url, client.key, `subscription { instanceStatus { id status } }`);
    const id = await rent(client.key, machineId, "exec sleep 120");
    await watch.next((i) => i.id === id && i.status === "RUNNING", 20_000);
    const toggle = (verb: "stop" | "start") => app.gql(`mutation ($id: ID!) { ${verb}Instance(id: $id) { __typename } }`, { id }, client.key);
    expect((await toggle("stop")).data.stopInstance.__typename).toBe("MutationStopInstanceSuccess");
    await watch.next((i) => i.id === id && i.status === "STOPPED");
    // Started again at once: the agent may not have reported the stop yet; it must still report RUNNING.
    const from = watch.values.length;
    expect((await toggle("start")).data.startInstance.__typename).toBe("MutationStartInstanceSuccess");
    await watch.next((i) => i.id === id && i.status === "RUNNING", 20_000, from);
    expect(await processesOf(`C.${id.split(":")[1]}`, app.url)).toHaveLength(1);
    await watch.close();
  });

  it("converges when the agent is killed in the middle of an assignment and restarted", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    const { machineId, key } = await registerAndList(app, host.key);
    const stateDir = join(dir, "b");
    const first = spawnAgent({ api: app.url, key, machineId, stateDir });
    agents.push(first);
    await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt);

    const starts = join(dir, "starts");
    const id = await rent(client.key, machineId, `echo $$ >> ${starts}; exec sleep 120`);
    const label = `C.${id.split(":")[1]}`;
    // Killed as soon as the platform has assigned the instance: before or during its launch.
    await eventually(async () => (await statusOf(id)) === "LOADING");
    first.child.kill("SIGKILL");
    expect(await first.exited).toBeNull();

    const second = spawnAgent({ api: app.url, key, machineId, stateDir });
    agents.push(second);
    await eventually(async () => (await statusOf(id)) === "RUNNING", 30_000);
    await second.passes(3);
    expect(await processesOf(label, app.url)).toHaveLength(1);
    const launched = (await readFile(starts, "utf8")).trim().split("\n");
    expect(launched).toHaveLength(1);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });
});

describe("npm start", () => {
  it("runs demo agents that take assignments for the demo machines", async () => {
    const serverUrl = inject("serverUrl");
    const database = `t_${inject("runId")}_demoagents_${randomBytes(3).toString("hex")}`;
    await adminQuery(serverUrl, `CREATE DATABASE ${database}`);
    const databaseUrl = withDatabase(serverUrl, database);
    const started = spawnStart({ DATABASE_URL: databaseUrl, REDIS_URL: inject("redisUrl"), REDIS_PREFIX: database, PORT: "0" });
    try {
      const url = String((await started.waitForLog((line) => typeof line.url === "string")).url);
      expect((await started.waitForLog((line) => line.msg === "demo agents started (process runtime)")).machines).toBe(5);
      const clientKey = String(started.logs().find((line) => line.email === "client@demo.local")!.key);
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        const beating = async () =>
          (await db.query("SELECT id FROM machine WHERE last_heartbeat_at IS NOT NULL ORDER BY id")).rows.map((row) => row.id);
        const machines = await eventually(async () => ((await beating()).length === 5 ? beating() : undefined));
        const rented = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
          body: JSON.stringify({
            query: CREATE_INSTANCE,
            variables: { input: { offerId: `${machines[0]}-1`, image: "demo/sleep:latest", diskGb: 1, launchMode: "SSH" } },
          }),
        });
        const id = Number(unwrap(((await rented.json()) as any).data.createInstance).instance.id.split(":")[1]);
        await eventually(async () => (await db.query("SELECT status FROM instance WHERE id = $1", [id])).rows[0].status === "RUNNING");
        expect(await processesOf(`C.${id}`, url)).toHaveLength(1);
        await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
          body: JSON.stringify({ query: `mutation { destroyInstance(id: "Instance:${id}") { __typename } }` }),
        });
        await eventually(async () => (await processesOf(`C.${id}`, url)).length === 0);
      } finally {
        await db.end();
      }
    } finally {
      started.child.kill("SIGTERM");
      expect(await started.exited, started.output()).toBe(0);
      // The demo agents leave their containers running when they stop (a restart adopts them).
      const agentsDir = join(root, ".data", "agents", database);
      for (const machine of await readdir(agentsDir).catch(() => [])) {
        const runtime = new ProcessRuntime(join(agentsDir, machine, "processes"), pino({ level: "silent" }));
        for (const container of await runtime.list()) await runtime.remove(container.label, 0);
      }
      await rm(agentsDir, { recursive: true, force: true });
    }
  }, 90_000);
});
