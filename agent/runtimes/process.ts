import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { run } from "../exec.ts";
import {
  type ContainerInfo,
  type ContainerSpec,
  gpuEnv,
  lastLines,
  LineSplitter,
  type LogFollower,
  type LogTail,
  MAX_LOG_BYTES,
  type NetIo,
  type Runtime,
  jupyterScript,
  sshdScript,
  workloadScript,
  writeAuthorizedKeys,
} from "../runtime.ts";

/**
 * Runs each instance as a local process group (for tests and the demo; no isolation, no image).
 * SSH and JUPYTER instances run their onstart and stay up, as the docker runtime's do; an ENTRYPOINT
 * instance runs its onstart in place of the image's entrypoint, with its args as the script's
 * arguments; without an onstart the args are the command, and without either it serves until stopped.
 * Recycling removes the directory, so what the workload wrote there (its working directory) is gone.
 *
 * State lives in `<dir>/<label>/`: spec.json (mode 0600: the env holds the container's key; it also
 * records the GPU indices and the CPU and RAM share, which nothing enforces here), pid (the
 * process group), stopped (the agent stopped it as asked), exit.json (how the leader ended). A
 * restarted agent finds a still-running group by its pid file (the leader's pid and start time); a
 * group that vanished meanwhile counts as exited.
 */
const SERVE_UNTIL_STOPPED = "exec sleep infinity";

export class ProcessRuntime implements Runtime {
  readonly name = "process" as const;
  /** Per label, settles once this agent's child has ended and its exit.json is written. */
  private readonly exits = new Map<string, Promise<void>>();

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  private path(label: string, file = "") {
    return join(this.dir, label, file);
  }

  /** A child process (this runtime's container) that runs to completion. */
  async startTestContainer(): Promise<string> {
    const ran = await run("sh", ["-c", "echo started"]);
    if (ran.code !== 0 || ran.stdout.trim() !== "started") throw new Error(`a process could not be started (exit ${ran.code}): ${ran.stderr.trim()}`);
    return "started and ran a process (the process runtime's container)";
  }

  async list(): Promise<ContainerInfo[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const labels = await readdir(this.dir);
    const found: ContainerInfo[] = [];
    for (const label of labels) {
      const spec = await this.readSpec(label);
      if (!spec) continue;
      // None recorded (made before GPUs were assigned): unknown, as in the docker runtime.
      const gpus = spec.gpuIndices?.length ? { gpuIndices: spec.gpuIndices } : {};
      found.push({
        label,
        instanceId: spec.instanceId,
        recycleCount: spec.recycleCount ?? 0,
        rebootCount: spec.rebootCount ?? 0,
        ...gpus,
        ...(await this.inspect(label)),
        ports: spec.ports,
      });
    }
    return found;
  }

  private async readSpec(label: string): Promise<ContainerSpec | null> {
    const text = await readFile(this.path(label, "spec.json"), "utf8").catch(() => null);
    return text === null ? null : (JSON.parse(text) as ContainerSpec);
  }

  /** The pid file: the group leader's pid and, after it, its start time (see groupRuns). */
  private async readPidFile(label: string): Promise<{ pid: number; startTime: string | null } | null> {
    const text = await readFile(this.path(label, "pid"), "utf8").catch(() => null);
    if (text === null) return null;
    const [pid, startTime] = text.trim().split(" ");
    return { pid: Number(pid), startTime: startTime ?? null };
  }

  private async readPid(label: string): Promise<number | null> {
    return (await this.readPidFile(label))?.pid ?? null;
  }

  /** Whether the group this label's pid file names still runs. */
  private async runs(label: string, pid: number): Promise<boolean> {
    const recorded = await this.readPidFile(label);
    return groupRuns(pid, label, recorded?.pid === pid ? recorded.startTime : null);
  }

  private async exists(label: string, file: string) {
    return (await readFile(this.path(label, file)).catch(() => null)) !== null;
  }

  private async inspect(label: string): Promise<Pick<ContainerInfo, "state" | "detail">> {
    const pid = await this.readPid(label);
    if (pid === null) return { state: "created" };
    if (await this.runs(label, pid)) return { state: "running" };
    if (await this.exists(label, "stopped")) return { state: "stopped" };
    // Our own child: its exit status may be a moment behind the group's end.
    await Promise.race([this.exits.get(label), sleep(1000)]);
    const exit = await readFile(this.path(label, "exit.json"), "utf8").catch(() => null);
    const { code, signal } = exit ? (JSON.parse(exit) as { code: number | null; signal: string | null }) : { code: null, signal: null };
    const detail = code !== null ? `exit code ${code}` : signal ? `killed by ${signal}` : "ended while the agent was away";
    return { state: "exited", detail };
  }

  async create(spec: ContainerSpec): Promise<void> {
    await mkdir(this.path(spec.label), { recursive: true, mode: 0o700 });
    await writeFile(this.path(spec.label, "spec.json"), JSON.stringify(spec), { mode: 0o600 });
    await this.setSshKeys(spec.label, spec.sshKeys);
  }

