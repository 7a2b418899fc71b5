import { describe, expect, it } from "vitest";
import {
  chunkDlperf,
  type DlperfSpecs,
  GPU_MODELS,
  type GpuModel,
  gpuModel,
  machineDlperf,
  pcieBandwidth,
} from "../domain/dlperf.ts";

function model(name: string): GpuModel {
  const found = gpuModel(name);
  if (!found) throw new Error(`no GPU model ${name}`);
  return found;
}

/** A host that keeps every GPU fed: x16 on the card's PCIe generation, 16 cores and 4 GB/s of NVMe per GPU. */
function standardHost(name: string, numGpus = 1, overrides: Partial<DlperfSpecs> = {}): DlperfSpecs {
  const gpu = model(name);
  return {
    ...gpu,
    numGpus,
    pcieBw: pcieBandwidth(gpu.pcieGen),
    cpuCores: 16 * numGpus,
    diskBw: 4000 * numGpus,
    ...overrides,
  };
}

const single = (name: string) => machineDlperf(standardHost(name));

describe("DLPerf", () => {
  it("scores a V100 21 and a 1080 Ti about 10, as the reference marketplace does", () => {
    expect(single("Tesla V100")).toBeCloseTo(21, 2);
    expect(single("GTX 1080 Ti")).toBeGreaterThan(9.5);
    expect(single("GTX 1080 Ti")).toBeLessThan(10.5);
    const speedup = single("Tesla V100") / single("GTX 1080 Ti");
    expect(speedup).toBeGreaterThan(1.9);
    expect(speedup).toBeLessThan(2.3);
  });

  // One GPU in a standard host. A change to the formula or the table must update these on purpose.
  const pinned: [string, number][] = [
    ["GTX 1080 Ti", 10.1],
    ["RTX 2080 Ti", 16.1],
    ["Titan V", 17.4],
    ["Tesla V100", 21.0],
    ["Tesla T4", 9.0],
    ["RTX 3060", 11.0],
    ["RTX 3070", 15.5],
    ["RTX 3080", 24.4],
    ["RTX 3090", 29.6],
    ["RTX A4000", 15.0],
    ["RTX A5000", 23.7],
    ["RTX A6000", 27.9],
    ["A40", 26.1],
    ["A10", 22.2],
    ["L4", 15.4],
    ["L40S", 45.6],
    ["RTX 4070", 19.6],
    ["RTX 4080", 30.3],
    ["RTX 4090", 46.7],
    ["RTX 5090", 70.2],
    ["A100 PCIE", 33.6],
    ["A100 SXM4", 38.4],
    ["H100 PCIE", 61.2],
    ["H100 SXM", 90.5],
    ["H200", 108.3],
  ];

  it.each(pinned)("pins %s at %s", (name, expected) => {
    expect(Math.abs(single(name) - expected)).toBeLessThanOrEqual(0.15);
  });

  it("covers every GPU of the reference table, each named once", () => {
    expect(GPU_MODELS.map((gpu) => gpu.gpuName).sort()).toEqual(pinned.map(([name]) => name).sort());
  });

  it("orders GPUs the way public training benchmarks do", () => {
    const chains = [
      ["Tesla T4", "GTX 1080 Ti", "RTX 2080 Ti", "Tesla V100", "RTX 3090", "A100 PCIE", "A100 SXM4", "H100 PCIE"],
      ["H100 PCIE", "H100 SXM", "H200"],
      ["RTX 3060", "RTX 3070", "RTX 3080", "RTX 3090", "RTX 4090", "RTX 5090"],
      ["RTX 4070", "RTX 4080", "RTX 4090"],
      ["RTX A4000", "RTX A5000", "RTX A6000"],
      ["Tesla T4", "L4", "A10", "A40", "L40S"],
      ["Titan V", "Tesla V100"],
    ];
    for (const chain of chains) {
      for (let i = 1; i < chain.length; i++) {
        expect(single(chain[i]), `${chain[i]} > ${chain[i - 1]}`).toBeGreaterThan(single(chain[i - 1]));
      }
    }
  });

  it("scales several GPUs sublinearly, worse on narrow PCIe", () => {
    const one = chunkDlperf(standardHost("RTX 3090", 8), 1);
    const scores = [1, 2, 4, 8].map((n) => chunkDlperf(standardHost("RTX 3090", 8), n));
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeGreaterThan(scores[i - 1]);
    expect(scores[3]).toBeLessThan(8 * one);
    expect(scores[3]).toBeGreaterThan(6.5 * one);

    const riser = standardHost("RTX 3090", 8, { pcieBw: pcieBandwidth(3, 1) });
    expect(chunkDlperf(riser, 8) / chunkDlperf(riser, 1)).toBeLessThan(4.5);
    expect(machineDlperf(riser)).toBeLessThan(machineDlperf(standardHost("RTX 3090", 8)) / 2);
  });

  it("is the whole machine's chunk at registration", () => {
    const specs = standardHost("RTX 4090", 4);
    expect(machineDlperf(specs)).toBe(chunkDlperf(specs, 4));
  });

  it("lowers the score for a weak CPU, a slow disk, narrow PCIe or small VRAM, never raises it past the GPU", () => {
    const base = single("RTX 4090");
    const worse: Partial<DlperfSpecs>[] = [
      { cpuCores: 2 },
      { diskBw: 150 },
      { pcieBw: pcieBandwidth(3, 1) },
      { gpuRamMb: 4096 },
    ];
    for (const override of worse) {
      expect(machineDlperf(standardHost("RTX 4090", 1, override)), JSON.stringify(override)).toBeLessThan(base * 0.95);
    }
    const lavish = standardHost("RTX 4090", 1, { cpuCores: 256, diskBw: 50_000, pcieBw: pcieBandwidth(6) });
    expect(machineDlperf(lavish)).toBe(base);
  });

  it("shares the host's CPU and disk between its GPUs", () => {
    const starved = standardHost("Tesla V100", 8, { cpuCores: 8, diskBw: 500 });
    expect(chunkDlperf(starved, 1)).toBeLessThan(single("Tesla V100") * 0.8);
  });
});
