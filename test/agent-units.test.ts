import { describe, expect, it } from "vitest";
import type { MachineAssignments } from "../agent/api.ts";
import { parseAgentArgs } from "../agent/args.ts";
import { backoffDelay, websocketUrl } from "../agent/connection.ts";
import { parseNvidiaSmi } from "../agent/metrics.ts";
import { numericId, type ReconcileMemory, reconcile } from "../agent/reconciler.ts";
import { type ContainerInfo, planPorts } from "../agent/runtime.ts";
import { parseDockerNetIo } from "../agent/runtimes/docker.ts";
import { parseProcNetDev } from "../agent/runtimes/process.ts";
import { assignment } from "./support/agent-fake-api.ts";

describe("nvidia-smi parsing", () => {
  it("reads one GPU a line, in column order", () => {
    const sample = "87, 64, 10240\n3, 41, 512\n";
    expect(parseNvidiaSmi(sample)).toEqual({
      gpuUtilization: [87, 3],
      gpuTemperatureC: [64, 41],
      gpuMemoryUsedMb: [10240, 512],
    });
  });

  it("leaves out a column with an unreadable value, keeping the others indexed by GPU", () => {
    expect(parseNvidiaSmi("50, [N/A], 100\n60, 70, 200")).toEqual({ gpuUtilization: [50, 60], gpuMemoryUsedMb: [100, 200] });
    expect(parseNvidiaSmi("")).toEqual({});
  });
});

describe("docker stats NetIO parsing", () => {
  it("reads received / sent in docker's decimal and binary units", () => {
    expect(parseDockerNetIo("1.2MB / 3.4kB\n")).toEqual({ rxBytes: 1_200_000n, txBytes: 3_400n });
    expect(parseDockerNetIo("0B / 0B")).toEqual({ rxBytes: 0n, txBytes: 0n });
    expect(parseDockerNetIo("2.5GB / 1KiB")).toEqual({ rxBytes: 2_500_000_000n, txBytes: 1024n });
  });

  it("refuses what it cannot read", () => {
    expect(() => parseDockerNetIo("--")).toThrow(/not a docker size/);
    expect(() => parseDockerNetIo("1.2XB / 0B")).toThrow(/unknown unit/);
  });
});

