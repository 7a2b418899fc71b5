import { randomBytes } from "node:crypto";
import { open, readFile, rm, statfs } from "node:fs/promises";
import { machine as unameMachine } from "node:os";
import { join } from "node:path";
import { run as runCommand, type RunResult } from "./exec.ts";
import {
  type CpuSpecs,
  cpuArchOf,
  DetectionError,
  type GpuModelOverride,
  type GpuSpecs,
  gpuSpecs,
  NVIDIA_SMI_QUERY_ARGS,
  NVIDIA_SMI_TEMPERATURE_ARGS,
  parseBoardName,
  parseCpuInfo,
  parseGpuMaxTemp,
  parseGpuQuery,
  parseMemInfo,
  parseNvidiaSmiBanner,
  parseUbuntuVersion,
} from "./hardware.ts";

/** Where detection reads the host from; tests give recorded output instead. */
export interface HostProbe {
  run(command: string, args: string[]): Promise<RunResult>;
  readFile(path: string): Promise<string>;
  /** `uname -m`. */
  machine(): string;
}

export const realProbe: HostProbe = {
  run: (command, args) => runCommand(command, args),
  readFile: (path) => readFile(path, "utf8"),
  machine: unameMachine,
};

/** Everything registerMachine takes that a machine can tell about itself, plus the address the API sees it at. */
export interface DetectedMachine extends GpuSpecs, CpuSpecs, HostDetails {
  cpuRamMb: number;
  diskSpaceGb: number;
  /** MB/s. */
  diskBw: number;
  inetUpMbps: number;
  inetDownMbps: number;
  /** The address the API sees this host at; null when the speed test could not tell. */
  publicAddress: string | null;
}

async function nvidiaSmi(probe: HostProbe, args: string[]): Promise<string> {
  let result: RunResult;
  try {
    result = await probe.run("nvidia-smi", args);
  } catch {
    throw new DetectionError("NO_GPU", "nvidia-smi", "not installed: no NVIDIA driver on this host, so no GPU to rent out");
  }
  if (result.code !== 0) {
    const said = (result.stderr.trim() || result.stdout.trim()).split("\n")[0] ?? "";
    throw new DetectionError("NO_GPU", "nvidia-smi", `no usable NVIDIA GPU (exit ${result.code}${said ? `: ${said}` : ""})`);
  }
  return result.stdout;
}

/** The GPUs: nvidia-smi's query for each GPU, its banner for the driver's CUDA version. */
export async function detectGpus(probe: HostProbe, override?: GpuModelOverride): Promise<GpuSpecs> {
  const rows = parseGpuQuery(await nvidiaSmi(probe, NVIDIA_SMI_QUERY_ARGS));
  if (rows.length === 0) throw new DetectionError("NO_GPU", "nvidia-smi", "no NVIDIA GPU found: it lists none");
  return gpuSpecs(rows, parseNvidiaSmiBanner(await nvidiaSmi(probe, [])), override);
}

/** What the host tells besides its GPUs, CPU and RAM; each null when it cannot be read. */
export interface HostDetails {
  /** °C. */
  gpuMaxTempC: number | null;
  moboName: string | null;
  /** Such as "22.04"; null on other systems. */
  ubuntuVersion: string | null;
}

/** Temperature limits, motherboard and OS release: optional details, so an unreadable source is null, never an error. */
export async function detectHostDetails(probe: HostProbe): Promise<HostDetails> {
  const optional = <T>(read: Promise<string>, parse: (text: string) => T | null) => read.then(parse, () => null);
  const temperatures = probe.run("nvidia-smi", NVIDIA_SMI_TEMPERATURE_ARGS).then((result) => {
    if (result.code !== 0) throw new Error(result.stderr);
    return result.stdout;
  });
  return {
    gpuMaxTempC: await optional(temperatures, parseGpuMaxTemp),
    moboName: await optional(probe.readFile("/sys/devices/virtual/dmi/id/board_name"), parseBoardName),
    ubuntuVersion: await optional(probe.readFile("/etc/os-release"), parseUbuntuVersion),
  };
}

/** CPU and RAM from /proc. */
export async function detectCpuAndRam(probe: HostProbe): Promise<CpuSpecs & { cpuRamMb: number }> {
  const arch = cpuArchOf(probe.machine());
  return { ...parseCpuInfo(await probe.readFile("/proc/cpuinfo"), arch), ...parseMemInfo(await probe.readFile("/proc/meminfo")) };
}

const round1 = (value: number) => Math.round(value * 10) / 10;
const secondsSince = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

