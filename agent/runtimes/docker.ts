import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import type { Logger } from "pino";
import { type RunResult, run, runOk } from "../exec.ts";
import { ensureHostKey, findHostSshd, prepareSshBundle, SSH_BUNDLE_DIR } from "./ssh-bundle.ts";
import {
  type ContainerInfo,
  type ContainerSpec,
  type ContainerState,
  gpuEnv,
  IMAGE_SSHD,
  LaunchRefusedError,
  lastLines,
  LineSplitter,
  type LogFollower,
  type LogTail,
  type NetIo,
  type PublishedPort,
  type Runtime,
  SSH_HOST_KEY_FILE,
  SSH_KEYS_FILE,
  workloadScript,
  writeAuthorizedKeys,
} from "../runtime.ts";

/** Docker labels on every container the agent makes: how a restarted agent finds them. */
export const LABEL_KEY = "gpu-marketplace.container-label";
/** Which agent made it (a hash of its state directory): agents sharing an engine never touch each other's containers. */
export const AGENT_KEY = "gpu-marketplace.agent";
export const INSTANCE_KEY = "gpu-marketplace.instance-id";
/** The assignment's recycleCount and rebootCount when the container was created. */
export const RECYCLE_KEY = "gpu-marketplace.recycle-count";
export const REBOOT_KEY = "gpu-marketplace.reboot-count";
/** The machine's GPUs the container was made with ("2,3"); "none" in GPU_ISOLATION_KEY when the engine cannot isolate them. */
export const GPUS_KEY = "gpu-marketplace.gpus";
export const GPU_ISOLATION_KEY = "gpu-marketplace.gpu-isolation";

/** The AGENT_KEY of the agent whose state directory is `dir`. */
export const agentScope = (dir: string) => createHash("sha256").update(resolve(dir)).digest("hex").slice(0, 8);

/** What the engine can give a container: GPUs (an NVIDIA runtime is installed) and how many CPUs it has. */
export interface EngineCapabilities {
  gpus: boolean;
  cpus: number;
}

/**
 * The docker CLI as the runtime. Containers are named by their label and the agent's scope
 * ("C.34-1a2b3c4d": names are unique per engine, and several agents may share one). Docker does not
 * remember who stopped a container, so `<dir>/stopped/<label>` marks those the agent stopped as asked,
 * and labels cannot change after creation, so `<dir>/reboots/<label>` holds the rebootCount of the
 * container's last restart.
 */
export class DockerRuntime implements Runtime {
  readonly name = "docker" as const;

