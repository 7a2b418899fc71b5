import { GPU_MODELS, type GpuModel, pcieBandwidth } from "../domain/dlperf.ts";

/*
 * What a host's machine is, read from the commands and files that say so: nvidia-smi for the GPUs,
 * /proc/cpuinfo and /proc/meminfo for CPU and RAM. Pure functions of their text, so tests feed
 * them recorded output; anything malformed or contradictory is a DetectionError naming its source,
 * and nothing is registered from it.
 */

export type DetectionErrorCode = "NO_GPU" | "MALFORMED_OUTPUT" | "CONTRADICTORY_OUTPUT" | "MIXED_GPUS" | "UNKNOWN_GPU_MODEL";

export class DetectionError extends Error {
  constructor(
    readonly code: DetectionErrorCode,
    /** The command or file the problem is in. */
    readonly source: string,
    message: string,
  ) {
    super(`${source}: ${message}`);
    this.name = "DetectionError";
  }
}

/** The GPU columns asked of nvidia-smi, by the names its CSV header gives them. */
export const GPU_QUERY_FIELDS = [
  "index",
  "name",
  "memory.total",
  "driver_version",
  "pcie.link.gen.max",
  "pcie.link.width.max",
  "power.limit",
  "compute_cap",
] as const;
export const NVIDIA_SMI_QUERY_ARGS = [`--query-gpu=${GPU_QUERY_FIELDS.join(",")}`, "--format=csv"];

type GpuField = (typeof GPU_QUERY_FIELDS)[number];
const NVIDIA_SMI = "nvidia-smi";
const PCIE_WIDTHS = new Set([1, 2, 4, 8, 16, 32]);

/** One GPU as nvidia-smi's CSV (with header and units) describes it. */
export interface GpuRow {
  index: number;
  name: string;
  memoryMib: number;
  driverVersion: string;
  pcieGen: number;
  pcieWidth: number;
  /** Watts; null when the board does not report a limit ([N/A]). */
  powerLimitW: number | null;
  /** Such as 8.9; null on drivers too old to report it. */
  computeCap: number | null;
}

const unavailable = (cell: string) => /^\[?(N\/A|Not Supported|Unknown Error)\]?$/i.test(cell);

/**
 * `nvidia-smi --query-gpu=… --format=csv`: a header naming each column ("memory.total [MiB]"),
 * then one GPU a line. Columns are found by name, units are checked.
 */
export function parseGpuQuery(text: string): GpuRow[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
  if (lines.length === 0) return [];
  const header = lines[0].split(",").map((cell) => cell.trim());
  const columns = new Map<GpuField, { index: number; unit: string | null }>();
  header.forEach((cell, index) => {
    const match = /^([\w.]+)(?: \[(\w+)\])?$/.exec(cell);
    if (match && (GPU_QUERY_FIELDS as readonly string[]).includes(match[1])) columns.set(match[1] as GpuField, { index, unit: match[2] ?? null });
  });
  for (const field of GPU_QUERY_FIELDS) {
    if (!columns.has(field)) throw new DetectionError("MALFORMED_OUTPUT", NVIDIA_SMI, `no "${field}" column in the header "${lines[0]}"`);
  }
  return lines.slice(1).map((line, row) => {
    const cells = line.split(",").map((cell) => cell.trim());
    if (cells.length !== header.length) {
      throw new DetectionError("MALFORMED_OUTPUT", NVIDIA_SMI, `line ${row + 2} has ${cells.length} values for ${header.length} columns: "${line}"`);
    }
    const cell = (field: GpuField) => cells[columns.get(field)!.index];
    const bad = (field: GpuField, expected: string) =>
      new DetectionError("MALFORMED_OUTPUT", NVIDIA_SMI, `${field} of GPU line ${row + 2} is "${cell(field)}", not ${expected}`);
    const number = (field: GpuField, unit: string | null, expected: string, optional = false): number | null => {
      const raw = cell(field);
      if (optional && unavailable(raw)) return null;
      const match = /^(\d+(?:\.\d+)?)(?: (\w+))?$/.exec(raw);
      const columnUnit = columns.get(field)!.unit;
      // With units the header says "[MiB]" and each value ends in " MiB"; both must be the unit expected.
      if (!match || (match[2] ?? columnUnit) !== unit || (columnUnit !== null && columnUnit !== unit)) throw bad(field, expected);
      return Number(match[1]);
    };
    const name = cell("name");
    const driverVersion = cell("driver_version");
    if (!name || unavailable(name)) throw bad("name", "a GPU model");
    if (!/^\d{2,4}(\.\d{1,4}){1,3}$/.test(driverVersion)) throw bad("driver_version", "a driver version such as 550.54.15");
    const index = number("index", null, "a GPU index")!;
    const pcieGen = number("pcie.link.gen.max", null, "a PCIe generation")!;
    const pcieWidth = number("pcie.link.width.max", null, "a PCIe link width")!;
    if (!Number.isInteger(pcieGen) || pcieGen < 1 || pcieGen > 6) throw bad("pcie.link.gen.max", "a PCIe generation from 1 to 6");
    if (!PCIE_WIDTHS.has(pcieWidth)) throw bad("pcie.link.width.max", "a PCIe link width (1, 2, 4, 8, 16 or 32 lanes)");
    return {
      index,
      name,
      memoryMib: number("memory.total", "MiB", "memory in MiB")!,
      driverVersion,
      pcieGen,
      pcieWidth,
      powerLimitW: number("power.limit", "W", "a power limit in W", true),
      computeCap: number("compute_cap", null, "a compute capability such as 8.9", true),
    };
  });
}

