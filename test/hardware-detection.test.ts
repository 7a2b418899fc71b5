import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectCpuAndRam, detectGpus, detectHostDetails, type HostProbe, measureDisk } from "../agent/detect.ts";
import {
  DetectionError,
  gpuModelFor,
  parseBoardName,
  parseCpuInfo,
  parseGpuMaxTemp,
  parseGpuQuery,
  parseMemInfo,
  parseNvidiaSmiBanner,
  parseUbuntuVersion,
} from "../agent/hardware.ts";
import { chunkDlperf } from "../domain/dlperf.ts";

const fixture = (name: string) => readFile(new URL(`./fixtures/hardware/${name}`, import.meta.url), "utf8");

/** A host as recorded: nvidia-smi's query and banner, /proc files, uname -m. */
async function recordedHost(files: {
  query?: string;
  banner?: string;
  temperature?: string;
  cpuinfo?: string;
  meminfo?: string;
  osRelease?: string;
  boardName?: string;
  machine?: string;
  smiExit?: number;
}): Promise<HostProbe> {
  const text = async (name: string | undefined) => (name === undefined ? undefined : fixture(name));
  const [query, banner, temperature, cpuinfo, meminfo, osRelease, boardName] = await Promise.all(
    [files.query, files.banner, files.temperature, files.cpuinfo, files.meminfo, files.osRelease, files.boardName].map(text),
  );
  const fileAt: Record<string, string | undefined> = {
    "/proc/cpuinfo": cpuinfo,
    "/proc/meminfo": meminfo,
    "/etc/os-release": osRelease,
    "/sys/devices/virtual/dmi/id/board_name": boardName,
  };
  return {
    async run(command, args) {
      expect(command).toBe("nvidia-smi");
      const stdout = args.some((arg) => arg.startsWith("--query-gpu=")) ? query : args.includes("TEMPERATURE") ? temperature : banner;
      if (stdout === undefined) throw Object.assign(new Error("spawn nvidia-smi ENOENT"), { code: "ENOENT" });
      return { code: files.smiExit ?? 0, stdout, stderr: "" };
    },
    async readFile(path) {
      const content = fileAt[path];
      if (content === undefined) throw new Error(`ENOENT: ${path}`);
      return content;
    },
    machine: () => files.machine ?? "x86_64",
  };
}

async function detectionError(promise: Promise<unknown>): Promise<DetectionError> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(DetectionError);
  return error as DetectionError;
}