  /**
   * `hostSshd`: the OpenSSH server to provide to images without one (default: the host's `sshd`;
   * null: none).
   */
  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
    private readonly options: { hostSshd?: string | null } = {},
  ) {
    this.scope = agentScope(dir);
  }

  /** This agent's containers carry it in AGENT_KEY and in their names. */
  readonly scope: string;

  /** The engine's name for the container `label`. */
  containerName(label: string): string {
    return `${label}-${this.scope}`;
  }

  private engine?: Promise<EngineCapabilities>;

  /** Asked once: `docker info`. */
  private capabilities(): Promise<EngineCapabilities> {
    this.engine ??= runOk("docker", ["info", "--format", "{{json .Runtimes}}\t{{.NCPU}}"]).then(parseEngineInfo);
    return this.engine;
  }

  private bundle?: Promise<string | null>;

  /**
   * The host directory of the OpenSSH bundle that SSH-mode containers mount for images without an
   * sshd (see ssh-bundle.ts); null when the host has no sshd. Made once, on first use.
   */
  sshBundle(): Promise<string | null> {
    this.bundle ??= (async () => {
      const sshd = this.options.hostSshd === undefined ? await findHostSshd() : this.options.hostSshd;
      const bundle = await prepareSshBundle(join(this.dir, "openssh"), sshd).catch((error: unknown) => {
        this.logger.warn({ sshd, err: error }, "could not bundle the host's sshd");
        return null;
      });
      if (bundle) this.logger.info({ sshd, bundle }, "SSH-mode images without an OpenSSH server get the host's sshd, mounted read-only");
      else this.logger.warn("this host has no usable OpenSSH server (sshd; Debian: apt-get install openssh-server): SSH-mode instances of images without one are refused");
      return bundle;
    })();
    return this.bundle;
  }

  /** A container of an image already on the host (nothing is pulled), without network, that exits at once. */
  async startTestContainer(): Promise<string> {
    const images = await run("docker", ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    if (images.code !== 0) throw new Error(`the docker engine does not answer: ${images.stderr.trim()}`);
    const image = images.stdout.split("\n").find((name) => name && !name.includes("<none>"));
    if (!image) throw new Error("no image on this host to start a container from");
    const ran = await run("docker", ["run", "--rm", "--network", "none", "--entrypoint", "true", "--", image]);
    if (ran.code !== 0) throw new Error(`docker run ${image} failed: ${ran.stderr.trim().split("\n")[0] ?? `exit ${ran.code}`}`);
    return `started and ran a container of ${image}`;
  }

  /** Whether the image has an sshd where the start script looks for one (checked in a throwaway container without network). */
  private async imageHasSshd(image: string): Promise<boolean> {
    return (await run("docker", ["run", "--rm", "--network", "none", "--entrypoint", "sh", "--", image, "-c", IMAGE_SSHD])).code === 0;
  }

  private marker(label: string) {
    return join(this.dir, "stopped", label);
  }

  private rebootFile(label: string) {
    return join(this.dir, "reboots", label);
  }

  private keysDir(label: string) {
    return join(this.dir, "ssh", label);
  }

  /** Whether `--gpus` can work here: an NVIDIA runtime is installed (without one, `docker start` fails). */
  async containerGpus(): Promise<boolean> {
    return (await this.capabilities()).gpus;
  }

  async list(): Promise<ContainerInfo[]> {
    const stdout = await runOk("docker", [
      "ps",
      "--all",
      "--no-trunc",
      "--filter",
      `label=${AGENT_KEY}=${this.scope}`,
      "--format",
      `{{.Label "${LABEL_KEY}"}}\t{{.Label "${INSTANCE_KEY}"}}\t{{.State}}\t{{.Status}}\t{{.Label "${RECYCLE_KEY}"}}\t{{.Label "${REBOOT_KEY}"}}\t{{.Label "${GPUS_KEY}"}}\t{{.Ports}}`,
    ]);
    const found: ContainerInfo[] = [];
    for (const line of stdout.split("\n")) {
      const [label, instanceId, dockerState, status, recycleCount, createdRebootCount, gpus, ports] = line.split("\t");
      if (!label || !instanceId || !dockerState || dockerState === "removing") continue;
      let state: ContainerState = DOCKER_STATES[dockerState] ?? "exited";
      if (state === "exited" && (await readFile(this.marker(label)).catch(() => null))) state = "stopped";
      const rebootCount = Number((await readFile(this.rebootFile(label), "utf8").catch(() => null)) ?? createdRebootCount) || 0;
      // No label (a container made before GPUs were assigned): unknown, not "none".
      const gpuIndices = gpus ? gpus.split(",").map(Number) : undefined;
      found.push({
        label,
        instanceId,
        state,
        recycleCount: Number(recycleCount) || 0,
        rebootCount,
        ...(status ? { detail: status } : {}),
        ...(gpuIndices ? { gpuIndices } : {}),
        ports: parseDockerPorts(ports ?? ""),
      });
    }
    return found;
  }

  async create(spec: ContainerSpec): Promise<void> {
    this.logger.info({ label: spec.label, image: spec.image }, "pulling image");
    const pulled = await this.pull(spec);
    if (pulled.code !== 0) {
      const reason = pulled.stderr.trim();
      // The image the client named does not exist or is not theirs to pull: not the host's fault.
      if (/not found|manifest unknown|pull access denied|unauthorized|invalid reference|repository does not exist|denied/i.test(reason)) {
        throw new LaunchRefusedError(`the image ${spec.image} could not be pulled: ${reason}`, "IMAGE_UNAVAILABLE");
      }
      throw new Error(`docker pull failed (exit ${pulled.code}): ${reason}`);
    }
    const command = spec.launchMode === "ENTRYPOINT" ? await this.imageCommand(spec.image) : null;
    const sshBundle = spec.launchMode === "SSH" ? await this.sshBundle() : null;
    if (spec.launchMode === "SSH" && !sshBundle && !(await this.imageHasSshd(spec.image))) {
      throw new LaunchRefusedError(
        `the image ${spec.image} has no OpenSSH server (sshd) and this host has none to provide: install openssh-server in the image, or launch it in ENTRYPOINT or JUPYTER mode`,
      );
    }
    await this.setSshKeys(spec.label, spec.sshKeys);
    if (sshBundle) await ensureHostKey(join(this.keysDir(spec.label), basename(SSH_HOST_KEY_FILE)));
    // The env goes through a private file, not argv: CONTAINER_API_KEY stays out of the process table.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const engine = await this.capabilities();
    const envFile = join(this.dir, `${spec.label}.env`);
    await writeFile(envFile, envFileText({ ...spec.env, ...containerGpuEnv(spec.gpuIndices, engine) }), { mode: 0o600 });
    try {
      const context: CreateContext = {
        name: this.containerName(spec.label),
        scope: this.scope,
        envFile,
        keysDir: this.keysDir(spec.label),
        sshBundle,
        engine,
        imageHasCommand: command !== false,
      };
      const withDisk = await run("docker", createArgs(spec, context, true));
      if (withDisk.code === 0) return;
      // --storage-opt size= needs overlay2 on xfs with pquota (or devicemapper/btrfs/zfs); elsewhere docker refuses it.
      if (!/storage-opt|storage option/i.test(withDisk.stderr)) {
        throw new Error(`docker create failed (exit ${withDisk.code}): ${withDisk.stderr.trim()}`);
      }
      this.logger.warn({ label: spec.label, reason: withDisk.stderr.trim() }, "disk size limit unsupported by the storage driver; creating without it");
      await runOk("docker", createArgs(spec, context, false));
    } finally {
      await rm(envFile, { force: true });
    }
  }

  /**
   * `docker pull`; with credentials, through a private client config made for this pull only (the
   * password goes by stdin, never argv, and no login outlives the pull).
   */
  private async pull(spec: ContainerSpec): Promise<RunResult> {
    const progress = (line: string) => this.logger.info({ label: spec.label, progress: line }, "pull");
    if (!spec.registryAuth) return run("docker", ["pull", "--", spec.image], progress);
    const config = await mkdtemp(join(tmpdir(), "gm-pull-"));
    try {
      const { registry, username, password } = spec.registryAuth;
      const login = await run("docker", ["--config", config, "login", "--username", username, "--password-stdin", registry], undefined, password);
      // A refused login reads like a refused pull ("unauthorized"): the client's error.
      if (login.code !== 0) return login;
      return await run("docker", ["--config", config, "pull", "--", spec.image], progress);
    } finally {
      await rm(config, { recursive: true, force: true });
    }
  }

  /** Whether the image has an ENTRYPOINT or CMD of its own (docker refuses to create one that has neither). */
  private async imageCommand(image: string): Promise<boolean> {
    const config = JSON.parse(await runOk("docker", ["image", "inspect", "--format", "{{json .Config}}", "--", image])) as {
      Entrypoint?: string[] | null;
      Cmd?: string[] | null;
    };
    return Boolean(config.Entrypoint?.length || config.Cmd?.length);
  }

  async setSshKeys(label: string, keys: string[]): Promise<void> {
    await mkdir(this.keysDir(label), { recursive: true, mode: 0o700 });
    await writeAuthorizedKeys(join(this.keysDir(label), "authorized_keys"), keys);
  }

  async start(label: string): Promise<void> {
    await rm(this.marker(label), { force: true });
    await runOk("docker", ["start", "--", this.containerName(label)]);
  }

  async restart(label: string, graceSeconds: number, rebootCount: number): Promise<void> {
    await rm(this.marker(label), { force: true });
    await runOk("docker", ["restart", "-t", String(graceSeconds), "--", this.containerName(label)]);
    await mkdir(join(this.dir, "reboots"), { recursive: true, mode: 0o700 });
    await writeFile(this.rebootFile(label), String(rebootCount));
  }

  async stop(label: string, graceSeconds: number): Promise<void> {
    await mkdir(join(this.dir, "stopped"), { recursive: true, mode: 0o700 });
    await writeFile(this.marker(label), new Date().toISOString());
    // docker stop sends SIGTERM and SIGKILLs after -t seconds; kill covers a stop that failed.
    const stopped = await run("docker", ["stop", "-t", String(graceSeconds), "--", this.containerName(label)]);
    if (stopped.code !== 0) {
      this.logger.warn({ label, reason: stopped.stderr.trim() }, "docker stop failed; killing");
      const killed = await run("docker", ["kill", "--", this.containerName(label)]);
      if (killed.code !== 0 && !/is not running/i.test(killed.stderr)) {
        throw new Error(`docker kill failed: ${killed.stderr.trim()}`);
      }
    }
  }

  async remove(label: string, graceSeconds: number): Promise<void> {
    await this.stop(label, graceSeconds);
    await runOk("docker", ["rm", "--force", "--volumes", "--", this.containerName(label)]);
    await rm(this.marker(label), { force: true });
    await rm(this.rebootFile(label), { force: true });
    await rm(this.keysDir(label), { recursive: true, force: true });
  }

  /**
   * `docker logs --timestamps`: stdout and stderr come on two pipes, merged again by their
   * timestamps; the cursor is the last line's timestamp.
   */
  async logs(label: string, tail: number): Promise<LogTail> {
    const result = await run("docker", ["logs", "--timestamps", "--tail", String(tail), "--", this.containerName(label)]);
    if (result.code !== 0) return { lines: [], cursor: "" };
    const entries = [...timestamped(result.stdout), ...timestamped(result.stderr)].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    return { lines: lastLines(entries.map((entry) => entry.line), tail), cursor: entries.at(-1)?.time ?? "" };
  }

  /** `docker logs --follow` from the cursor's timestamp (lines at it or before were sent already). */
  followLogs(label: string, cursor: string, onLines: (lines: string[]) => void): LogFollower {
    const child = spawn("docker", ["logs", "--follow", "--timestamps", ...(cursor ? ["--since", cursor] : ["--tail", "0"]), "--", this.containerName(label)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const after = cursor ? sortableTime(cursor) : "";
    for (const stream of [child.stdout, child.stderr]) {
      const splitter = new LineSplitter();
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        const lines = timestamped(splitter.push(chunk).join("\n")).filter((entry) => entry.at > after).map((entry) => entry.line);
        if (lines.length > 0) onLines(lines);
      });
    }
    const ended = new Promise<void>((resolve) => {
      child.once("close", () => resolve());
      child.once("error", () => resolve());
    });
    return { ended, stop: () => child.kill() };
  }

  async netIo(label: string): Promise<NetIo> {
    return parseDockerNetIo(await runOk("docker", ["stats", "--no-stream", "--format", "{{.NetIO}}", "--", this.containerName(label)]));
  }
}

