import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessRuntime } from "../agent/runtimes/process.ts";
import { assignment, type FakeApi, startFakeApi } from "./support/agent-fake-api.ts";
import { type AgentProcess, processesOf as processesOfApi, spawnAgent } from "./support/agent-process.ts";

// The agent as its own program (`npm run agent` runs the same file through tsx), killed with SIGKILL.

let dir: string;
let api: FakeApi;

const children: AgentProcess[] = [];

function agent(key = api.key): AgentProcess {
  const spawned = spawnAgent({ api: api.url, key, machineId: 12, stateDir: dir });
  children.push(spawned);
  return spawned;
}

const processesOf = (label: string) => processesOfApi(label, api.url);

const lines = async (path: string) => (await readFile(path, "utf8").catch(() => "")).trim().split("\n").filter(Boolean);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agent-restart-"));
  api = await startFakeApi();
});

afterAll(async () => {
  for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  const runtime = new ProcessRuntime(join(dir, "processes"), pino({ level: "silent" }));
  for (const container of await runtime.list()) await runtime.remove(container.label, 0);
  await api.kill();
  await rm(dir, { recursive: true, force: true });
});

describe("agent killed mid-assignment", () => {
  it("converges after a restart without starting anything twice", async () => {
    const workload = (label: string) => `echo $$ >> ${join(dir, `starts-${label}`)}; exec sleep 120`;
    api.setInstances([assignment(10, { onstart: workload("C.10") }), assignment(11, { onstart: workload("C.11") })]);
    // Hold the second launch half-way: its key is asked for but never answered.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    api.beforeIssue = (instanceId) => (instanceId === "Instance:11" ? held : Promise.resolve());

    const first = agent();
    await api.waitFor(() => api.reports.find((r) => r.instanceId === "Instance:10" && r.status === "RUNNING"), 20_000);
    await api.waitFor(() => api.issueRequests.includes("Instance:11"));
    first.child.kill("SIGKILL");
    expect(await first.exited).toBeNull();
    api.beforeIssue = async () => {};
    release();

    // C.10 kept running while the agent was dead; C.11 was never created.
    expect(await processesOf("C.10")).toHaveLength(1);
    expect(await processesOf("C.11")).toHaveLength(0);

    const second = agent();
    await api.waitFor(() => api.reports.find((r) => r.instanceId === "Instance:11" && r.status === "RUNNING"), 20_000);
    await second.passes(3); // what it finds after its first passes stays: nothing is started again
    expect(await lines(join(dir, "starts-C.10"))).toHaveLength(1);
    expect(await lines(join(dir, "starts-C.11"))).toHaveLength(1);
    expect(await processesOf("C.10")).toHaveLength(1);
    expect(await processesOf("C.11")).toHaveLength(1);
    expect(second.output()).toContain('"msg":"agent started"');

    // Stopping the agent leaves the instances running, for the next agent to adopt.
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(await processesOf("C.10")).toHaveLength(1);
    expect(await processesOf("C.11")).toHaveLength(1);
  });

  it("exits 1 with a clear message when the API refuses its key", async () => {
    const refused = agent("not-the-key");
    expect(await refused.exited).toBe(1);
    expect(refused.output()).toMatch(/agent: The API rejected the agent's key/);
  });
});