  async start(label: string): Promise<void> {
    const spec = await this.readSpec(label);
    if (!spec) throw new Error(`no container ${label}`);
    const previous = await this.readPid(label);
    if (previous !== null && (await this.runs(label, previous))) return;
    await rm(this.path(label, "stopped"), { force: true });
    await rm(this.path(label, "exit.json"), { force: true });
    const output = openSync(this.path(label, "output.log"), "a", 0o600);
    const entrypoint = spec.onstart?.trim() || (spec.args?.length ? 'exec "$@"' : SERVE_UNTIL_STOPPED);
    const argv = spec.launchMode === "ENTRYPOINT" ? ["-c", entrypoint, "sh", ...(spec.args ?? [])] : ["-c", this.script(spec)];
    const child = spawn("sh", argv, {
      cwd: this.path(label),
      // Only what a shell needs from the agent's environment: never the agent's own key.
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/",
        LANG: process.env.LANG ?? "C.UTF-8",
        ...spec.env,
        // No isolation here: the host's numbering is the process's.
        ...gpuEnv(spec.gpuIndices),
      },
      detached: true,
      stdio: ["ignore", output, output],
    });
    closeSync(output);
    if (child.pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once("error", resolve));
      throw new Error(`could not start ${label}: ${error.message}`);
    }
    const pid = child.pid;
    // Written at once: an agent killed right after this still finds the group on restart. With the
    // leader's start time, which is there from its first instant (its environment is not: read
    // right after the spawn, /proc/<pid>/environ can still be empty).
    const pidWritten = startTimeOf(pid).then((startTime) => writeFile(this.path(label, "pid"), startTime ? `${pid} ${startTime}` : String(pid)));
    const recorded = new Promise<void>((resolve) =>
      child.once("exit", async (code, signal) => {
        await pidWritten.catch(() => {});
        // Unless a later start has replaced this run meanwhile.
        if ((await this.readPid(label)) === pid) {
          await writeFile(this.path(label, "exit.json"), JSON.stringify({ code, signal })).catch(() => {});
        }
        resolve();
      }),
    );
    this.exits.set(label, recorded);
    await pidWritten;
    child.unref();
    this.logger.info({ label, pid }, "process started");
  }

  /**
   * Servers of their own in the instance's process group: SSH mode, a real sshd on the port mapped
   * to 22; JUPYTER mode, the host's Jupyter server on the port mapped to 8080.
   */
  private script(spec: ContainerSpec): string {
    const mapped = (containerPort: number) => spec.ports.find((port) => port.containerPort === containerPort && port.protocol === "tcp");
    const ssh = mapped(22);
    const jupyter = mapped(8080);
    let server = "";
    if (spec.launchMode === "SSH" && ssh) server = sshdScript(ssh.hostPort, this.path(spec.label, "authorized_keys"), this.path(spec.label));
    if (spec.launchMode === "JUPYTER" && jupyter) server = jupyterScript(spec.jupyterBasePath, { port: jupyter.hostPort, dir: this.path(spec.label) });
    return workloadScript(spec, server);
  }

  /** Processes share the host's devices: no GPU is handed out to one. */
  async containerGpus(): Promise<boolean> {
    return false;
  }

  async setSshKeys(label: string, keys: string[]): Promise<void> {
    await mkdir(this.path(label), { recursive: true, mode: 0o700 });
    await writeAuthorizedKeys(this.path(label, "authorized_keys"), keys);
  }

  async restart(label: string, graceSeconds: number, rebootCount: number): Promise<void> {
    const spec = await this.readSpec(label);
    if (!spec) throw new Error(`no container ${label}`);
    await this.stop(label, graceSeconds);
    await this.exits.get(label);
    await writeFile(this.path(label, "spec.json"), JSON.stringify({ ...spec, rebootCount }), { mode: 0o600 });
    await this.start(label);
  }

  async stop(label: string, graceSeconds: number): Promise<void> {
    const pid = await this.readPid(label);
    if (pid === null) return;
    await writeFile(this.path(label, "stopped"), new Date().toISOString());
    if (!(await this.runs(label, pid))) return;
    signalGroup(pid, "SIGTERM");
    const deadline = Date.now() + graceSeconds * 1000;
    while (Date.now() < deadline) {
      if (!(await this.runs(label, pid))) return;
      await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
    }
    if (await this.runs(label, pid)) {
      this.logger.info({ label, graceSeconds }, "grace period over: SIGKILL");
      signalGroup(pid, "SIGKILL");
      while (await this.runs(label, pid)) await sleep(20);
    }
  }

  async remove(label: string, graceSeconds: number): Promise<void> {
    await this.stop(label, graceSeconds);
    await this.exits.get(label);
    this.exits.delete(label);
    await rm(this.path(label), { recursive: true, force: true, maxRetries: 3 });
  }

  /** From output.log, where stdout and stderr go. The cursor is the byte offset after the last whole line. */
  async logs(label: string, tail: number): Promise<LogTail> {
    const { start, bytes } = await readFrom(this.path(label, "output.log"), 0);
    const splitter = new LineSplitter();
    const lines = splitter.push(new StringDecoder("utf8").write(bytes));
    // Reading from the middle of the file: its first line is cut.
    if (start > 0) lines.shift();
    return { lines: lastLines(lines, tail), cursor: String(start + bytes.length - Buffer.byteLength(splitter.rest)) };
  }

  /** Polls output.log; a shorter file is a new one (the container was recycled), read from its start. */
  followLogs(label: string, cursor: string, onLines: (lines: string[]) => void): LogFollower {
    const file = this.path(label, "output.log");
    let stopped = false;
    let wake: (() => void) | undefined;
    const ended = (async () => {
      let offset = Number(cursor) || 0;
      let splitter = new LineSplitter();
      let decoder = new StringDecoder("utf8");
      while (!stopped) {
        const size = (await stat(file).catch(() => null))?.size ?? 0;
        if (size < offset) {
          offset = 0;
          splitter = new LineSplitter();
          decoder = new StringDecoder("utf8");
        }
        if (size > offset) {
          const { start, bytes } = await readFrom(file, offset);
          offset = start + bytes.length;
          const lines = splitter.push(decoder.write(bytes));
          if (lines.length > 0) onLines(lines);
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, FOLLOW_POLL_MS);
        });
      }
    })();
    return {
      ended,
      stop: () => {
        stopped = true;
        wake?.();
      },
    };
  }

  /**
   * A process in the host's network namespace has no counters of its own (the host's would bill
   * the client for all the host's traffic): 0/0 unless it runs in a namespace of its own.
   */
  async netIo(label: string): Promise<NetIo> {
    const pid = await this.readPid(label);
    if (pid === null) return { rxBytes: 0n, txBytes: 0n };
    const [own, theirs] = await Promise.all([
      readlink("/proc/self/ns/net").catch(() => null),
      readlink(`/proc/${pid}/ns/net`).catch(() => null),
    ]);
    if (!theirs || own === theirs) return { rxBytes: 0n, txBytes: 0n };
    const text = await readFile(`/proc/${pid}/net/dev`, "utf8").catch(() => "");
    return parseProcNetDev(text);
  }
}