const DOCKER_STATES: Record<string, ContainerState> = {
  created: "created",
  running: "running",
  restarting: "running",
  paused: "running",
  exited: "exited",
  dead: "exited",
};

/** Lines of `docker logs --timestamps`: "2024-05-01T10:00:00.123456789Z text". */
function timestamped(text: string): { time: string; at: string; line: string }[] {
  return text
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      const space = line.indexOf(" ");
      const time = space < 0 ? line : line.slice(0, space);
      return { time, at: sortableTime(time), line: space < 0 ? "" : line.slice(space + 1) };
    });
}

/** RFC 3339 with the fraction padded to nanoseconds (docker trims its trailing zeros), so strings compare as times. */
function sortableTime(time: string): string {
  const match = /^([^.Z]+)(?:\.(\d+))?Z$/.exec(time);
  return match ? `${match[1]}.${(match[2] ?? "").padEnd(9, "0")}Z` : time;
}

/** docker's --env-file format: one KEY=VALUE a line, taken literally. */
export function envFileText(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([key, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`env var name ${JSON.stringify(key)} is not valid`);
      if (/[\r\n]/.test(value)) throw new Error(`env var ${key} contains a line break, which docker cannot pass`);
      return `${key}=${value}\n`;
    })
    .join("");
}

interface CreateContext {
  /** The engine's name for it, and the agent's scope label. */
  name: string;
  scope: string;
  envFile: string;
  /** Host directory holding the container's authorized_keys, mounted read-only at SSH_KEYS_FILE's directory. */
  keysDir: string;
  /** SSH mode: the host's OpenSSH bundle, mounted read-only at SSH_BUNDLE_DIR for images without an sshd. */
  sshBundle: string | null;
  engine: EngineCapabilities;
  /** ENTRYPOINT mode: whether the image has an ENTRYPOINT or CMD. */
  imageHasCommand: boolean;
}