describe("/proc/<pid>/net/dev parsing", () => {
  it("sums every interface but loopback", () => {
    const sample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 5000      10    0    0    0     0          0         0     5000      10    0    0    0     0       0          0
  eth0: 1500      12    0    0    0     0          0         0      700       9    0    0    0     0       0          0
  eth1:  100       1    0    0    0     0          0         0       50       1    0    0    0     0       0          0
`;
    expect(parseProcNetDev(sample)).toEqual({ rxBytes: 1600n, txBytes: 750n });
  });
});

describe("reconnect backoff", () => {
  it("draws uniformly below min(cap, initial·2^attempt): full jitter", () => {
    const backoff = { initialMs: 100, maxMs: 1000 };
    expect(backoffDelay(0, backoff, () => 0.999)).toBe(99);
    expect(backoffDelay(3, backoff, () => 0.5)).toBe(400);
    expect(backoffDelay(30, backoff, () => 0.999)).toBe(999);
    expect(backoffDelay(5, backoff, () => 0)).toBe(0);
  });

  it("subscribes on the ws form of the API URL", () => {
    expect(websocketUrl("http://127.0.0.1:4000/graphql")).toBe("ws://127.0.0.1:4000/graphql");
    expect(websocketUrl("https://api.example/graphql")).toBe("wss://api.example/graphql");
  });
});

describe("identity ports", () => {
  it("maps ports from 70000 up to a free host port on both sides and names it in the env", async () => {
    const ports = [4000, 4001];
    const plan = await planPorts(
      [
        { containerPort: 8081, protocol: "tcp", hostPort: 40000 },
        { containerPort: 8082, protocol: "udp", hostPort: 40001 },
        { containerPort: 70000, protocol: "tcp", hostPort: null },
        { containerPort: 70001, protocol: "udp", hostPort: null },
      ],
      async () => ports.shift()!,
    );
    expect(plan).toEqual({
      publish: [
        { containerPort: 8081, protocol: "tcp", hostPort: 40000 },
        { containerPort: 8082, protocol: "udp", hostPort: 40001 },
        { containerPort: 4000, protocol: "tcp", hostPort: 4000 },
        { containerPort: 4001, protocol: "udp", hostPort: 4001 },
      ],
      env: { TCP_PORT_70000: "4000", UDP_PORT_70001: "4001" },
    });
  });
});

describe("reconcile", () => {
  const memory = (): ReconcileMemory => ({ reported: new Map(), failed: new Set(), graces: new Map(), keys: new Map() });
  const desired = (...instances: ReturnType<typeof assignment>[]): MachineAssignments => ({
    machineId: "Machine:12",
    revision: "5",
    selfTests: [],
    instances,
  });
  const container = (id: number, state: ContainerInfo["state"], detail?: string): ContainerInfo => ({
    label: `C.${id}`,
    instanceId: `Instance:${id}`,
    state,
    ports: [],
    recycleCount: 0,
    rebootCount: 0,
    ...(detail ? { detail } : {}),
  });

  it("launches what is missing, starts what it stopped, and removes what is no longer assigned", () => {
    const one = assignment(1);
    const two = assignment(2);
    const plans = reconcile(desired(one, two), [container(2, "stopped"), container(3, "running")], memory());
    expect(plans).toEqual([
      { label: "C.1", instanceId: "Instance:1", actions: [{ type: "launch", assignment: one }] },
      { label: "C.2", instanceId: "Instance:2", actions: [{ type: "start" }] },
      { label: "C.3", instanceId: "Instance:3", actions: [{ type: "remove", graceSeconds: 10 }] },
    ]);
  });

  it("reports each state once, and never restarts a container that ended by itself", () => {
    const m = memory();
    const state = desired(assignment(1), assignment(2), assignment(3, { desiredState: "STOPPED" }));
    const actual = [container(1, "running"), container(2, "exited", "exit code 3"), container(3, "stopped")];
    expect(reconcile(state, actual, m).map((p) => p.actions)).toEqual([
      [{ type: "keys", keys: [] }, { type: "report", status: "RUNNING", ports: [] }],
      [{ type: "report", status: "EXITED", message: "exit code 3" }],
      [{ type: "report", status: "STOPPED" }],
    ]);
    m.reported.set("Instance:1", "RUNNING").set("Instance:2", "EXITED").set("Instance:3", "STOPPED");
    m.keys.set("C.1", "");
    expect(reconcile(state, actual, m)).toEqual([]);
  });

  it("stops a running container with the assignment's grace period", () => {
    const plans = reconcile(desired(assignment(1, { desiredState: "STOPPED", preemptGraceSeconds: 7 })), [container(1, "running")], memory());
    expect(plans[0]!.actions).toEqual([{ type: "stop", graceSeconds: 7 }]);
  });

  it("restarts a container started at a lower rebootCount and recreates one created at a lower recycleCount", () => {
    const rebooted = assignment(1, { rebootCount: 2, preemptGraceSeconds: 3 });
    const recycled = assignment(2, { recycleCount: 1, rebootCount: 5 });
    const stoppedRecycled = assignment(3, { recycleCount: 1, desiredState: "STOPPED" });
    const current = assignment(4, { rebootCount: 1, recycleCount: 1 });
    const containers = [
      { ...container(1, "running"), rebootCount: 1 },
      container(2, "running"),
      container(3, "stopped"),
      { ...container(4, "running"), rebootCount: 1, recycleCount: 1 },
    ];
    const reported = memory();
    reported.reported.set("Instance:4", "RUNNING");
    reported.keys.set("C.4", "");
    expect(reconcile(desired(rebooted, recycled, stoppedRecycled, current), containers, reported)).toEqual([
      { label: "C.1", instanceId: "Instance:1", actions: [{ type: "reboot", graceSeconds: 3, rebootCount: 2 }] },
      { label: "C.2", instanceId: "Instance:2", actions: [{ type: "recycle", assignment: recycled }] },
      { label: "C.3", instanceId: "Instance:3", actions: [{ type: "remove", graceSeconds: 1 }] },
    ]);
  });

  it("does not retry a failed launch at the same revision; removes with the remembered grace", () => {
    const m = memory();
    m.failed.add("Instance:1");
    m.graces.set("C.9", 3);
    expect(reconcile(desired(assignment(1)), [container(9, "running")], m)).toEqual([
      { label: "C.9", instanceId: "Instance:9", actions: [{ type: "remove", graceSeconds: 3 }] },
    ]);
  });

  it("starts a container on GPUs another one still uses only once that one has stopped", () => {
    const preempted = assignment(1, { desiredState: "STOPPED", gpuIndices: [] });
    const winner = assignment(2, { gpuIndices: [2, 3] });
    const stillRunning = { ...container(1, "running"), gpuIndices: [3] };
    expect(reconcile(desired(preempted, winner), [stillRunning], memory())).toEqual([
      { label: "C.1", instanceId: "Instance:1", actions: [{ type: "stop", graceSeconds: 1 }] },
    ]);
    expect(reconcile(desired(preempted, winner), [{ ...stillRunning, state: "stopped" }], memory()).map((p) => p.actions)).toEqual([
      [{ type: "report", status: "STOPPED" }],
      [{ type: "launch", assignment: winner }],
    ]);
  });

  it("makes a stopped container again when it restarts on other GPUs, and simply starts it on the same ones", () => {
    const restarted = assignment(1, { gpuIndices: [0, 1] });
    expect(reconcile(desired(restarted), [{ ...container(1, "stopped"), gpuIndices: [4, 5] }], memory())[0]!.actions).toEqual([
      { type: "recycle", assignment: restarted },
    ]);
    expect(reconcile(desired(restarted), [{ ...container(1, "stopped"), gpuIndices: [0, 1] }], memory())[0]!.actions).toEqual([{ type: "start" }]);
  });

  it("reads the number of a readable global id", () => {
    expect(numericId("Instance:34")).toBe("34");
  });
});

describe("agent arguments", () => {
  it("takes flags, falls back to AGENT_* variables, and normalises the machine id", () => {
    expect(parseAgentArgs(["--api", "http://127.0.0.1:4000/graphql", "--machine", "12"], { AGENT_API_KEY: "k" })).toMatchObject({
      api: "http://127.0.0.1:4000/graphql",
      key: "k",
      machine: "Machine:12",
      heartbeatSeconds: 15,
    });
    expect(
      parseAgentArgs(["--runtime", "process", "--heartbeat-seconds", "2"], {
        AGENT_API_URL: "https://api.example/graphql",
        AGENT_API_KEY: "k",
        AGENT_MACHINE_ID: "Machine:3",
      }),
    ).toMatchObject({ runtime: "process", heartbeatSeconds: 2, machine: "Machine:3" });
  });

  it("runs GPU rentals on a GPU-less engine only when told to (--allow-gpuless or AGENT_ALLOW_GPULESS)", () => {
    const base = ["--api", "http://127.0.0.1:4000/graphql", "--key", "k", "--machine", "12"];
    expect(parseAgentArgs(base, {})).toMatchObject({ allowGpuless: false });
    expect(parseAgentArgs(base, { AGENT_ALLOW_GPULESS: "0" })).toMatchObject({ allowGpuless: false });
    expect(parseAgentArgs([...base, "--allow-gpuless"], {})).toMatchObject({ allowGpuless: true });
    expect(parseAgentArgs(base, { AGENT_ALLOW_GPULESS: "1" })).toMatchObject({ allowGpuless: true });
  });

  it("names every missing or bad argument", () => {
    expect(() => parseAgentArgs(["--api", "ftp://x", "--runtime", "vm", "--heartbeat-seconds=0"], {})).toThrow(
      /--api must be an http\(s\) URL[\s\S]*--key \(or AGENT_API_KEY\) is required[\s\S]*--machine[\s\S]*--runtime[\s\S]*--heartbeat-seconds/,
    );
  });
});