/** The driver and the highest CUDA version it runs, from plain `nvidia-smi`'s banner. */
export function parseNvidiaSmiBanner(text: string): { driverVersion: string; cudaVersion: number } {
  const driver = /Driver Version:\s*(\d[\d.]*\d)/.exec(text);
  const cuda = /CUDA Version:\s*(\d+\.\d+)/.exec(text);
  if (!driver || !cuda) {
    throw new DetectionError("MALFORMED_OUTPUT", NVIDIA_SMI, 'no "Driver Version: …" and "CUDA Version: …" in its banner');
  }
  return { driverVersion: driver[1], cudaVersion: Number(cuda[1]) };
}

const NOISE_TOKENS = /^(NVIDIA|GEFORCE|\d+GB)$/;
const tokens = (name: string) =>
  name
    .toUpperCase()
    .split(/[\s\-_]+/)
    .filter((token) => token && !NOISE_TOKENS.test(token));
/** Board variants nvidia-smi names differently from the market's names. */
const VARIANT_TOKENS = new Set(["PCIE", "SXM2", "SXM3", "SXM4", "SXM5", "HBM3", "HBM3E", "NVL"]);
const ALIASES: Record<string, string> = { "H100 HBM3": "H100 SXM", "H100 SXM5": "H100 SXM" };

/**
 * The market's model for an nvidia-smi name ("NVIDIA GeForce RTX 4090" is RTX 4090,
 * "NVIDIA A100-SXM4-80GB" is A100 SXM4): the same words once vendor, brand and memory size are
 * dropped, or a model whose words it has plus only a board variant (Tesla V100-SXM2-16GB).
 */
export function gpuModelFor(smiName: string): GpuModel | undefined {
  const detected = tokens(smiName);
  const key = detected.join(" ");
  const aliased = ALIASES[key];
  if (aliased) return GPU_MODELS.find((model) => model.gpuName === aliased);
  const same = GPU_MODELS.find((model) => tokens(model.gpuName).join(" ") === key);
  if (same) return same;
  const candidates = GPU_MODELS.filter((model) => {
    const words = tokens(model.gpuName);
    return words.every((word) => detected.includes(word)) && detected.every((word) => words.includes(word) || VARIANT_TOKENS.has(word));
  });
  return candidates.sort((a, b) => tokens(b.gpuName).length - tokens(a.gpuName).length)[0];
}

/** The GPU part of a machine's specs, as registerMachine takes them. */
export interface GpuSpecs {
  gpuName: string;
  numGpus: number;
  gpuRamMb: number;
  computeCap: number;
  tflopsPerGpu: number;
  gpuMemBw: number;
  pcieGen: number;
  pcieBw: number;
  cudaMaxGood: number;
  driverVersion: string;
  /** Watts per GPU; null when not reported. */
  gpuMaxPowerW: number | null;
}

/** Chip specs nvidia-smi cannot tell, for a model missing from the market's table. */
export interface GpuModelOverride {
  tflopsPerGpu: number;
  gpuMemBw: number;
}

/**
 * The GPUs of the machine from the query's rows and the banner: one model (the market lists a
 * machine under one GPU name), one driver, its chip specs from the market's table. No rows is
 * NO_GPU; rows that disagree with each other or the banner are CONTRADICTORY_OUTPUT.
 */