/** Keeps the image's entrypoint when it has none and no onstart was given: the instance serves until stopped. */
const SERVE_UNTIL_STOPPED = "exec sleep infinity";


/** `docker info`'s runtimes (JSON) and CPU count, tab-separated. */
export function parseEngineInfo(text: string): EngineCapabilities {
  const [runtimes, cpus] = text.trim().split("\t");
  return { gpus: Object.hasOwn(JSON.parse(runtimes || "{}") as object, "nvidia"), cpus: Number(cpus) || 1 };
}

/**
 * The GPU variables in the container. With GPUs, `--gpus` passes exactly the container's devices
 * and CUDA numbers them from 0 inside, so only NVIDIA_VISIBLE_DEVICES (host indices, what the NVIDIA
 * runtime reads) is set. Without, both name the host indices: the container's record of its GPUs.
 */
export function containerGpuEnv(gpuIndices: readonly number[], engine: EngineCapabilities): Record<string, string> {
  const env = gpuEnv(gpuIndices);
  return engine.gpus ? { NVIDIA_VISIBLE_DEVICES: env.NVIDIA_VISIBLE_DEVICES } : env;
}

export function createArgs(spec: ContainerSpec, context: CreateContext, diskLimit: boolean): string[] {
  const { engine } = context;
  const args = [
    "create",
    "--name",
    context.name,
    "--label",
    `${AGENT_KEY}=${context.scope}`,
    "--label",
    `${LABEL_KEY}=${spec.label}`,
    "--label",
    `${INSTANCE_KEY}=${spec.instanceId}`,
    "--label",
    `${RECYCLE_KEY}=${spec.recycleCount}`,
    "--label",
    `${REBOOT_KEY}=${spec.rebootCount}`,
    "--label",
    `${GPUS_KEY}=${spec.gpuIndices.join(",")}`,
    "--env-file",
    context.envFile,
    ...spec.ports.flatMap((port) => ["-p", `${port.hostPort}:${port.containerPort}/${port.protocol}`]),
  ];
  if (spec.launchMode === "SSH") {
    args.push("--mount", `type=bind,source=${context.keysDir},target=${SSH_KEYS_FILE.slice(0, SSH_KEYS_FILE.lastIndexOf("/"))},readonly`);
    if (context.sshBundle) args.push("--mount", `type=bind,source=${context.sshBundle},target=${SSH_BUNDLE_DIR},readonly`);
  }
  // Quoted: --gpus reads CSV, and the device list has commas.
  if (engine.gpus && spec.gpuIndices.length > 0) args.push("--gpus", `"device=${spec.gpuIndices.join(",")}"`);
  // No NVIDIA runtime: nothing isolates the GPUs, and the container and `docker inspect` say so.
  if (!engine.gpus && spec.numGpus > 0) args.push("--label", `${GPU_ISOLATION_KEY}=none`, "--env", "GPU_ISOLATION=none");
  // Never more CPUs than the engine has: docker refuses that (a host that overstated its cores).
  if (spec.cpuCores > 0) args.push("--cpus", String(Math.min(spec.cpuCores, engine.cpus)));
  if (spec.memoryMb > 0) args.push("--memory", `${spec.memoryMb}m`);
  if (diskLimit && spec.diskGb > 0) args.push("--storage-opt", `size=${spec.diskGb}G`);
  if (spec.launchMode === "ENTRYPOINT" && (context.imageHasCommand || spec.args.length > 0)) {
    // The image's own entrypoint, with the instance's args in place of the image's command when given.
    args.push("--", spec.image, ...spec.args);
  } else {
    const script = spec.launchMode === "ENTRYPOINT" ? spec.onstart?.trim() || SERVE_UNTIL_STOPPED : workloadScript(spec);
    // --init: a real PID 1 that forwards SIGTERM, so `docker stop` need not wait out the grace period.
    args.push("--init", "--entrypoint", "sh", "--", spec.image, "-c", script);
  }
  return args;
}