/** Bytes of `file` from `start` (at most MAX_LOG_BYTES, the latest ones when there are more). */
async function readFrom(file: string, start: number): Promise<{ start: number; bytes: Buffer }> {
  const handle = await open(file, "r").catch(() => null);
  if (!handle) return { start: 0, bytes: Buffer.alloc(0) };
  try {
    const { size } = await handle.stat();
    const from = Math.max(start, size - MAX_LOG_BYTES);
    const bytes = Buffer.alloc(Math.max(0, size - from));
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, from);
    return { start: from, bytes: bytes.subarray(0, bytesRead) };
  } finally {
    await handle.close();
  }
}

/** How often a follower looks for new output. */
const FOLLOW_POLL_MS = 200;

function signalGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** A process's start time (clock ticks after boot, field 22 of /proc/<pid>/stat); null when it is gone. */
async function startTimeOf(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat === null ? null : (statFields(stat)[19] ?? null);
}

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces): [0] is field 3, the state. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * Whether the process group led by `pid` still has a member. A pid the kernel reused for an unrelated
 * process is told apart by the leader's start time, recorded when it was spawned; for a pid file
 * written without one, by the CONTAINER_LABEL in the leader's environment.
 */
async function groupRuns(pid: number, label: string, startTime: string | null): Promise<boolean> {
  try {
    process.kill(-pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  // Leader gone but members alive: a group id is not reused while the group has members.
  if (stat === null) return true;
  // A zombie leader not yet reaped: the group runs only if it has other members.
  const fields = statFields(stat);
  if (fields[0] === "Z") return otherMembers(pid);
  if (startTime !== null) return fields[19] === startTime;
  const environ = await readFile(`/proc/${pid}/environ`, "utf8").catch(() => null);
  return environ === null || environ.split("\0").includes(`CONTAINER_LABEL=${label}`);
}

async function otherMembers(pgid: number): Promise<boolean> {
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === pgid) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (Number(statFields(stat)[2]) === pgid) return true;
  }
  return false;
}

/** Sums /proc/<pid>/net/dev over every interface but loopback. */
export function parseProcNetDev(text: string): NetIo {
  let rxBytes = 0n;
  let txBytes = 0n;
  for (const line of text.split("\n").slice(2)) {
    const [name, counters] = line.split(":");
    if (!counters || name!.trim() === "lo") continue;
    const fields = counters.trim().split(/\s+/);
    rxBytes += BigInt(fields[0] ?? 0);
    txBytes += BigInt(fields[8] ?? 0);
  }
  return { rxBytes, txBytes };
}
