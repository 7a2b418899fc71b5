import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type Agent, startAgent } from "../agent/agent.ts";
import { subscribeAssignments } from "../agent/connection.ts";
import { ProcessRuntime } from "../agent/runtimes/process.ts";
import { assignment, type FakeApi, startFakeApi } from "./support/agent-fake-api.ts";

// The agent against an in-test API implementing the realtime contract, with the process runtime.

const TRAP_SCRIPT = `
const fs = require("node:fs");
const out = process.argv[2];
process.on("SIGTERM", () => fs.appendFileSync(out, "TERM " + Date.now() + "\\n"));
fs.appendFileSync(out, "ready " + process.pid + "\\n");
setInterval(() => {}, 1000);
`;

// The agent's log, read by the tests: what it says (a pass made, a stale state ignored, a connection
// closed) is how they know something has had its chance to happen. Shown from LOG_LEVEL up as usual.
const logged: string[] = [];
const shownFrom = (pino.levels.values as Record<string, number>)[process.env.LOG_LEVEL ?? "warn"] ?? Infinity;
const logger = pino(
  { level: "debug" },
  {
    write(line: string) {
      const { level, msg } = JSON.parse(line) as { level: number; msg: string };
      logged.push(msg);
      if (level >= shownFrom) process.stdout.write(line);
    },
  },
);
const count = (msg: string) => logged.filter((m) => m === msg).length;
/** Resolves once the agent has logged `msg` `times` more times. */
async function logs(msg: string, times = 1): Promise<void> {
  const target = count(msg) + times;
  await vi.waitFor(() => expect(count(msg)).toBeGreaterThanOrEqual(target), { timeout: 20_000, interval: 20 });
}
const passes = (times: number) => logs("reconcile pass", times);
let root: string;
let trap: string;
let dir: string;
let api: FakeApi;
let runtime: ProcessRuntime;
let agent: Agent | null;

function start(overrides: { key?: string } = {}): Agent {
  agent = startAgent({
    apiUrl: api.url,
    key: overrides.key ?? api.key,
    machineId: api.machineId,
    runtime,
    heartbeatSeconds: 0.3,
    pollSeconds: 0.1,
    backoff: { initialMs: 50, maxMs: 400 },
    diskPath: dir,
    allowGpuless: true,
    logger,
  });
  return agent;
}

async function waitForFile(path: string, text: string): Promise<string> {
  await expect.poll(async () => (await readFile(path, "utf8").catch(() => "")).includes(text)).toBe(true);
  return readFile(path, "utf8");
}

const reportsOf = (instanceId: string) => api.reports.filter((r) => r.instanceId === instanceId).map((r) => r.status);
const waitForReport = (instanceId: string, status: string) =>
  api.waitFor(() => api.reports.find((r) => r.instanceId === instanceId && r.status === status));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "agent-reconcile-"));
  trap = join(root, "trap.cjs");
  await writeFile(trap, TRAP_SCRIPT);
});

beforeEach(async () => {
  dir = await mkdtemp(join(root, "case-"));
  runtime = new ProcessRuntime(join(dir, "processes"), logger);
  api = await startFakeApi();
  agent = null;
});

