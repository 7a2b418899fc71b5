import { createServer } from "node:net";

/**
 * Where instances run. The reconciler only sees containers through this interface; each runtime
 * labels what it creates with the container label so a restarted agent finds its containers again.
 */

/**
 * created: made but never started; running; stopped: stopped by the agent as asked;
 * exited: ended by itself (or vanished while the agent was away).
 */
export type ContainerState = "created" | "running" | "stopped" | "exited";

export interface ContainerInfo {
  /** The container label, "C.34": the runtime's name for it. */
  label: string;
  instanceId: string;
  state: ContainerState;
  /** Why it is not running, when the runtime knows (exit code, signal). */
  detail?: string;
  /** The assignment's recycleCount it was created at, and the rebootCount it was last (re)started at. */
  recycleCount: number;
  rebootCount: number;
  /** The machine's GPUs it was created with, when the runtime recorded them. */
  gpuIndices?: number[];
}

export interface ContainerSpec {
  label: string;
  instanceId: string;
  image: string;
  launchMode: "SSH" | "JUPYTER" | "ENTRYPOINT";
  onstart: string | null;
  /** The full container environment (the assignment's env plus CONTAINER_* and API_URL). */
  env: Record<string, string>;
  ports: string[];
  /** ENTRYPOINT mode: arguments to the entrypoint. */
  args: string[];
  /** Credentials to pull a private image with. */
  registryAuth?: { registry: string; username: string; password: string } | null;
  diskGb: number;
  numGpus: number;
  recycleCount: number;
  rebootCount: number;
  /** The machine's GPUs (0-based) it gets, and only those. */
  gpuIndices: number[];
  /** Its share of the machine's CPU cores and RAM: limits where the runtime can enforce them. */
  cpuCores: number;
  memoryMb: number;
}

export interface NetIo {
  rxBytes: bigint;
  txBytes: bigint;
}

export interface Runtime {
  readonly name: "docker" | "process";
  /** Every container this agent manages, found by its labels. */
  list(): Promise<ContainerInfo[]>;
  /** Makes the container without starting it (pulls the image first where there is one). */
  create(spec: ContainerSpec): Promise<void>;
  start(label: string): Promise<void>;
  /** Stops it (with the grace period) if it runs and starts it again, keeping its data; records `rebootCount`. */
  restart(label: string, graceSeconds: number, rebootCount: number): Promise<void>;
  /** SIGTERM, then SIGKILL once `graceSeconds` have passed; resolves when it no longer runs. */
  stop(label: string, graceSeconds: number): Promise<void>;
  /** Stops it (with the grace period) if it runs, then deletes it. */
  remove(label: string, graceSeconds: number): Promise<void>;
  /** Bandwidth counters since the container started. */
  netIo(label: string): Promise<NetIo>;
  /** The last `tail` lines of its stdout and stderr (none when it does not exist), and where they end. */
  logs(label: string, tail: number): Promise<LogTail>;
  /** Calls `onLines` with the lines written after `cursor` (from `logs`), as they come, until stopped. */
  followLogs(label: string, cursor: string, onLines: (lines: string[]) => void): LogFollower;
}

export interface LogTail {
  lines: string[];
  /** Opaque to all but the runtime: where the next line will start. */
  cursor: string;
}

export interface LogFollower {
  /** Settles when following has ended (stopped, or the container is gone). */
  ended: Promise<void>;
  stop(): void;
}

/** Bytes of log lines in one answer: the API takes at most this much an upload. */
export const MAX_LOG_BYTES = 1_000_000;
/** A longer line is cut here, so that one line never fills an answer. */
export const MAX_LOG_LINE_BYTES = 16_384;

/** Splits text that arrives in chunks into lines (\n, \r\n or \r), holding back a partial last line. */
export class LineSplitter {
  private partial = "";

  /** The unfinished last line so far. */
  get rest(): string {
    return this.partial;
  }

  push(chunk: string): string[] {
    const lines = (this.partial + chunk).split(/\r?\n|\r/);
    this.partial = lines.pop() ?? "";
    return lines.map(clipLine);
  }
}

function clipLine(line: string): string {
  return Buffer.byteLength(line) <= MAX_LOG_LINE_BYTES ? line : `${Buffer.from(line).subarray(0, MAX_LOG_LINE_BYTES).toString()}…`;
}

/** The last `tail` of `lines` that fit in MAX_LOG_BYTES together. */
export function lastLines(lines: string[], tail: number): string[] {
  const kept: string[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0 && kept.length < tail; i--) {
    const line = clipLine(lines[i]!);
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > MAX_LOG_BYTES) break;
    kept.push(line);
  }
  return kept.reverse();
}

/**
 * The variables that name a container's GPUs, as host indices ("2,3"): CUDA and the NVIDIA
 * container runtime read them. No GPUs: "void" (the NVIDIA runtime's "none at all"), never all.
 */
export function gpuEnv(gpuIndices: readonly number[]): { CUDA_VISIBLE_DEVICES: string; NVIDIA_VISIBLE_DEVICES: string } {
  const list = gpuIndices.join(",");
  return { CUDA_VISIBLE_DEVICES: list, NVIDIA_VISIBLE_DEVICES: list || "void" };
}

/**
 * The shell script of an SSH or JUPYTER instance: its onstart, then it stays up (the instance lives
 * until stopped, whatever the onstart does).
 */
export function workloadScript(spec: Pick<ContainerSpec, "onstart">): string {
  const onstart = spec.onstart?.trim();
  return onstart ? `${onstart}\nexec sleep infinity` : "exec sleep infinity";
}

/** Port numbers from this one up are virtual: they ask for an identity mapping (the same port outside and inside). */
export const IDENTITY_PORT_BASE = 70_000;

export interface PortPlan {
  /** `-p` values: the requested mappings, with each identity port replaced by a free host port P as "P:P". */
  publish: string[];
  /** TCP_PORT_70000=P (UDP_PORT_… for udp) so the workload knows which port it got. */
  env: Record<string, string>;
}

/**
 * Resolves identity ports ("70000:70000", "70001/udp") to free host ports mapped to themselves;
 * other mappings pass through as written.
 */
export async function planPorts(ports: string[], freePort: () => Promise<number> = findFreePort): Promise<PortPlan> {
  const publish: string[] = [];
  const env: Record<string, string> = {};
  for (const spec of ports) {
    const match = /^(\d+)(?::(\d+))?(?:\/(tcp|udp))?$/.exec(spec);
    const first = match ? Number(match[1]) : 0;
    if (!match || first < IDENTITY_PORT_BASE) {
      publish.push(spec);
      continue;
    }
    const protocol = match[3] ?? "tcp";
    const port = await freePort();
    publish.push(`${port}:${port}${protocol === "udp" ? "/udp" : ""}`);
    env[`${protocol.toUpperCase()}_PORT_${first}`] = String(port);
  }
  return { publish, env };
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
