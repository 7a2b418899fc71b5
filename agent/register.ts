import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { AgentApi } from "./api.ts";
import { type DetectedMachine, type DetectOptions, detectMachine } from "./detect.ts";

export const REGISTER_USAGE = `Usage: npm run agent -- register --api URL --key KEY --country CC --geolocation TEXT [options]

Measures this machine and registers it: its GPUs (nvidia-smi), CPU (/proc/cpuinfo), RAM (/proc/meminfo),
the size and speed of the state directory's disk, and its network up and down against the API. With
--price it is listed at once. The machine's own key is saved in the state directory; start its agent
with: npm run agent -- --state-dir DIR

  --api URL                 the API's GraphQL endpoint (env AGENT_API_URL)
  --key KEY                 your account's API key with the MACHINES permission (env AGENT_API_KEY)
  --country CC              where the machine is: ISO 3166-1 country code, such as US
  --geolocation TEXT        where it is, in words, such as "Oregon, US"
  --state-dir DIR           the agent's state and instances' data (default ~/.gpu-agent/machine-<id>);
                            the disk measured is the file system it is on
  --price DOLLARS           list at once: on-demand price per GPU-hour, such as 0.40
  --min-bid DOLLARS         lowest interruptible bid per GPU-hour (default: the price)
  --storage-price DOLLARS   per GB-month of disk (default 0)
  --inet-up-price DOLLARS   per GB uploaded (default 0)
  --inet-down-price DOLLARS per GB downloaded (default 0)
  --min-chunk N             fewest GPUs rented together (default 1)
  --duration DAYS           a rolling end date this many days ahead (the reference's -l; default 30)
  --end-date DATE           a fixed end date instead, such as 2027-03-01
  --tflops N                FP32 TFLOPS per GPU, for a GPU model the marketplace does not know yet
  --gpu-mem-bw GBPS         its memory bandwidth in GB/s (with --tflops)
  --disk-test-mb N          MB written and read to measure the disk (default 64)
  --net-test-mb N           MB sent each way to measure the network (default 32)
  --dry-run                 measure and print the specs; register nothing
  --help

A machine without an NVIDIA GPU (no nvidia-smi, or none it can see) is not registered: only GPUs are rented here.`;

const dollars = z.string().regex(/^\d+(\.\d{1,6})?$/, "dollars such as 0.40");
const count = z.coerce.number().int().positive();

const registerArgsSchema = z
  .object({
    api: z.url({ protocol: /^https?$/, error: "--api must be an http(s) URL such as http://127.0.0.1:4000/graphql" }),
    key: z.string({ error: "--key (or AGENT_API_KEY) is required: your account's API key" }).min(1),
    country: z.string({ error: "--country is required, such as US" }).min(2),
    geolocation: z.string({ error: '--geolocation is required, such as "Oregon, US"' }).min(1),
    stateDir: z.string().optional(),
    price: dollars.optional(),
    minBid: dollars.optional(),
    storagePrice: dollars.optional(),
    inetUpPrice: dollars.optional(),
    inetDownPrice: dollars.optional(),
    minChunk: count.optional(),
    duration: z.coerce.number().positive().optional(),
    endDate: z.coerce.date().optional(),
    tflops: z.coerce.number().positive().optional(),
    gpuMemBw: z.coerce.number().positive().optional(),
    diskTestMb: count.default(64),
    netTestMb: count.default(32),
    dryRun: z.boolean().default(false),
  })
  .superRefine((args, ctx) => {
    if (args.duration !== undefined && args.endDate !== undefined) ctx.addIssue({ code: "custom", path: ["duration"], message: "--duration or --end-date, not both" });
    if ((args.tflops === undefined) !== (args.gpuMemBw === undefined)) ctx.addIssue({ code: "custom", path: ["tflops"], message: "--tflops and --gpu-mem-bw go together" });
    const listingFlags = [args.minBid, args.storagePrice, args.inetUpPrice, args.inetDownPrice, args.minChunk, args.duration, args.endDate];
    if (args.price === undefined && listingFlags.some((flag) => flag !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["price"], message: "--price is needed to list (the other listing flags go with it)" });
    }
  });
export type RegisterArgs = z.infer<typeof registerArgsSchema>;

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `register`'s command line (after the word register); throws a readable message. */
export function parseRegisterArgs(argv: string[], env: NodeJS.ProcessEnv): RegisterArgs | "help" {
  const names = Object.keys(registerArgsSchema.shape).filter((name) => name !== "dryRun");
  const { values } = parseArgs({
    args: argv,
    options: { ...Object.fromEntries(names.map((name) => [kebab(name), { type: "string" as const }])), "dry-run": { type: "boolean" }, help: { type: "boolean" } },
  });
  if (values.help) return "help";
  const flags = values as Record<string, string | boolean | undefined>;
  const given = Object.fromEntries(names.map((name) => [name, flags[kebab(name)]]));
  const parsed = registerArgsSchema.safeParse({
    ...given,
    api: given.api ?? env.AGENT_API_URL,
    key: given.key ?? env.AGENT_API_KEY,
    stateDir: given.stateDir ?? env.AGENT_STATE_DIR,
    dryRun: values["dry-run"] ?? false,
  });
  if (!parsed.success) {
    throw new Error(
      parsed.error.issues.map((issue) => (issue.message.startsWith("--") ? issue.message : `--${kebab(String(issue.path[0]))}: ${issue.message}`)).join("\n"),
    );
  }
  return parsed.data;
}

/** The specs registerMachine and updateMachine take, from what detection measured. */
export function specsInput(machine: DetectedMachine): Record<string, unknown> {
  const { publicAddress: _address, cpuArch, ...specs } = machine;
  // A detail not reported is omitted: it leaves what the machine has.
  const reported = Object.entries(specs).filter(([, value]) => value !== null && value !== undefined);
  return { ...Object.fromEntries(reported), cpuArch: cpuArch.toUpperCase() };
}

