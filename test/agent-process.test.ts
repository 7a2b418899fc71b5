import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContainerSpec } from "../agent/runtime.ts";
import { ProcessRuntime } from "../agent/runtimes/process.ts";

/** A workload that ignores SIGTERM (recording when it came): only SIGKILL ends it. */
const TRAP_SCRIPT = `
const fs = require("node:fs");
const out = process.argv[2];
process.on("SIGTERM", () => fs.appendFileSync(out, "TERM " + Date.now() + "\\n"));
fs.appendFileSync(out, "ready\\n");
setInterval(() => {}, 1000);
`;

let dir: string;
let trap: string;
const logger = pino({ level: "silent" });

const spec = (label: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  label,
  instanceId: `Instance:${label.slice(2)}`,
  image: "demo/image",
  launchMode: "ENTRYPOINT",
  onstart: "exec sleep 30",
  env: { CONTAINER_LABEL: label },
  ports: [],
  sshKeys: [],
  jupyterToken: null,
  jupyterBasePath: "/",
  args: [],
  diskGb: 1,
  numGpus: 0,
  gpuIndices: [],
  cpuCores: 1,
  memoryMb: 1000,
  recycleCount: 0,
  rebootCount: 0,
  ...overrides,
});

async function waitForFile(path: string, text: string): Promise<string> {
  await expect.poll(async () => (await readFile(path, "utf8").catch(() => "")).includes(text)).toBe(true);
  return readFile(path, "utf8");
}

/** The group leader's pid, first in the runtime's pid file. */
const leaderPid = async (label: string) => Number((await readFile(join(dir, "processes", label, "pid"), "utf8")).split(" ")[0]);

const alive = (pid: number) => {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agent-process-"));
  trap = join(dir, "trap.cjs");
  await writeFile(trap, TRAP_SCRIPT);
});

afterAll(async () => {
  await new ProcessRuntime(join(dir, "processes"), logger).list().then(async (containers) => {
    for (const c of containers) await new ProcessRuntime(join(dir, "processes"), logger).remove(c.label, 0);
  });
  await rm(dir, { recursive: true, force: true });
});

