import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { expect, vi } from "vitest";
import type { TestApp } from "./app.ts";
import { freePortRange } from "./ports.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
  /** Resolves once the agent has made `count` more reconcile passes (its debug log says so). */
  passes(count: number): Promise<void>;
}

const PASS_LINE = '"msg":"reconcile pass"';

/**
 * The real agent program (agent/cli.ts), with the process runtime unless told otherwise, against a
 * real API. In its GPU-less test mode (AGENT_ALLOW_GPULESS) unless `allowGpuless: false`: no engine
 * here can hand out GPUs.
 */
export function spawnAgent(options: {
  api: string;
  key: string;
  machineId: number;
  stateDir: string;
  runtime?: "process" | "docker";
  /** More environment for the agent, such as a PATH with recorded tools first. */
  env?: Record<string, string>;
  allowGpuless?: boolean;
}): AgentProcess {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "agent/cli.ts",
      "--api",
      options.api,
      "--key",
      options.key,
      "--machine",
      String(options.machineId),
      "--runtime",
      options.runtime ?? "process",
      "--state-dir",
      options.stateDir,
      "--poll-seconds",
      "0.2",
      "--heartbeat-seconds",
      "1",
      "--backoff-max-seconds",
      "1",
    ],
    {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "debug", AGENT_ALLOW_GPULESS: options.allowGpuless === false ? "0" : "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const passesSoFar = () => output.split(PASS_LINE).length - 1;
  return {
    child,
    exited,
    output: () => output,
    async passes(count) {
      const target = passesSoFar() + count;
      await vi.waitFor(() => expect(passesSoFar()).toBeGreaterThanOrEqual(target), { timeout: 20_000, interval: 50 });
    },
  };
}

/**
 * Every live process whose environment says it belongs to the container `label` of the API at
 * `apiUrl` (labels repeat across test databases; API ports do not).
 */
export async function processesOf(label: string, apiUrl: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, "utf8").catch(() => "");
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const vars = environ.split("\0");
    if (vars.includes(`CONTAINER_LABEL=${label}`) && vars.includes(`API_URL=${apiUrl}`) && !/\) Z /.test(stat)) pids.push(Number(entry));
  }
  return pids;
}

/** Polls `check` until it returns something other than undefined/false. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await check();
      if (value === undefined || value === false) throw new Error("condition not met in time");
      return value;
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

export interface ApiProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  output(): string;
}

/** A separate API process (test/support/api-server.ts) on the test file's database and Redis prefix. */
export function spawnApi(): Promise<ApiProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/api-server.ts"], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let output = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk;
      const line = output.split("\n").find((l) => l.startsWith('{"url"'));
      if (line) resolve({ child, url: JSON.parse(line).url, exited, output: () => output });
    });
    void exited.then((code) => reject(new Error(`API process exited with ${code}:\n${output}`)));
  });
}

const SPECS = {
  gpuName: "RTX 4090", numGpus: 2, gpuRamMb: 24564, computeCap: 890, tflopsPerGpu: 82.6, gpuMemBw: 1008, pcieGen: 4,
  pcieBw: 24.5, cpuName: "AMD EPYC 7543", cpuCores: 32, cpuRamMb: 128000, diskSpaceGb: 500, diskBw: 3000,
  inetUpMbps: 500, inetDownMbps: 500, cudaMaxGood: 12.4, driverVersion: "550.54.15", countryCode: "DE",
  geolocation: "Hesse, DE",
};

/** A host's machine, registered and listed over GraphQL: its id and its agent's key. */
const DIRECT_PORTS = 10;

export async function registerAndList(
  app: TestApp,
  hostKey: string,
  specs: Partial<typeof SPECS> = {},
): Promise<{ machineId: number; key: string }> {
  const registered = await app.gql(
    `mutation ($input: RegisterMachineInput!) { registerMachine(input: $input) {
       ... on MutationRegisterMachineSuccess { data { machine { id } apiKey { token } } } ... on Error { code message } } }`,
    { input: { ...SPECS, ...specs } },
    hostKey,
  );
  const { machine, apiKey } = registered.data.registerMachine.data;
  // A direct port range free on this host now: other test files publish ports on the same engine.
  const start = await freePortRange(DIRECT_PORTS);
  const network = await app.gql(
    `mutation ($input: MachineNetworkInput!) { setMachineNetwork(input: $input) { __typename ... on Error { code message } } }`,
    { input: { machineId: machine.id, directPortStart: start, directPortEnd: start + DIRECT_PORTS - 1 } },
    hostKey,
  );
  expect(network.data.setMachineNetwork.__typename).toBe("MutationSetMachineNetworkSuccess");
  const listed = await app.gql(
    `mutation ($input: ListMachineInput!) { listMachine(input: $input) { __typename ... on Error { code message } } }`,
    { input: { machineId: machine.id, pricePerGpuHour: "0.30", endDate: new Date(Date.now() + 7 * 86_400_000).toISOString() } },
    hostKey,
  );
  expect(listed.data.listMachine.__typename).toBe("MutationListMachineSuccess");
  return { machineId: Number(machine.id.split(":")[1]), key: apiKey.token };
}
