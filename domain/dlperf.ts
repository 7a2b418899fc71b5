/**
 * DLPerf ("deep learning performance"): one number estimating how fast a machine, or a chunk of its
 * GPUs, trains typical deep-learning models (ResNet-50-like workloads), on the reference
 * marketplace's scale: a V100 in a decent host scores 21, a GTX 1080 Ti about 10. Pure functions
 * of the specs a host registers; no benchmark runs.
 *
 * 1. The GPU alone. Mixed-precision training runs partly on tensor cores, partly on FP32 units and
 *    is as often bound by memory as by arithmetic, so a GPU's score is the geometric mean of its
 *    effective compute and its memory bandwidth:
 *
 *        mixed = tflopsPerGpu × tensorRatio(computeCap)^0.25
 *        s     = K × √(mixed × gpuMemBw)
 *
 *    tflopsPerGpu is peak FP32, gpuMemBw is GB/s. tensorRatio is the architecture's dense FP16
 *    tensor throughput (FP32 accumulate) over its FP32 throughput: 1 before Volta, 8 for Volta and
 *    Turing, 16 for A100, 4 for GA10x and Ada, 15 for Hopper, 28 for B200, 4 for later
 *    workstation/GeForce parts. The 4th root reflects that only part of a step runs on tensor
 *    cores. K is set so that the reference Tesla V100 scores exactly 21; the 1080 Ti then lands
 *    at 10.1 and the table below orders like public training benchmarks (T4 < 1080 Ti < 2080 Ti <
 *    V100 < 3090 < A100 < 4090 < H100 < H200).
 *
 * 2. The host must keep each GPU fed. Its needs grow with the GPU's score s; each factor is 1 when
 *    the host has enough and shrinks as a soft power when it falls short:
 *
 *        VRAM   min(1, gpuRamGb / 8)^0.5                        models and batches must fit
 *        PCIe   min(1, pcieBw / (0.25 s))^0.15                  GB/s per GPU moving batches in
 *        CPU    min(1, (cpuCores / numGpus) / (2 + s / 10))^0.3  cores per GPU for data loading
 *        disk   min(1, (diskBw / numGpus) / (10 s))^0.2          MB/s per GPU reading the data set
 *
 *    CPU cores and disk bandwidth are shared by all the machine's GPUs, so a chunk gets its share.
 *
 * 3. Several GPUs scale sublinearly: gradients cross PCIe on every step, so
 *
 *        chunk(n) = s × host × n^e,   e = 1 − 0.5 / (1 + 2q),   q = pcieBw / (0.25 s)
 *
 *    Fast PCIe (q ≈ 4) gives e ≈ 0.94 (8 GPUs ≈ 7.1× one); a mining riser at x1 (q ≈ 0.1) gives
 *    e ≈ 0.6 (8 GPUs ≈ 3.5× one). A machine's DLPerf is its whole chunk, n = numGpus.
 */
import type { Machine } from "../prisma/generated/client/client.ts";

/** A GPU model's chip specs, named as the Machine fields they fill. */
export type GpuModel = Pick<Machine, "gpuName" | "gpuRamMb" | "computeCap" | "tflopsPerGpu" | "gpuMemBw" | "pcieGen">;

/**
 * Reference specs of common GPUs: name as hosts list it (the search language's gpu_name), VRAM in
 * MB, compute capability × 100, peak FP32 TFLOPS at boost clock, memory bandwidth in GB/s and the
 * PCIe generation it usually sits on. Demo data, benchmarks and tests build machines from it.
 */