describe("process runtime", () => {
  it("stops with the grace period: SIGTERM first, SIGKILL once it has passed", async () => {
    const runtime = new ProcessRuntime(join(dir, "processes"), logger);
    const out = join(dir, "trap.out");
    await runtime.create(spec("C.1", { onstart: `exec node ${trap} ${out}` }));
    await runtime.start("C.1");
    await waitForFile(out, "ready");
    const pid = await leaderPid("C.1");

    const asked = Date.now();
    await runtime.stop("C.1", 1.5);
    const stopped = Date.now();
    // The trap ignores SIGTERM: it got one, and only SIGKILL after the grace period ended it.
    const term = Number(/TERM (\d+)/.exec(await readFile(out, "utf8"))![1]);
    expect(term).toBeGreaterThanOrEqual(asked);
    expect(stopped - asked).toBeGreaterThanOrEqual(1500);
    expect(alive(pid)).toBe(false);
    expect(await runtime.list()).toEqual([{ label: "C.1", instanceId: "Instance:1", state: "stopped", recycleCount: 0, rebootCount: 0, ports: [] }]);
  });

  it("gives the workload its GPUs in CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES, and records them and its CPU and RAM share", async () => {
    const runtime = new ProcessRuntime(join(dir, "processes"), logger);
    await runtime.create(
      spec("C.7", { onstart: 'echo "$CUDA_VISIBLE_DEVICES|$NVIDIA_VISIBLE_DEVICES" > gpus.txt; exec sleep 30', gpuIndices: [1, 3], cpuCores: 2.5, memoryMb: 8000 }),
    );
    await runtime.start("C.7");
    expect(await waitForFile(join(dir, "processes", "C.7", "gpus.txt"), "|")).toBe("1,3|1,3\n");
    const recorded = JSON.parse(await readFile(join(dir, "processes", "C.7", "spec.json"), "utf8"));
    expect(recorded).toMatchObject({ gpuIndices: [1, 3], cpuCores: 2.5, memoryMb: 8000 });
    expect((await runtime.list()).find((c) => c.label === "C.7")).toMatchObject({ state: "running", gpuIndices: [1, 3] });
    await runtime.remove("C.7", 0);
  });

  it("does not wait out the grace period for a workload that ends on SIGTERM", async () => {
    const runtime = new ProcessRuntime(join(dir, "processes"), logger);
    await runtime.create(spec("C.2"));
    await runtime.start("C.2");
    // An hour's grace: waiting it out would outlast the test's timeout.
    await runtime.stop("C.2", 3600);
    expect((await runtime.list()).find((c) => c.label === "C.2")?.state).toBe("stopped");
    await runtime.remove("C.2", 0);
    expect((await runtime.list()).map((c) => c.label)).not.toContain("C.2");
  });

  it("gives the workload its env and not the agent's, and keeps SSH instances up after onstart", async () => {
    process.env.AGENT_API_KEY = "the-agents-own-key";
    const runtime = new ProcessRuntime(join(dir, "processes"), logger);
    const out = join(dir, "env.out");
    await runtime.create(spec("C.3", { launchMode: "SSH", onstart: `env > ${out}`, env: { CONTAINER_LABEL: "C.3", FOO: "bar" } }));
    await runtime.start("C.3");
    const env = await waitForFile(out, "FOO=bar");
    expect(env).toContain("CONTAINER_LABEL=C.3");
    expect(env).not.toContain("the-agents-own-key");
    // onstart has finished once the workload is the `sleep` that keeps it up.
    const pid = await leaderPid("C.3");
    await expect.poll(() => readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).toMatch(/^sleep\0/);
    expect((await runtime.list()).find((c) => c.label === "C.3")?.state).toBe("running");
    await runtime.remove("C.3", 1);
    delete process.env.AGENT_API_KEY;
  });

  it("reports how a workload ended by itself", async () => {
    const runtime = new ProcessRuntime(join(dir, "processes"), logger);
    await runtime.create(spec("C.4", { onstart: "exit 3" }));
    await runtime.start("C.4");
    await expect
      .poll(async () => (await runtime.list()).find((c) => c.label === "C.4"))
      .toEqual({ label: "C.4", instanceId: "Instance:4", state: "exited", detail: "exit code 3", recycleCount: 0, rebootCount: 0, ports: [] });
    await runtime.remove("C.4", 0);
  });

  it("lets a restarted agent find its running processes, and count vanished ones as exited", async () => {
    const first = new ProcessRuntime(join(dir, "processes"), logger);
    await first.create(spec("C.5"));
    await first.create(spec("C.6"));
    await first.start("C.5");

    const restarted = new ProcessRuntime(join(dir, "processes"), logger);
    const found = async () => (await restarted.list()).filter((c) => c.label === "C.5" || c.label === "C.6");
    expect(await found()).toEqual([
      { label: "C.5", instanceId: "Instance:5", state: "running", recycleCount: 0, rebootCount: 0, ports: [] },
      { label: "C.6", instanceId: "Instance:6", state: "created", recycleCount: 0, rebootCount: 0, ports: [] },
    ]);
    // Starting what already runs does not start a second one.
    await restarted.start("C.5");
    const pid = await leaderPid("C.5");
    process.kill(-pid, "SIGKILL");
    await expect.poll(async () => (await found())[0]?.state).toBe("exited");
    await restarted.remove("C.5", 0);
    await restarted.remove("C.6", 0);
  });

  it("knows its processes by the leader's start time, not by their environment", async () => {
    const runtime = new ProcessRuntime(join(dir, "processes"), logger);
    // A workload that empties its environment at once: reading it cannot tell whose process it is.
    for (const label of ["C.71", "C.72", "C.73"]) {
      await runtime.create(spec(label, { onstart: "exec env -i sleep 30" }));
      await runtime.start(label);
    }
    await expect.poll(async () => readFile(`/proc/${await leaderPid("C.73")}/cmdline`, "utf8").catch(() => "")).toMatch(/^sleep\0/);
    const states = Object.fromEntries((await runtime.list()).map((c) => [c.label, c.state]));
    expect([states["C.71"], states["C.72"], states["C.73"]]).toEqual(["running", "running", "running"]);

    // The pid now names another process group (as after a reboot and pid reuse): not this container.
    const stranger = (await import("node:child_process")).spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    const pidFile = join(dir, "processes", "C.72", "pid");
    const [, startTime] = (await readFile(pidFile, "utf8")).split(" ");
    await runtime.stop("C.72", 0);
    await writeFile(pidFile, `${stranger.pid} ${startTime}`);
    await rm(join(dir, "processes", "C.72", "stopped"), { force: true });
    expect((await runtime.list()).find((c) => c.label === "C.72")!.state).toBe("exited");
    process.kill(-stranger.pid!, "SIGKILL");
  });
});