/** What the agent keeps in its state directory: how to reach the API as this machine. */
export interface SavedAgentConfig {
  api: string;
  key: string;
  machine: string;
  publicAddress: string | null;
}
export const AGENT_CONFIG_FILE = "agent.json";
/** The specs last reported, the baseline of the periodic re-check. */
export const REPORTED_SPECS_FILE = "specs.json";

/** Writes a file whole or not at all (the agent may read it at any time), readable by its owner only. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  await writeFile(`${path}.tmp`, content, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

export async function readSavedConfig(stateDir: string): Promise<SavedAgentConfig | null> {
  const text = await readFile(join(stateDir, AGENT_CONFIG_FILE), "utf8").catch(() => null);
  return text === null ? null : (JSON.parse(text) as SavedAgentConfig);
}

function describe(machine: DetectedMachine): string {
  return [
    `GPUs     ${machine.numGpus}x ${machine.gpuName}, ${machine.gpuRamMb} MB VRAM each, driver ${machine.driverVersion}, CUDA ${machine.cudaMaxGood}, ` +
      `PCIe ${machine.pcieGen}.0 at ${machine.pcieBw} GB/s${machine.gpuMaxPowerW === null ? "" : `, ${machine.gpuMaxPowerW} W`}`,
    `CPU      ${machine.cpuName}, ${machine.cpuCores} threads${machine.cpuGhz === null ? "" : ` at ${machine.cpuGhz} GHz`}, ${machine.cpuArch}${machine.hasAvx ? ", AVX" : ", no AVX"}; RAM ${machine.cpuRamMb} MB`,
    `Host     board ${machine.moboName ?? "unknown"}, Ubuntu ${machine.ubuntuVersion ?? "not detected"}, GPU temperature limit ${machine.gpuMaxTempC === null ? "not reported" : `${machine.gpuMaxTempC} °C`}`,
    `Disk     ${machine.diskSpaceGb} GB at ${machine.diskBw} MB/s`,
    `Network  ${machine.inetUpMbps} Mbps up, ${machine.inetDownMbps} Mbps down; seen at ${machine.publicAddress ?? "an unknown address"}`,
  ].join("\n");
}

/**
 * Measures, registers, saves the machine's key and (with --price) lists. Returns the lines to print;
 * throws DetectionError (nothing registered) or a refusal of the API.
 */
export async function registerThisMachine(args: RegisterArgs, probe?: DetectOptions["probe"]): Promise<string> {
  const measureDir = args.stateDir ?? join(homedir(), ".gpu-agent");
  await mkdir(measureDir, { recursive: true, mode: 0o700 });
  const detected = await detectMachine({
    apiUrl: args.api,
    key: args.key,
    dataDir: measureDir,
    ...(probe ? { probe } : {}),
    ...(args.tflops !== undefined && args.gpuMemBw !== undefined ? { gpuModel: { tflopsPerGpu: args.tflops, gpuMemBw: args.gpuMemBw } } : {}),
    diskTestBytes: args.diskTestMb * 1024 * 1024,
    networkTestBytes: args.netTestMb * 1024 * 1024,
  });
  const lines = [describe(detected)];
  if (args.dryRun) return [...lines, "Dry run: nothing registered."].join("\n");

  const api = new AgentApi(args.api, args.key);
  const registered = await api.registerMachine({ ...specsInput(detected), countryCode: args.country, geolocation: args.geolocation });
  if (registered.refused || !registered.data) throw new Error(`registerMachine refused: ${registered.refused?.message ?? "no data"}`);
  const machineId = registered.data.machine.id;
  const stateDir = args.stateDir ?? join(homedir(), ".gpu-agent", `machine-${machineId.replace(/^Machine:/, "")}`);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const saved: SavedAgentConfig = { api: args.api, key: registered.data.apiKey.token, machine: machineId, publicAddress: detected.publicAddress };
  await writeFileAtomic(join(stateDir, AGENT_CONFIG_FILE), `${JSON.stringify(saved, null, 2)}\n`);
  await writeFileAtomic(join(stateDir, REPORTED_SPECS_FILE), `${JSON.stringify(detected, null, 2)}\n`);
  lines.push(`Registered ${machineId} (unverified); its key is saved in ${join(stateDir, AGENT_CONFIG_FILE)}.`);

  if (args.price !== undefined) {
    const listed = await api.listMachine({
      machineId,
      pricePerGpuHour: args.price,
      ...(args.minBid !== undefined ? { minBidPerGpuHour: args.minBid } : {}),
      ...(args.storagePrice !== undefined ? { storagePricePerGbMonth: args.storagePrice } : {}),
      ...(args.inetUpPrice !== undefined ? { inetUpPricePerGb: args.inetUpPrice } : {}),
      ...(args.inetDownPrice !== undefined ? { inetDownPricePerGb: args.inetDownPrice } : {}),
      ...(args.minChunk !== undefined ? { minChunk: args.minChunk } : {}),
      ...(args.endDate !== undefined ? { endDate: args.endDate.toISOString() } : { duration: args.duration ?? 30 }),
    });
    if (listed.refused || !listed.data) throw new Error(`registered ${machineId}, but listMachine refused: ${listed.refused?.message ?? "no data"}`);
    lines.push(
      `Listed at $${args.price} per GPU-hour until ${listed.data.endDate}${args.endDate === undefined ? ` (rolling: kept ${args.duration ?? 30} days ahead)` : ""}.`,
    );
  }
  lines.push(`Start its agent: npm run agent -- --state-dir ${stateDir}`);
  return lines.join("\n");
}
