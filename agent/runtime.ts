import { rename, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { BUNDLED_SSHD, BUNDLED_SSHD_CONFIG } from "./runtimes/ssh-bundle.ts";

/**
 * Where instances run. The reconciler only sees containers through this interface; each runtime
 * labels what it creates with the container label so a restarted agent finds its containers again.
 */

/**
 * created: made but never started; running; stopped: stopped by the agent as asked;
 * exited: ended by itself (or vanished while the agent was away).
 */
export type ContainerState = "created" | "running" | "stopped" | "exited";

/** A published port: the container's port and the host port it is reached at. */
export interface PublishedPort {
  containerPort: number;
  protocol: "tcp" | "udp";
  hostPort: number;
}

export interface ContainerInfo {
  /** The container label, "C.34": the runtime's name for it. */
  label: string;
  instanceId: string;
  state: ContainerState;
  /** Why it is not running, when the runtime knows (exit code, signal). */
  detail?: string;
  /** Its port mappings as the runtime has them (read back, so a restarted agent reports them unchanged). */
  ports: PublishedPort[];
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
  ports: PublishedPort[];
  /** Public keys that may log in as root (SSH mode). */
  sshKeys: string[];
  /** JUPYTER mode: the server's token and base URL path. */
  jupyterToken: string | null;
  jupyterBasePath: string;
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

/** Why a launch cannot work, as the agent reports it (the API checks the claim before sparing the machine). */
export type LaunchFailureCause = "IMAGE_UNAVAILABLE" | "NO_GPU_RUNTIME";

/**
 * A launch that cannot work: reported FAILED with its message, and with the cause the agent names
 * when the API may find it not the host's fault (none: the host's, e.g. no sshd to provide).
 */
export class LaunchRefusedError extends Error {
  constructor(
    message: string,
    readonly failureCause?: LaunchFailureCause,
  ) {
    super(message);
    this.name = "LaunchRefusedError";
  }
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
  /** Replaces the keys that may log in to the container over SSH; a running sshd uses them at the next login. */
  setSshKeys(label: string, keys: string[]): Promise<void>;
  /** Starts a throwaway container that runs to completion (the self-test); what ran, or throws why it could not. */
  startTestContainer(): Promise<string>;
  /** Whether it can hand GPUs to containers (isolated, each its own). */
  containerGpus(): Promise<boolean>;
  /** The last `tail` lines of its stdout and stderr (none when it does not exist), and where they end. */
  logs(label: string, tail: number): Promise<LogTail>;
  /** Calls `onLines` with the lines written after `cursor` (from `logs`), as they come, until stopped. */
  followLogs(label: string, cursor: string, onLines: (lines: string[]) => void): LogFollower;
}

/** Writes an authorized_keys file whole and renames it into place: sshd never reads half a file. */
export async function writeAuthorizedKeys(file: string, keys: string[]): Promise<void> {
  await writeFile(`${file}.new`, keys.map((key) => `${key}\n`).join(""), { mode: 0o600 });
  await rename(`${file}.new`, file);
}

/** Where a container finds its authorized_keys (the runtime mounts or writes it there). */
export const SSH_KEYS_FILE = "/.gm/ssh/authorized_keys";

/** Environment variables passed on into SSH sessions (the platform's own; the rest stays the workload's). */
const SESSION_ENV = ["CONTAINER_ID", "CONTAINER_LABEL", "CONTAINER_API_KEY", "API_URL"];

/** The host key of a container's SSH server when the agent provides the server: beside its authorized_keys. */
export const SSH_HOST_KEY_FILE = "/.gm/ssh/ssh_host_ed25519_key";

/** The image's own sshd, by the path a shell finds it at (empty when there is none). */
export const IMAGE_SSHD = "command -v sshd || { test -x /usr/sbin/sshd && echo /usr/sbin/sshd; }";

/**
 * Starts an OpenSSH server on `port` (22 in a container), key logins only, keys read from `keysFile`
 * at every login (so attached and detached keys apply at once). In a container it is the image's sshd
 * with its own host keys; an image without one runs the host's OpenSSH bundle when the agent mounted
 * it (with the instance's host key from the agent), and otherwise still runs: the script says so in
 * the container's output and goes on. `hostKeyDir` (the process runtime): a per-instance host key and
 * sshd's log there (the instance's output stays its own), sshd kept in the foreground of the
 * instance's process group so that stopping the instance stops it.
 */
export function sshdScript(port: number, keysFile: string, hostKeyDir?: string): string {
  const setEnv = SESSION_ENV.map((name) => `${name}=$${name}`).join(" ");
  const options = [
    `-p ${port}`,
    `-o AuthorizedKeysFile=${keysFile}`,
    "-o PermitRootLogin=prohibit-password",
    "-o PasswordAuthentication=no",
    "-o KbdInteractiveAuthentication=no",
    "-o UsePAM=no",
    `-o "SetEnv=${setEnv}"`,
    ...(hostKeyDir ? [`-h ${hostKeyDir}/ssh_host_ed25519_key`, "-o StrictModes=no", `-o PidFile=${hostKeyDir}/sshd.pid`, `-E ${hostKeyDir}/sshd.log`, "-D"] : []),
  ].join(" ");
  const noSshd = '  echo "this image has no OpenSSH server (sshd): SSH logins are not available" >&2';
  if (hostKeyDir) {
    return [
      `SSHD=$(${IMAGE_SSHD})`,
      'if [ -n "$SSHD" ]; then',
      // sshd running as root wants its privilege separation directory.
      `  mkdir -p /run/sshd 2>/dev/null; test -f ${hostKeyDir}/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f ${hostKeyDir}/ssh_host_ed25519_key`,
      `  "$SSHD" ${options} &`,
      "else",
      noSshd,
      "fi",
    ].join("\n");
  }
  return [
    `SSHD=$(${IMAGE_SSHD})`,
    // sshd running as root wants its privilege separation directory (and its user, below).
    "mkdir -p /run/sshd && chmod 0755 /run/sshd",
    'if [ -n "$SSHD" ]; then',
    "  ssh-keygen -A >/dev/null",
    `  "$SSHD" ${options} || echo "sshd did not start" >&2`,
    `elif [ -x ${BUNDLED_SSHD} ]; then`,
    "  grep -q '^sshd:' /etc/passwd 2>/dev/null || echo 'sshd:x:74:65534:sshd privilege separation:/run/sshd:/bin/false' >>/etc/passwd",
    `  ${BUNDLED_SSHD} -f ${BUNDLED_SSHD_CONFIG} -h ${SSH_HOST_KEY_FILE} ${options} || echo "sshd did not start" >&2`,
    "else",
    noSshd,
    "fi",
  ].join("\n");
}

/**
 * Starts Jupyter with the instance's token (JUPYTER_TOKEN) under its base path, in the background:
 * in a container on 8080, serving /; `own` (the process runtime): on the instance's mapped port,
 * serving the instance's directory, with its log there (the instance's output stays its own).
 */
export function jupyterScript(basePath: string, own?: { port: number; dir: string }): string {
  const root = own?.dir ?? "${JUPYTER_DIR:-/}";
  const options = `--ip=0.0.0.0 --port=${own?.port ?? 8080} --no-browser --allow-root --ServerApp.base_url=${basePath} --ServerApp.allow_remote_access=True --ServerApp.root_dir=${root}`;
  const log = own ? ` >>${own.dir}/jupyter.log 2>&1` : "";
  return [
    // The first Python that has it: PATH's, else the system's (a host's PATH may lead to another Python first).
    "PY=$(for py in python3 /usr/bin/python3; do \"$py\" -c 'import jupyter_server' 2>/dev/null && echo \"$py\" && break; done)",
    'if [ -n "$PY" ]; then',
    `  "$PY" -m jupyter_server ${options}${log} &`,
    "elif command -v jupyter >/dev/null; then",
    `  jupyter notebook ${options.replaceAll("ServerApp", "NotebookApp")}${log} &`,
    "else",
    `  echo "${own ? "this host has no Jupyter server (Debian: python3-jupyter-server)" : "this image has no Jupyter server"}" >&2`,
    "fi",
  ].join("\n");
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
 * The shell script of an SSH or JUPYTER instance: its server (sshd or Jupyter), its onstart, then it
 * stays up (the instance lives until stopped, whatever the onstart does).
 */
export function workloadScript(spec: Pick<ContainerSpec, "onstart" | "launchMode" | "jupyterBasePath">, server = serverScript(spec)): string {
  const onstart = spec.onstart?.trim();
  return [server, onstart, "exec sleep infinity"].filter(Boolean).join("\n");
}

function serverScript(spec: Pick<ContainerSpec, "launchMode" | "jupyterBasePath">): string {
  if (spec.launchMode === "SSH") return sshdScript(22, SSH_KEYS_FILE);
  if (spec.launchMode === "JUPYTER") return jupyterScript(spec.jupyterBasePath);
  return "";
}

export interface AssignedPort {
  containerPort: number;
  protocol: string;
  hostPort: number | null;
}

export interface PortPlan {
  /** Every mapping, identity ports given a free host port P as P:P. */
  publish: PublishedPort[];
  /** TCP_PORT_70000=P (UDP_PORT_… for udp) so the workload knows which port it got. */
  env: Record<string, string>;
}

/** The API's mappings, with each identity port (70000 and above, no host port) given a free host port mapped to itself. */
export async function planPorts(ports: AssignedPort[], freePort: () => Promise<number> = findFreePort): Promise<PortPlan> {
  const publish: PublishedPort[] = [];
  const env: Record<string, string> = {};
  for (const port of ports) {
    const protocol = port.protocol === "udp" ? "udp" : "tcp";
    if (port.hostPort !== null) {
      publish.push({ containerPort: port.containerPort, protocol, hostPort: port.hostPort });
      continue;
    }
    const free = await freePort();
    publish.push({ containerPort: free, protocol, hostPort: free });
    env[`${protocol.toUpperCase()}_PORT_${port.containerPort}`] = String(free);
  }
  return { publish, env };
}

export function findFreePort(): Promise<number> {
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