export function gpuSpecs(rows: GpuRow[], banner: { driverVersion: string; cudaVersion: number }, override?: GpuModelOverride): GpuSpecs {
  if (rows.length === 0) throw new DetectionError("NO_GPU", NVIDIA_SMI, "no NVIDIA GPU found: it lists none");
  const names = [...new Set(rows.map((row) => row.name))];
  if (names.length > 1) {
    throw new DetectionError("MIXED_GPUS", NVIDIA_SMI, `the machine has different GPU models (${names.join(", ")}); a machine is listed under one model`);
  }
  const indices = new Set(rows.map((row) => row.index));
  if (indices.size !== rows.length) throw new DetectionError("CONTRADICTORY_OUTPUT", NVIDIA_SMI, "two GPUs share an index");
  const drivers = new Set([banner.driverVersion, ...rows.map((row) => row.driverVersion)]);
  if (drivers.size > 1) {
    throw new DetectionError("CONTRADICTORY_OUTPUT", NVIDIA_SMI, `driver versions disagree (${[...drivers].join(", ")})`);
  }
  const name = names[0];
  const model = gpuModelFor(name);
  const caps = new Set(rows.map((row) => row.computeCap));
  if (caps.size > 1) throw new DetectionError("CONTRADICTORY_OUTPUT", NVIDIA_SMI, `GPUs of one model report different compute capabilities`);
  const reportedCap = rows[0].computeCap === null ? null : Math.round(rows[0].computeCap * 100);
  if (model && reportedCap !== null && reportedCap !== model.computeCap) {
    throw new DetectionError(
      "CONTRADICTORY_OUTPUT",
      NVIDIA_SMI,
      `${name} has compute capability ${model.computeCap / 100}, but it reports ${reportedCap / 100}`,
    );
  }
  const chip = override ?? model;
  const computeCap = model?.computeCap ?? reportedCap;
  if (!chip || computeCap === null) {
    throw new DetectionError(
      "UNKNOWN_GPU_MODEL",
      NVIDIA_SMI,
      `"${name}" is not in the marketplace's GPU table; give its FP32 TFLOPS and memory bandwidth (--tflops, --gpu-mem-bw)`,
    );
  }
  // Every GPU's link counts: a card on a narrower link holds back the chunks it is part of.
  const slowest = rows.reduce((a, b) => (pcieBandwidth(b.pcieGen, b.pcieWidth) < pcieBandwidth(a.pcieGen, a.pcieWidth) ? b : a));
  const powerLimits = rows.map((row) => row.powerLimitW).filter((watts): watts is number => watts !== null);
  return {
    gpuName: model?.gpuName ?? name.replace(/^NVIDIA\s+(GeForce\s+)?/i, ""),
    numGpus: rows.length,
    gpuRamMb: Math.min(...rows.map((row) => Math.round(row.memoryMib))),
    computeCap,
    tflopsPerGpu: chip.tflopsPerGpu,
    gpuMemBw: chip.gpuMemBw,
    pcieGen: slowest.pcieGen,
    pcieBw: Math.round(pcieBandwidth(slowest.pcieGen, slowest.pcieWidth) * 100) / 100,
    cudaMaxGood: banner.cudaVersion,
    driverVersion: banner.driverVersion,
    gpuMaxPowerW: powerLimits.length === rows.length ? Math.min(...powerLimits) : null,
  };
}

export interface CpuSpecs {
  cpuName: string;
  /** Logical CPUs (threads), as the reference counts cpu_cores. */
  cpuCores: number;
  hasAvx: boolean;
  cpuArch: "amd64" | "arm64";
  /** GHz; null when cpuinfo says neither. */
  cpuGhz: number | null;
}

/**
 * The CPU's clock in GHz: the rated one of the model name ("… @ 2.00GHz"), else the highest
 * "cpu MHz" of the logical CPUs (which moves with load: to 0.1 GHz).
 */
function cpuGhzOf(modelName: string, blocks: Map<string, string>[]): number | null {
  const rated = /@\s*(\d+(?:\.\d+)?)\s*GHz/i.exec(modelName);
  if (rated) return Number(rated[1]);
  const mhz = blocks.map((block) => Number(block.get("cpu MHz"))).filter((value) => Number.isFinite(value) && value > 0);
  return mhz.length ? Math.round(Math.max(...mhz) / 100) / 10 : null;
}

/** `uname -m` (or Node's process.arch) as the market's cpu_arch. */
export function cpuArchOf(machine: string): "amd64" | "arm64" {
  if (/^(x86_64|amd64|x64)$/.test(machine)) return "amd64";
  if (/^(aarch64|arm64)$/.test(machine)) return "arm64";
  throw new DetectionError("MALFORMED_OUTPUT", "uname -m", `"${machine}" is not a CPU architecture GPUs are rented on (x86_64, aarch64)`);
}

/** Arm's CPU implementers as /proc/cpuinfo numbers them, for machines whose cpuinfo has no model name. */
const ARM_IMPLEMENTERS: Record<string, string> = { "0x41": "Arm", "0x4e": "NVIDIA", "0xc0": "Ampere", "0x48": "HiSilicon", "0x61": "Apple" };

