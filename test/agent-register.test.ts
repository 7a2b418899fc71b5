import { type ChildProcess, spawn } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";

/*
 * A host's whole path with the real agent program: `agent register` measures the machine (a fake
 * nvidia-smi on PATH prints recorded output; /proc, the disk and the network are this host's own,
 * the network measured against the test API), registers and lists it; the agent then starts from
 * the state directory alone and reports a driver upgrade through its periodic re-check.
 */

const app = useTestApp();
const root = fileURLToPath(new URL("..", import.meta.url));
const fixtures = fileURLToPath(new URL("./fixtures/hardware/", import.meta.url));

let scratch: string;
let binDir: string;
let smiDir: string;
let host: { userId: number; key: string };
const children: ChildProcess[] = [];

/** What the fake nvidia-smi prints: recorded query and banner output, and its exit code. */
async function recordNvidiaSmi(query: string, banner: string, exitCode = 0): Promise<void> {
  await copyFile(join(fixtures, query), join(smiDir, "query.tmp"));
  await copyFile(join(fixtures, banner), join(smiDir, "banner.tmp"));
  await writeFile(join(smiDir, "exit.tmp"), String(exitCode));
  // Whole files only: the agent may run it at any moment.
  for (const name of ["query", "banner", "exit"]) await copyFile(join(smiDir, `${name}.tmp`), join(smiDir, name));
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "agent-register-"));
  binDir = join(scratch, "bin");
  smiDir = join(scratch, "nvidia-smi");
  await mkdir(binDir);
  await mkdir(smiDir);
  await writeFile(
    join(binDir, "nvidia-smi"),
    `#!/bin/sh\ncase "$*" in\n  *--query-gpu=*) cat "${smiDir}/query" ;;\n  *) cat "${smiDir}/banner" ;;\nesac\nexit $(cat "${smiDir}/exit")\n`,
  );
  await chmod(join(binDir, "nvidia-smi"), 0o755);
  host = await createAccount("host");
});

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rm(scratch, { recursive: true, force: true });
});