/**
 * The data directory's file system: its size in GB (statfs), and its bandwidth in MB/s from writing
 * `bytes` (flushed to the device) and reading them back; the slower of the two counts.
 */
export async function measureDisk(
  dir: string,
  bytes = 64 * 1024 * 1024,
): Promise<{ diskSpaceGb: number; diskBw: number; writeMBps: number; readMBps: number }> {
  const stats = await statfs(dir);
  const path = join(dir, `.disk-speed-${process.pid}`);
  const block = randomBytes(Math.min(bytes, 4 * 1024 * 1024));
  try {
    const writing = process.hrtime.bigint();
    const file = await open(path, "w");
    try {
      for (let written = 0; written < bytes; written += block.length) await file.write(block, 0, Math.min(block.length, bytes - written));
      await file.sync();
    } finally {
      await file.close();
    }
    const writeSeconds = secondsSince(writing);
    const reading = process.hrtime.bigint();
    const read = (await readFile(path)).length;
    const readSeconds = secondsSince(reading);
    if (read !== bytes) throw new DetectionError("CONTRADICTORY_OUTPUT", dir, `wrote ${bytes} bytes but read back ${read}`);
    const writeMBps = round1(bytes / writeSeconds / 1e6);
    const readMBps = round1(bytes / readSeconds / 1e6);
    return {
      diskSpaceGb: Math.floor((stats.blocks * stats.bsize) / 1e9),
      diskBw: Math.min(writeMBps, readMBps),
      writeMBps,
      readMBps,
    };
  } finally {
    await rm(path, { force: true });
  }
}

/** The speed test's base URL: the API's own origin. */
const speedTestUrl = (apiUrl: string, path: string) => new URL(path, new URL(apiUrl).origin).toString();

/**
 * Up and down Mbps against the API's speed test (api/speedTest.ts), `bytes` each way, and the
 * address the API saw the host at.
 */
export async function measureNetwork(apiUrl: string, key: string, bytes = 32 * 1024 * 1024): Promise<{ inetUpMbps: number; inetDownMbps: number; publicAddress: string | null }> {
  const headers = { authorization: `Bearer ${key}` };
  const refused = async (response: Response) =>
    new Error(`the API's speed test answered HTTP ${response.status}: ${((await response.json().catch(() => ({}))) as { message?: string }).message ?? ""}`);

  const down = await fetch(speedTestUrl(apiUrl, `/speedtest/download?bytes=${bytes}`), { headers, signal: AbortSignal.timeout(120_000) });
  if (!down.ok) throw await refused(down);
  // Timed from the answer's headers: the key's check before them is not the link's speed.
  const downloading = process.hrtime.bigint();
  const received = (await down.arrayBuffer()).byteLength;
  const downSeconds = secondsSince(downloading);
  if (received !== bytes) throw new Error(`the speed test sent ${received} bytes of ${bytes}`);

  const uploading = process.hrtime.bigint();
  const up = await fetch(speedTestUrl(apiUrl, "/speedtest/upload"), {
    method: "POST",
    headers: { ...headers, "content-type": "application/octet-stream" },
    body: randomBytes(bytes),
    signal: AbortSignal.timeout(120_000),
  });
  if (!up.ok) throw await refused(up);
  const answer = (await up.json()) as { bytes: number; address?: string };
  const upSeconds = secondsSince(uploading);
  if (answer.bytes !== bytes) throw new Error(`the speed test received ${answer.bytes} bytes of ${bytes}`);
  const mbps = (seconds: number) => round1((bytes * 8) / seconds / 1e6);
  return { inetUpMbps: mbps(upSeconds), inetDownMbps: mbps(downSeconds), publicAddress: answer.address || down.headers.get("x-client-address") };
}

export interface DetectOptions {
  apiUrl: string;
  /** Any key the speed test accepts: the host's account key when registering, the machine's later. */
  key: string;
  /** The data directory: where instances' disks live. */
  dataDir: string;
  probe?: HostProbe;
  gpuModel?: GpuModelOverride;
  diskTestBytes?: number;
  networkTestBytes?: number;
}

/** The whole machine; GPUs first, so a host without one hears that before anything is measured. */
export async function detectMachine(options: DetectOptions): Promise<DetectedMachine> {
  const probe = options.probe ?? realProbe;
  const gpus = await detectGpus(probe, options.gpuModel);
  const cpu = await detectCpuAndRam(probe);
  const { diskSpaceGb, diskBw } = await measureDisk(options.dataDir, options.diskTestBytes);
  const network = await measureNetwork(options.apiUrl, options.key, options.networkTestBytes);
  return { ...gpus, ...cpu, ...(await detectHostDetails(probe)), diskSpaceGb, diskBw, ...network };
}