afterEach(async () => {
  await agent?.stop().catch(() => {});
  for (const container of await runtime.list()) await runtime.remove(container.label, 0);
  await api.kill().catch(() => {});
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("agent against the realtime contract", () => {
  it("makes the first desired state real, with the container env, and reports RUNNING, heartbeats and usage", async () => {
    const envOut = join(dir, "env.out");
    api.setInstances([
      assignment(1, {
        onstart: `env > ${envOut}; exec sleep 60`,
        env: [{ key: "FOO", value: "bar" }],
        ports: ["8081:8081", "70000:70000"],
        portMappings: [
          { containerPort: 8081, protocol: "tcp", hostPort: 40000 },
          { containerPort: 70000, protocol: "tcp", hostPort: null },
        ],
      }),
    ]);
    start();
    await waitForReport("Instance:1", "RUNNING");

    const env = Object.fromEntries(
      (await waitForFile(envOut, "API_URL="))
        .trim()
        .split("\n")
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    expect(env).toMatchObject({
      FOO: "bar",
      CONTAINER_ID: "1",
      CONTAINER_LABEL: "C.1",
      CONTAINER_API_KEY: api.issuedKeys.get("Instance:1"),
      API_URL: api.url,
    });
    expect(Number(env.TCP_PORT_70000)).toBeGreaterThan(0);
    expect(Object.values(env)).not.toContain(api.key);

    const beat = await api.waitFor(() => api.heartbeats[0]);
    expect(beat.machineId).toBe("Machine:12");
    expect(beat.metrics).toMatchObject({ cpuLoad: expect.any(Number), diskFreeGb: expect.any(Number) });
    await api.waitFor(() => api.usage.find((u) => u.instanceId === "Instance:1"));
    expect(api.usage[0]).toEqual({ instanceId: "Instance:1", rxBytes: "0", txBytes: "0" });
    // Reported once, though passes keep running.
    await passes(3);
    expect(reportsOf("Instance:1")).toEqual(["RUNNING"]);
    expect((await runtime.list()).map((c) => c.state)).toEqual(["running"]);
  });

  it("applies changes: stop honours the grace period (SIGTERM, then SIGKILL), start again, remove", async () => {
    const out = join(dir, "trap.out");
    const running = assignment(2, { onstart: `exec node ${trap} ${out}`, preemptGraceSeconds: 1 });
    api.setInstances([running]);
    start();
    await waitForReport("Instance:2", "RUNNING");
    const firstPid = Number(/ready (\d+)/.exec(await waitForFile(out, "ready"))![1]);

    const asked = Date.now();
    api.setInstances([{ ...running, desiredState: "STOPPED" }]);
    const stoppedReport = await waitForReport("Instance:2", "STOPPED");
    const term = Number(/TERM (\d+)/.exec(await readFile(out, "utf8"))![1]);
    expect(term).toBeGreaterThanOrEqual(asked); // SIGTERM first…
    expect(stoppedReport.at - asked).toBeGreaterThanOrEqual(1000); // …then waited out the grace period…
    expect(() => process.kill(firstPid, 0)).toThrow(); // …then killed it

    api.setInstances([running]);
    await api.waitFor(() => reportsOf("Instance:2").length === 3);
    expect(reportsOf("Instance:2")).toEqual(["RUNNING", "STOPPED", "RUNNING"]);

    api.setInstances([]);
    await expect.poll(async () => (await runtime.list()).length, { timeout: 5000 }).toBe(0);
  });

  it("reports EXITED for a workload that ended by itself and does not restart it", async () => {
    const starts = join(dir, "starts.out");
    api.setInstances([assignment(3, { onstart: `echo started >> ${starts}; sleep 1; exit 3` })]);
    start();
    const exited = await waitForReport("Instance:3", "EXITED");
    expect(exited.message).toBe("exit code 3");
    await passes(3);
    expect((await readFile(starts, "utf8")).trim().split("\n")).toHaveLength(1);
    expect(reportsOf("Instance:3")).toEqual(["RUNNING", "EXITED"]);
  });

  it("does not take a container for exited when a listing saw it in the middle of being started again", async () => {
    // A listing that begins while the start is under way (the stopped mark gone, the new process not
    // yet spawned, so the container looks exited) and returns after the start has ended.
    const processes = join(dir, "processes");
    class ListedMidStart extends ProcessRuntime {
      overlap = false;
      private starting: Promise<void> | null = null;
      private listings = 0;
      override async list() {
        this.listings++;
        const starting = this.starting;
        const seen = await super.list();
        if (starting) {
          await starting;
          await new Promise((resolve) => setImmediate(resolve));
        }
        return seen;
      }
      override async start(label: string) {
        if (!this.overlap) return super.start(label);
        let started!: () => void;
        this.starting = new Promise((resolve) => (started = resolve));
        try {
          await rm(join(processes, label, "stopped"), { force: true });
          const listed = this.listings;
          await vi.waitFor(() => expect(this.listings).toBeGreaterThan(listed), { timeout: 10_000, interval: 10 });
          await super.start(label);
        } finally {
          this.starting = null;
          started();
        }
      }
    }
    const overlapping = new ListedMidStart(processes, logger);
    runtime = overlapping;
    const running = assignment(5);
    api.setInstances([running]);
    start();
    await waitForReport("Instance:5", "RUNNING");
    api.setInstances([{ ...running, desiredState: "STOPPED" }]);
    await waitForReport("Instance:5", "STOPPED");

    overlapping.overlap = true;
    api.setInstances([running]);
    await api.waitFor(() => reportsOf("Instance:5").length >= 3);
    await passes(3);
    expect(reportsOf("Instance:5")).toEqual(["RUNNING", "STOPPED", "RUNNING"]);
    expect((await runtime.list()).map((c) => c.state)).toEqual(["running"]);
  });

  it("reports FAILED when the launch fails and ignores a stale desired state", async () => {
    api.setInstances([assignment(4)]);
    start();
    await waitForReport("Instance:4", "RUNNING");
    // An older revision saying "nothing here" must not remove the container.
    const stale = logs("ignoring a stale desired state");
    api.publish(0n, []);
    await stale;
    await passes(2);
    expect((await runtime.list()).map((c) => c.label)).toEqual(["C.4"]);

    // The API refuses a key for an instance it does not know: the launch fails and says why.
    api.publish(100n, [assignment(4), assignment(5, { instanceId: "Instance:999" })]);
    const failed = await waitForReport("Instance:999", "FAILED");
    expect(failed.message).toMatch(/issueContainerApiKey refused: Instance not found/);
  });

  it("reconnects after the API dies and converges to the state it finds", async () => {
    api.setInstances([assignment(6)]);
    start();
    await waitForReport("Instance:6", "RUNNING");
    expect(api.subscriptions).toBe(1);

    const closed = logs("connection closed");
    await api.kill();
    api.setInstances([assignment(6, { desiredState: "STOPPED", preemptGraceSeconds: 0 }), assignment(7)]); // changed while down
    await closed;
    await api.restart();

    await waitForReport("Instance:7", "RUNNING");
    await waitForReport("Instance:6", "STOPPED");
    expect(api.subscriptions).toBeGreaterThanOrEqual(2);
    expect(Object.fromEntries((await runtime.list()).map((c) => [c.label, c.state]))).toEqual({ "C.6": "stopped", "C.7": "running" });
  });

  it("stops with a clear error when the API closes the socket with 4403 (bad key)", async () => {
    const fatal = await new Promise<Error>((resolve) => {
      const subscription = subscribeAssignments({
        url: api.url,
        key: "wrong-key",
        machineId: api.machineId,
        logger,
        backoff: { initialMs: 50, maxMs: 400 },
        onState: () => {},
        onFatal: (error) => void subscription.stop().then(() => resolve(error)),
      });
    });
    expect(fatal.message).toMatch(/rejected the agent's key \(WebSocket closed with 4403\)/);
    expect(api.subscriptions).toBe(0);

    // The whole agent stops too, and does not retry forever.
    await expect(start({ key: "wrong-key" }).done).rejects.toThrow(/rejected the agent's key/);
  });
});