/** `docker ps` Ports, "0.0.0.0:40000->22/tcp, :::40000->22/tcp": each mapping once (IPv4 and IPv6 bindings are one). */
export function parseDockerPorts(text: string): PublishedPort[] {
  const ports: PublishedPort[] = [];
  for (const match of text.matchAll(/:(\d+)->(\d+)\/(tcp|udp)/g)) {
    const port: PublishedPort = { containerPort: Number(match[2]), protocol: match[3] as "tcp" | "udp", hostPort: Number(match[1]) };
    if (!ports.some((p) => p.containerPort === port.containerPort && p.protocol === port.protocol && p.hostPort === port.hostPort)) ports.push(port);
  }
  return ports;
}

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** `docker stats` NetIO, "1.2MB / 3.4kB": received / sent, in docker's decimal units. */
export function parseDockerNetIo(text: string): NetIo {
  const [rx, tx] = text.trim().split("\n")[0]!.split("/").map((part) => part.trim());
  return { rxBytes: parseSize(rx ?? ""), txBytes: parseSize(tx ?? "") };
}

function parseSize(text: string): bigint {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text);
  if (!match) throw new Error(`not a docker size: ${JSON.stringify(text)}`);
  const unit = UNITS[(match[2] || "b").toLowerCase()];
  if (unit === undefined) throw new Error(`unknown unit in docker size ${JSON.stringify(text)}`);
  return BigInt(Math.round(Number(match[1]) * unit));
}

/** Whether a docker engine answers (the default runtime when it does). */
export async function dockerAnswers(): Promise<boolean> {
  try {
    return (await run("docker", ["version", "--format", "{{.Server.Version}}"])).code === 0;
  } catch {
    return false;
  }
}