/** /proc/cpuinfo: one block per logical CPU; the model from "model name", AVX from the flags. */
export function parseCpuInfo(text: string, arch: "amd64" | "arm64"): CpuSpecs {
  const source = "/proc/cpuinfo";
  const blocks = text
    .split(/\n\s*\n/)
    .map((block) => new Map(block.split("\n").flatMap((line) => {
      const at = line.indexOf(":");
      return at < 0 ? [] : [[line.slice(0, at).trim(), line.slice(at + 1).trim()] as const];
    })))
    .filter((fields) => fields.has("processor"));
  if (blocks.length === 0) throw new DetectionError("MALFORMED_OUTPUT", source, "no processor entries");
  const first = blocks[0];
  const implementer = first.get("CPU implementer");
  const modelName = first.get("model name") ?? (implementer ? `${ARM_IMPLEMENTERS[implementer] ?? "Arm"} CPU part ${first.get("CPU part") ?? "?"}` : undefined);
  if (!modelName) throw new DetectionError("MALFORMED_OUTPUT", source, 'no "model name" for the CPU');
  const models = new Set(blocks.map((block) => block.get("model name")).filter(Boolean));
  if (models.size > 1) throw new DetectionError("CONTRADICTORY_OUTPUT", source, `logical CPUs of different models (${[...models].join(", ")})`);
  const flags = (first.get("flags") ?? first.get("Features") ?? "").split(/\s+/);
  if (arch === "amd64" && !first.has("flags")) throw new DetectionError("MALFORMED_OUTPUT", source, "no CPU flags");
  return { cpuName: modelName.replace(/\s+/g, " ").slice(0, 128), cpuCores: blocks.length, hasAvx: flags.includes("avx"), cpuArch: arch, cpuGhz: cpuGhzOf(modelName, blocks) };
}

/** /proc/meminfo's MemTotal, in MB (MiB, as the market's cpu_ram). */
export function parseMemInfo(text: string): { cpuRamMb: number } {
  const match = /^MemTotal:\s+(\d+) kB$/m.exec(text);
  if (!match) throw new DetectionError("MALFORMED_OUTPUT", "/proc/meminfo", 'no "MemTotal: … kB" line');
  const cpuRamMb = Math.floor(Number(match[1]) / 1024);
  if (cpuRamMb < 1) throw new DetectionError("MALFORMED_OUTPUT", "/proc/meminfo", "MemTotal is zero");
  return { cpuRamMb };
}

/** `nvidia-smi -q -d TEMPERATURE`: the per-GPU report whose temperature limits give gpu_max_temp. */
export const NVIDIA_SMI_TEMPERATURE_ARGS = ["-q", "-d", "TEMPERATURE"];

/**
 * The GPUs' temperature limit in °C: each GPU's "GPU Max Operating Temp" (else its "GPU Slowdown
 * Temp"), the lowest over the GPUs; null when any GPU reports neither.
 */
export function parseGpuMaxTemp(text: string): number | null {
  const gpus = text.split(/^GPU [0-9A-Fa-f]+:[0-9A-Fa-f:.]+\s*$/m).slice(1);
  if (gpus.length === 0) return null;
  const limits = gpus.map((gpu) => {
    const reading = (label: string) => /^\s*(\d+) C\s*$/.exec(new RegExp(`^\\s*${label}\\s*:(.*)$`, "m").exec(gpu)?.[1] ?? "")?.[1];
    const value = reading("GPU Max Operating Temp") ?? reading("GPU Slowdown Temp");
    return value === undefined ? null : Number(value);
  });
  return limits.every((limit) => limit !== null) ? Math.min(...(limits as number[])) : null;
}

/** DMI's board_name: the motherboard model; null when empty or a vendor placeholder. */
export function parseBoardName(text: string): string | null {
  const name = text.trim().replace(/\s+/g, " ").slice(0, 128);
  return name === "" || /^(to be filled by o\.e\.m\.|default string|not applicable|none)$/i.test(name) ? null : name;
}

/** /etc/os-release: VERSION_ID ("22.04") when the system is Ubuntu (ID=ubuntu), else null. */
export function parseUbuntuVersion(text: string): string | null {
  const fields = new Map(
    text.split("\n").flatMap((line) => {
      const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      return match ? [[match[1], match[2].replace(/^(["'])(.*)\1$/, "$2")] as const] : [];
    }),
  );
  const version = fields.get("VERSION_ID") ?? "";
  return fields.get("ID") === "ubuntu" && /^\d{2}\.\d{2}$/.test(version) ? version : null;
}