export const GPU_MODELS: readonly GpuModel[] = [
  { gpuName: "GTX 1080 Ti", gpuRamMb: 11264, computeCap: 610, tflopsPerGpu: 11.34, gpuMemBw: 484, pcieGen: 3 },
  { gpuName: "RTX 2080 Ti", gpuRamMb: 11264, computeCap: 750, tflopsPerGpu: 13.45, gpuMemBw: 616, pcieGen: 3 },
  { gpuName: "Titan V", gpuRamMb: 12288, computeCap: 700, tflopsPerGpu: 14.9, gpuMemBw: 653, pcieGen: 3 },
  { gpuName: "Tesla V100", gpuRamMb: 16384, computeCap: 700, tflopsPerGpu: 15.7, gpuMemBw: 900, pcieGen: 3 },
  { gpuName: "Tesla T4", gpuRamMb: 15360, computeCap: 750, tflopsPerGpu: 8.14, gpuMemBw: 320, pcieGen: 3 },
  { gpuName: "RTX 3060", gpuRamMb: 12288, computeCap: 860, tflopsPerGpu: 12.74, gpuMemBw: 360, pcieGen: 4 },
  { gpuName: "RTX 3070", gpuRamMb: 8192, computeCap: 860, tflopsPerGpu: 20.31, gpuMemBw: 448, pcieGen: 4 },
  { gpuName: "RTX 3080", gpuRamMb: 10240, computeCap: 860, tflopsPerGpu: 29.77, gpuMemBw: 760, pcieGen: 4 },
  { gpuName: "RTX 3090", gpuRamMb: 24576, computeCap: 860, tflopsPerGpu: 35.58, gpuMemBw: 936, pcieGen: 4 },
  { gpuName: "RTX A4000", gpuRamMb: 16384, computeCap: 860, tflopsPerGpu: 19.17, gpuMemBw: 448, pcieGen: 4 },
  { gpuName: "RTX A5000", gpuRamMb: 24576, computeCap: 860, tflopsPerGpu: 27.77, gpuMemBw: 768, pcieGen: 4 },
  { gpuName: "RTX A6000", gpuRamMb: 49152, computeCap: 860, tflopsPerGpu: 38.71, gpuMemBw: 768, pcieGen: 4 },
  { gpuName: "A40", gpuRamMb: 49152, computeCap: 860, tflopsPerGpu: 37.42, gpuMemBw: 696, pcieGen: 4 },
  { gpuName: "A10", gpuRamMb: 24576, computeCap: 860, tflopsPerGpu: 31.24, gpuMemBw: 600, pcieGen: 4 },
  { gpuName: "L4", gpuRamMb: 24576, computeCap: 890, tflopsPerGpu: 30.29, gpuMemBw: 300, pcieGen: 4 },
  { gpuName: "L40S", gpuRamMb: 49152, computeCap: 890, tflopsPerGpu: 91.61, gpuMemBw: 864, pcieGen: 4 },
  { gpuName: "RTX 4070", gpuRamMb: 12288, computeCap: 890, tflopsPerGpu: 29.15, gpuMemBw: 504, pcieGen: 4 },
  { gpuName: "RTX 4080", gpuRamMb: 16384, computeCap: 890, tflopsPerGpu: 48.74, gpuMemBw: 717, pcieGen: 4 },
  { gpuName: "RTX 4090", gpuRamMb: 24576, computeCap: 890, tflopsPerGpu: 82.58, gpuMemBw: 1008, pcieGen: 4 },
  { gpuName: "RTX 5090", gpuRamMb: 32768, computeCap: 1200, tflopsPerGpu: 104.8, gpuMemBw: 1792, pcieGen: 5 },
  { gpuName: "A100 PCIE", gpuRamMb: 40960, computeCap: 800, tflopsPerGpu: 19.5, gpuMemBw: 1555, pcieGen: 4 },
  { gpuName: "A100 SXM4", gpuRamMb: 81920, computeCap: 800, tflopsPerGpu: 19.5, gpuMemBw: 2039, pcieGen: 4 },
  { gpuName: "H100 PCIE", gpuRamMb: 81920, computeCap: 900, tflopsPerGpu: 51.22, gpuMemBw: 2000, pcieGen: 5 },
  { gpuName: "H100 SXM", gpuRamMb: 81920, computeCap: 900, tflopsPerGpu: 66.91, gpuMemBw: 3350, pcieGen: 5 },
  { gpuName: "H200", gpuRamMb: 144384, computeCap: 900, tflopsPerGpu: 66.91, gpuMemBw: 4800, pcieGen: 5 },
];

export function gpuModel(gpuName: string): GpuModel | undefined {
  return GPU_MODELS.find((model) => model.gpuName === gpuName);
}

/** GB/s per lane and direction after line encoding, PCIe 1.0 to 6.0. */
const PCIE_LANE_GBPS = [0.25, 0.5, 0.985, 1.969, 3.938, 7.563];

/** Theoretical PCIe bandwidth in GB/s of a link; a measured per-GPU bandwidth can only be lower. */
export function pcieBandwidth(pcieGen: number, lanes = 16): number {
  return PCIE_LANE_GBPS[pcieGen - 1] * lanes;
}

export type DlperfSpecs = Pick<
  Machine,
  "numGpus" | "gpuRamMb" | "computeCap" | "tflopsPerGpu" | "gpuMemBw" | "pcieBw" | "cpuCores" | "diskBw"
>;

/** [lowest compute capability × 100, dense FP16 tensor ÷ FP32 throughput] by architecture. */
const TENSOR_RATIOS: readonly (readonly [number, number])[] = [
  [0, 1], // Pascal and older: no tensor cores
  [700, 8], // Volta, Turing
  [800, 16], // A100
  [860, 4], // Ampere GA10x, Ada
  [900, 15], // Hopper
  [1000, 28], // Blackwell datacenter
  [1100, 4], // Blackwell workstation and GeForce
];

function tensorRatio(computeCap: number): number {
  let ratio = 1;
  for (const [minComputeCap, value] of TENSOR_RATIOS) if (computeCap >= minComputeCap) ratio = value;
  return ratio;
}

type ChipSpecs = Pick<Machine, "computeCap" | "tflopsPerGpu" | "gpuMemBw">;

function unscaledGpuScore(chip: ChipSpecs): number {
  return Math.sqrt(chip.tflopsPerGpu * tensorRatio(chip.computeCap) ** 0.25 * chip.gpuMemBw);
}

const SCALE = 21 / unscaledGpuScore(gpuModel("Tesla V100")!);

/** Score of one GPU in a host that keeps it fed (step 1). */
export function gpuScore(chip: ChipSpecs): number {
  return SCALE * unscaledGpuScore(chip);
}

/** 1 when `have` meets `need`, else (have / need)^exponent. */
function shortfall(have: number, need: number, exponent: number): number {
  return Math.min(1, have / need) ** exponent;
}

/** DLPerf of `numGpus` GPUs of the machine (an offer's chunk), rounded to 2 decimals. */
export function chunkDlperf(machine: DlperfSpecs, numGpus: number): number {
  const s = gpuScore(machine);
  const pcieNeed = 0.25 * s;
  const host =
    shortfall(machine.gpuRamMb / 1024, 8, 0.5) *
    shortfall(machine.pcieBw, pcieNeed, 0.15) *
    shortfall(machine.cpuCores / machine.numGpus, 2 + s / 10, 0.3) *
    shortfall(machine.diskBw / machine.numGpus, 10 * s, 0.2);
  const scaling = 1 - 0.5 / (1 + (2 * machine.pcieBw) / pcieNeed);
  return Math.round(s * host * numGpus ** scaling * 100) / 100;
}

/** DLPerf of the whole machine, stored on it at registration. */
export function machineDlperf(specs: DlperfSpecs): number {
  return chunkDlperf(specs, specs.numGpus);
}