describe("GPU detection from recorded nvidia-smi output", () => {
  it("8x RTX 4090: model, count, VRAM, driver, max CUDA, PCIe 4.0 x16, 450 W", async () => {
    const gpus = await detectGpus(await recordedHost({ query: "nvidia-smi-8x4090-query.csv", banner: "nvidia-smi-8x4090.txt" }));
    expect(gpus).toEqual({
      gpuName: "RTX 4090",
      numGpus: 8,
      gpuRamMb: 24564,
      computeCap: 890,
      tflopsPerGpu: 82.58,
      gpuMemBw: 1008,
      pcieGen: 4,
      pcieBw: 31.5,
      cudaMaxGood: 12.4,
      driverVersion: "550.54.15",
      gpuMaxPowerW: 450,
    });
  });

  it("1x A100 SXM4 80GB", async () => {
    const gpus = await detectGpus(await recordedHost({ query: "nvidia-smi-a100-query.csv", banner: "nvidia-smi-a100.txt" }));
    expect(gpus).toMatchObject({ gpuName: "A100 SXM4", numGpus: 1, gpuRamMb: 81920, computeCap: 800, cudaMaxGood: 12.2, driverVersion: "535.104.05", gpuMaxPowerW: 400 });
  });

  it("a GPU on a x1 riser sets the machine's PCIe bandwidth; an unreported power limit is null", async () => {
    const gpus = await detectGpus(await recordedHost({ query: "nvidia-smi-riser-query.csv", banner: "nvidia-smi-8x4090.txt" }));
    expect(gpus).toMatchObject({ gpuName: "RTX 3090", numGpus: 2, pcieGen: 3, pcieBw: 0.99, gpuMaxPowerW: null });
    // The slow link shows in DLPerf: two GPUs scale worse than on a full x16 link.
    const machine = { ...gpus, cpuCores: 32, diskBw: 3000 };
    expect(chunkDlperf(machine, 2)).toBeLessThan(chunkDlperf({ ...machine, pcieBw: 15.75 }, 2));
  });

  it("names nvidia-smi's board names by the market's models", () => {
    const cases: [string, string | undefined][] = [
      ["NVIDIA GeForce RTX 4090", "RTX 4090"],
      ["NVIDIA A100-SXM4-80GB", "A100 SXM4"],
      ["NVIDIA A100-PCIE-40GB", "A100 PCIE"],
      ["NVIDIA A100 80GB PCIe", "A100 PCIE"],
      ["NVIDIA H100 80GB HBM3", "H100 SXM"],
      ["NVIDIA H100 PCIe", "H100 PCIE"],
      ["Tesla V100-SXM2-16GB", "Tesla V100"],
      ["NVIDIA GeForce GTX 1080 Ti", "GTX 1080 Ti"],
      ["NVIDIA RTX A6000", "RTX A6000"],
      ["NVIDIA L40S", "L40S"],
      // A faster sibling is not taken for its base model.
      ["NVIDIA GeForce RTX 3080 Ti", undefined],
      ["NVIDIA RTX 6000 Ada Generation", undefined],
    ];
    for (const [name, model] of cases) expect(gpuModelFor(name)?.gpuName, name).toBe(model);
  });

  it("no GPU says so clearly: nvidia-smi missing, no driver, no devices", async () => {
    const missing = await detectionError(detectGpus(await recordedHost({})));
    expect(missing).toMatchObject({ code: "NO_GPU", source: "nvidia-smi" });
    expect(missing.message).toMatch(/not installed: no NVIDIA driver/);

    const noDriver = await detectionError(detectGpus(await recordedHost({ query: "nvidia-smi-no-driver.txt", banner: "nvidia-smi-no-driver.txt", smiExit: 9 })));
    expect(noDriver.code).toBe("NO_GPU");
    expect(noDriver.message).toMatch(/couldn't communicate with the NVIDIA driver/);

    const noDevices = await detectionError(detectGpus(await recordedHost({ query: "nvidia-smi-no-devices.txt", banner: "nvidia-smi-no-devices.txt", smiExit: 6 })));
    expect(noDevices.code).toBe("NO_GPU");
    expect(noDevices.message).toMatch(/No devices were found/);

    expect(() => parseGpuQuery("")).not.toThrow();
    const onlyHeader = await detectionError(
      detectGpus({ ...(await recordedHost({ banner: "nvidia-smi-8x4090.txt" })), run: async () => ({ code: 0, stdout: (await fixture("nvidia-smi-8x4090-query.csv")).split("\n")[0] + "\n", stderr: "" }) }),
    );
    expect(onlyHeader.code).toBe("NO_GPU");
  });

  it.each([
    ["nvidia-smi-mixed-query.csv", "MIXED_GPUS", /different GPU models \(NVIDIA GeForce RTX 4090, NVIDIA GeForce RTX 3090\)/],
    ["nvidia-smi-4090-old-driver-query.csv", "CONTRADICTORY_OUTPUT", /driver versions disagree \(550\.54\.15, 535\.104\.05\)/],
    ["nvidia-smi-4090-wrong-cap-query.csv", "CONTRADICTORY_OUTPUT", /RTX 4090 has compute capability 8\.9, but it reports 7\.5/],
    ["nvidia-smi-truncated-query.csv", "MALFORMED_OUTPUT", /line 2 has 5 values for 8 columns/],
    ["nvidia-smi-no-header-query.csv", "MALFORMED_OUTPUT", /no "index" column/],
    ["nvidia-smi-bad-memory-query.csv", "MALFORMED_OUTPUT", /memory\.total of GPU line 2 is "\[N\/A\]"/],
    ["nvidia-smi-unknown-query.csv", "UNKNOWN_GPU_MODEL", /"NVIDIA RTX 6000 Ada Generation" is not in the marketplace's GPU table/],
  ])("%s is a typed %s", async (query, code, message) => {
    const error = await detectionError(detectGpus(await recordedHost({ query, banner: "nvidia-smi-8x4090.txt" })));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  it("an unknown model registers with the chip specs the host gives", async () => {
    const gpus = await detectGpus(await recordedHost({ query: "nvidia-smi-unknown-query.csv", banner: "nvidia-smi-8x4090.txt" }), { tflopsPerGpu: 91.1, gpuMemBw: 960 });
    expect(gpus).toMatchObject({ gpuName: "RTX 6000 Ada Generation", computeCap: 890, tflopsPerGpu: 91.1, gpuMemBw: 960, gpuRamMb: 49140 });
  });

  it("a banner without driver and CUDA versions is malformed", async () => {
    expect(() => parseNvidiaSmiBanner("NVIDIA-SMI version\n")).toThrow(DetectionError);
    expect(parseNvidiaSmiBanner(await fixture("nvidia-smi-a100.txt"))).toEqual({ driverVersion: "535.104.05", cudaVersion: 12.2 });
  });
});

describe("CPU and RAM from recorded /proc files", () => {
  it("an EPYC with 16 logical CPUs and AVX; 512 GB of RAM", async () => {
    const specs = await detectCpuAndRam(await recordedHost({ cpuinfo: "cpuinfo-epyc-7543-16.txt", meminfo: "meminfo-512g.txt" }));
    expect(specs).toEqual({ cpuName: "AMD EPYC 7543 32-Core Processor", cpuCores: 16, hasAvx: true, cpuArch: "amd64", cpuGhz: 2.8, cpuRamMb: 515_854 });
  });

  it("a CPU without AVX, and an Arm (Grace) host whose cpuinfo has no model name", async () => {
    expect(parseCpuInfo(await fixture("cpuinfo-no-avx-4.txt"), "amd64")).toMatchObject({ cpuCores: 4, hasAvx: false });
    const grace = await detectCpuAndRam(await recordedHost({ cpuinfo: "cpuinfo-grace-4.txt", meminfo: "meminfo-512g.txt", machine: "aarch64" }));
    expect(grace).toMatchObject({ cpuName: "Arm CPU part 0xd4f", cpuCores: 4, hasAvx: false, cpuArch: "arm64" });
  });

  it("malformed or contradictory /proc output is a typed error", async () => {
    expect(() => parseCpuInfo("", "amd64")).toThrow(expect.objectContaining({ code: "MALFORMED_OUTPUT", source: "/proc/cpuinfo" }));
    const mixed = await fixture("cpuinfo-mixed.txt");
    expect(() => parseCpuInfo(mixed, "amd64")).toThrow(expect.objectContaining({ code: "CONTRADICTORY_OUTPUT" }));
    const truncated = await fixture("meminfo-truncated.txt");
    expect(() => parseMemInfo(truncated)).toThrow(expect.objectContaining({ code: "MALFORMED_OUTPUT", source: "/proc/meminfo" }));
    const riscv = await detectionError(detectCpuAndRam(await recordedHost({ cpuinfo: "cpuinfo-epyc-7543-16.txt", meminfo: "meminfo-512g.txt", machine: "riscv64" })));
    expect(riscv.code).toBe("MALFORMED_OUTPUT");
  });
});

describe("clock, temperature limit, motherboard and Ubuntu release", () => {
  it("the CPU clock: rated in the model name, else the highest cpu MHz; neither is null", async () => {
    expect(parseCpuInfo(await fixture("cpuinfo-epyc-7543-16.txt"), "amd64").cpuGhz).toBe(2.8);
    const xeon = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\ncpu MHz\t\t: 3199.999\nflags\t\t: fpu avx\n";
    expect(parseCpuInfo(xeon, "amd64").cpuGhz).toBe(2);
    expect(parseCpuInfo(await fixture("cpuinfo-grace-4.txt"), "arm64").cpuGhz).toBeNull();
  });

  it("the GPUs' temperature limit: the lowest max operating temperature, else the slowdown one", async () => {
    expect(parseGpuMaxTemp(await fixture("nvidia-smi-2x4090-temperature.txt"))).toBe(86);
    expect(parseGpuMaxTemp(await fixture("nvidia-smi-a100-temperature-old-driver.txt"))).toBe(89);
    expect(parseGpuMaxTemp(await fixture("nvidia-smi-8x4090.txt"))).toBeNull();
  });

  it("the board name, without vendor placeholders; the Ubuntu release only on Ubuntu", async () => {
    expect(parseBoardName(await fixture("dmi-board-name-romed8.txt"))).toBe("ROMED8-2T");
    expect(parseBoardName(await fixture("dmi-board-name-placeholder.txt"))).toBeNull();
    expect(parseUbuntuVersion(await fixture("os-release-ubuntu-2204.txt"))).toBe("22.04");
    expect(parseUbuntuVersion(await fixture("os-release-debian-12.txt"))).toBeNull();
  });

  it("a host reports what it can read, and null for what it cannot, without failing", async () => {
    const host = await recordedHost({
      temperature: "nvidia-smi-2x4090-temperature.txt",
      osRelease: "os-release-ubuntu-2204.txt",
      boardName: "dmi-board-name-romed8.txt",
    });
    expect(await detectHostDetails(host)).toEqual({ gpuMaxTempC: 86, moboName: "ROMED8-2T", ubuntuVersion: "22.04" });
    expect(await detectHostDetails(await recordedHost({}))).toEqual({ gpuMaxTempC: null, moboName: null, ubuntuVersion: null });
  });
});

describe("disk measurement", () => {
  it("measures the data directory's size and write/read bandwidth, leaving no file behind", async () => {
    const dir = await mkdtemp(join(tmpdir(), "disk-speed-"));
    try {
      const disk = await measureDisk(dir, 8 * 1024 * 1024);
      expect(disk.diskSpaceGb).toBeGreaterThanOrEqual(1);
      expect(disk.diskBw).toBeGreaterThan(0);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