function agentCli(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", "agent/cli.ts", ...args], {
    cwd: root,
    env: { ...process.env, PATH: `${binDir}:${process.env.PATH}`, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  return { child, output: () => output, exited: new Promise((resolve) => child.once("exit", resolve)) };
}

const registerArgs = (stateDir: string, extra: string[] = []) => [
  "register",
  "--api",
  app.url,
  "--key",
  host.key,
  "--country",
  "US",
  "--geolocation",
  "Oregon, US",
  "--state-dir",
  stateDir,
  "--disk-test-mb",
  "4",
  "--net-test-mb",
  "4",
  ...extra,
];

const hostMachines = () => prisma.machine.count({ where: { hostId: host.userId } });

describe("agent register", () => {
  it("brings an 8x RTX 4090 machine from nothing to listed, then its agent reports a driver upgrade", async () => {
    await recordNvidiaSmi("nvidia-smi-8x4090-query.csv", "nvidia-smi-8x4090.txt");
    const stateDir = join(scratch, "state-4090");
    const register = agentCli(registerArgs(stateDir, ["--price", "0.45", "--storage-price", "0.10", "--duration", "7"]));
    expect(await register.exited, register.output()).toBe(0);
    expect(register.output()).toMatch(/GPUs +8x RTX 4090, 24564 MB VRAM each, driver 550\.54\.15, CUDA 12\.4, PCIe 4\.0 at 31\.5 GB\/s, 450 W/);
    expect(register.output()).toMatch(/Listed at \$0\.45 per GPU-hour until .* \(rolling: kept 7 days ahead\)/);

    const saved = JSON.parse(await readFile(join(stateDir, "agent.json"), "utf8")) as { api: string; key: string; machine: string; publicAddress: string };
    expect(saved).toMatchObject({ api: app.url, publicAddress: "127.0.0.1" });
    expect((await stat(join(stateDir, "agent.json"))).mode & 0o777).toBe(0o600);
    const machineId = Number(saved.machine.replace("Machine:", ""));
    const machine = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
    expect(machine).toMatchObject({
      hostId: host.userId,
      gpuName: "RTX 4090",
      numGpus: 8,
      gpuRamMb: 24564,
      computeCap: 890,
      pcieGen: 4,
      pcieBw: 31.5,
      driverVersion: "550.54.15",
      cudaMaxGood: 12.4,
      gpuMaxPowerW: 450,
      // This host's own /proc: every logical CPU, all of its RAM.
      cpuCores: cpus().length,
      cpuRamMb: Math.floor(totalmem() / 1024 / 1024),
      cpuArch: process.arch === "arm64" ? "arm64" : "amd64",
      countryCode: "US",
      geolocation: "Oregon, US",
      listed: true,
      pricePerGpuHourMicros: 450_000n,
      storagePricePerGbMonthMicros: 100_000n,
      listingDurationSeconds: 7 * 86_400,
      verification: "UNVERIFIED",
    });
    expect(machine.diskSpaceGb).toBeGreaterThan(0);
    expect(machine.diskBw).toBeGreaterThan(0);
    expect(machine.inetUpMbps).toBeGreaterThan(0);
    expect(machine.inetDownMbps).toBeGreaterThan(0);
    expect(machine.endDate!.getTime()).toBeGreaterThan(Date.now() + 6.9 * 86_400_000);

    // In search, as renters see it.
    const search = await app.gql(`query ($q: String) { offers(query: $q, first: 10) { edges { node { numGpus gpuName } } } }`, {
      q: `machine_id=${machineId} verified=any rentable=any`,
    });
    expect(search.data.offers.edges.map((edge: { node: { numGpus: number } }) => edge.node.numGpus)).toEqual(expect.arrayContaining([1, 2, 4, 8]));

    // The agent starts from the state directory alone; its re-check sees the driver upgrade.
    const agent = agentCli(["--state-dir", stateDir, "--runtime", "process", "--recheck-minutes", "0.01", "--speed-test-mb", "2", "--heartbeat-seconds", "1"]);
    await expect.poll(() => prisma.machine.findUniqueOrThrow({ where: { id: machineId } }).then((m) => m.lastHeartbeatAt), { timeout: 30_000 }).not.toBeNull();
    await recordNvidiaSmi("nvidia-smi-8x4090-driver-560-query.csv", "nvidia-smi-8x4090-driver-560.txt");
    await expect
      .poll(() => prisma.machine.findUniqueOrThrow({ where: { id: machineId } }).then((m) => [m.driverVersion, m.cudaMaxGood]), { timeout: 30_000 })
      .toEqual(["560.35.03", 12.6]);
    const offers = await prisma.offer.findMany({ where: { machineId } });
    expect(offers.every((offer) => offer.driverVersion === "560.35.03" && offer.cudaMaxGood === 12.6)).toBe(true);
    // The new baseline is saved once the API accepted it.
    await expect.poll(async () => JSON.parse(await readFile(join(stateDir, "specs.json"), "utf8")).driverVersion).toBe("560.35.03");
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
  });

  it.each([
    ["no NVIDIA driver", "nvidia-smi-no-driver.txt", "nvidia-smi-no-driver.txt", 9, /\[NO_GPU\].*couldn't communicate with the NVIDIA driver/],
    ["no devices", "nvidia-smi-no-devices.txt", "nvidia-smi-no-devices.txt", 6, /\[NO_GPU\].*No devices were found/],
    ["mixed GPU models", "nvidia-smi-mixed-query.csv", "nvidia-smi-8x4090.txt", 0, /\[MIXED_GPUS\]/],
    ["disagreeing drivers", "nvidia-smi-4090-old-driver-query.csv", "nvidia-smi-8x4090.txt", 0, /\[CONTRADICTORY_OUTPUT\].*driver versions disagree/],
  ])("%s: a clear, typed message and nothing registered", async (_case, query, banner, exitCode, message) => {
    await recordNvidiaSmi(query, banner, exitCode);
    const before = await hostMachines();
    const register = agentCli(registerArgs(join(scratch, `state-refused-${exitCode}-${query}`), ["--price", "0.45"]));
    expect(await register.exited).toBe(1);
    expect(register.output()).toMatch(message);
    expect(register.output()).toMatch(/Nothing was registered\./);
    expect(await hostMachines()).toBe(before);
  });

  it("a bad key or bad flags are refused before anything is measured", async () => {
    await recordNvidiaSmi("nvidia-smi-a100-query.csv", "nvidia-smi-a100.txt");
    const before = await hostMachines();
    const badFlags = agentCli(registerArgs(join(scratch, "state-flags"), ["--duration", "7"]));
    expect(await badFlags.exited).toBe(2);
    expect(badFlags.output()).toMatch(/--price is needed to list/);
    const badKey = agentCli(registerArgs(join(scratch, "state-key")).map((arg) => (arg === host.key ? "not-a-key" : arg)));
    expect(await badKey.exited).toBe(1);
    expect(badKey.output()).toMatch(/speed test answered HTTP 401/);
    expect(await hostMachines()).toBe(before);
  });
});
