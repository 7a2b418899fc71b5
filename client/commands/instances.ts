import { readFile } from "node:fs/promises";
import { unwrap } from "../client.ts";
import {
  type Command,
  type CommandContext,
  globalId,
  numberOption,
  printJson,
  requiredOption,
  stringOption,
  requiredNumber,
  UsageError,
} from "../command.ts";
import { type Column, dollars, fromMicros, shortId, table, toMicros, when, withProgress } from "../format.ts";
import {
  ChangeBidDocument,
  CreateInstanceDocument,
  DestroyInstanceDocument,
  FollowInstanceLogsDocument,
  InstanceLogsDocument,
  RebootInstanceDocument,
  RecycleInstanceDocument,
  type InstanceFieldsFragment,
  type InstanceStatus,
  InstancesDocument,
  LabelInstanceDocument,
  type LaunchMode,
  StartInstanceDocument,
  StopInstanceDocument,
  WatchInstanceDocument,
} from "../generated/graphql.ts";

const ALL_STATUSES: InstanceStatus[] = ["SCHEDULING", "LOADING", "RUNNING", "PAUSED", "STOPPED", "EXITED", "DESTROYED"];

const INSTANCE_COLUMNS: Column<InstanceFieldsFragment>[] = [
  { header: "ID", value: (i) => shortId(i.id), right: true },
  { header: "Label", value: (i) => i.label ?? "-" },
  { header: "Machine", value: (i) => shortId(i.machineId), right: true },
  { header: "Kind", value: (i) => i.kind },
  { header: "Status", value: (i) => i.status },
  { header: "GPUs", value: (i) => String(i.numGpus), right: true },
  { header: "Devices", value: (i) => i.gpuIndices.join(",") || "-" },
  { header: "Image", value: (i) => i.image },
  { header: "Disk", value: (i) => `${i.diskGb}GB`, right: true },
  { header: "$/GPU-hr", value: (i) => dollars(i.pricePerGpuHour), right: true },
  { header: "Bid", value: (i) => dollars(i.bidPerGpuHour), right: true },
  { header: "Created", value: (i) => when(i.createdAt) },
  { header: "Message", value: (i) => i.statusMessage ?? "" },
];

function printInstance(ctx: CommandContext, instance: InstanceFieldsFragment): void {
  if (ctx.raw) return printJson(ctx, instance);
  ctx.print(`${instance.id}: ${instance.status}${instance.statusMessage ? ` (${instance.statusMessage})` : ""}`);
}

/** "K=V" → { key, value }; the value may hold "=". */
function envVar(text: string): { key: string; value: string } {
  const at = text.indexOf("=");
  if (at <= 0) throw new UsageError(`--env takes KEY=VALUE, not "${text}"`);
  return { key: text.slice(0, at), value: text.slice(at + 1) };
}

/** The launch mode flag given, if any. */
export function launchModeOption(ctx: CommandContext): LaunchMode | null {
  const chosen = (["ssh", "jupyter", "entrypoint"] as const).filter((mode) => ctx.values[mode] === true);
  if (chosen.length > 1) throw new UsageError("choose one of --ssh, --jupyter and --entrypoint");
  return (chosen[0]?.toUpperCase() ?? null) as LaunchMode | null;
}

/** Options shared by `create instance` and `create template`. */
export const LAUNCH_OPTIONS = {
  ssh: { type: "boolean" },
  jupyter: { type: "boolean" },
  entrypoint: { type: "boolean" },
  onstart: { type: "string" },
  "onstart-cmd": { type: "string" },
  args: { type: "string", multiple: true },
  options: { type: "string" },
} as const;

export async function onstartScript(ctx: CommandContext): Promise<string | null> {
  const file = stringOption(ctx, "onstart");
  const command = stringOption(ctx, "onstart-cmd");
  if (file && command) throw new UsageError("choose one of --onstart and --onstart-cmd");
  if (file) return readFile(file, "utf8");
  return command ?? null;
}

/**
 * The bid per GPU-hour: --bid as given, or the reference's --bid_price (per machine-hour, that is for
 * all the GPUs of the offer "<machine>-<gpus>") divided exactly by the offer's GPU count.
 */
function bidPerGpuHour(ctx: CommandContext): string | null {
  const perGpu = stringOption(ctx, "bid");
  const perMachine = stringOption(ctx, "bid_price");
  if (perMachine === undefined) return perGpu ?? null;
  if (perGpu !== undefined) throw new UsageError("give --bid (per GPU-hour) or --bid_price (per machine-hour), not both");
  const gpus = /^(?:Offer:)?\d+-(\d+)$/.exec(ctx.positionals[0]!)?.[1];
  if (!gpus) throw new UsageError("--bid_price needs an offer id like 12-4 (machine 12, 4 GPUs)");
  let micros: bigint;
  try {
    micros = toMicros(perMachine);
  } catch (error) {
    throw new UsageError(`--bid_price: ${(error as Error).message}`);
  }
  if (micros % BigInt(gpus) !== 0n) throw new UsageError(`--bid_price ${perMachine} does not split evenly over ${gpus} GPUs: give --bid per GPU-hour instead`);
  return fromMicros(micros / BigInt(gpus));
}

export const createInstance: Command = {
  name: "create instance",
  usage:
    "<offerId> (--image IMAGE --disk GB | --template ID) [--bid PRICE | --bid_price PRICE] [--ssh|--jupyter|--entrypoint] [--onstart FILE | --onstart-cmd CMD] [--args=ARG]... [--options='-p 8081:8081 -e K=V'] [--env K=V]... [--port 8081:8081]... [--label TEXT]",
  summary:
    "Rent an offer: on demand at its price, or interruptible with --bid per GPU-hour (or the reference's --bid_price per machine-hour: for all the offer's GPUs); --template starts from a template",
  positionals: { min: 1, max: 1 },
  options: {
    ...LAUNCH_OPTIONS,
    template: { type: "string" },
    image: { type: "string" },
    disk: { type: "string" },
    bid: { type: "string" },
    bid_price: { type: "string" },
    env: { type: "string", multiple: true },
    port: { type: "string", multiple: true },
    label: { type: "string" },
  },
  async run(ctx) {
    const template = stringOption(ctx, "template");
    // Without a template: image and disk are required, SSH is the default mode.
    const input = {
      offerId: ctx.positionals[0]!,
      templateId: template ? globalId("Template", template) : null,
      image: template ? (stringOption(ctx, "image") ?? null) : requiredOption(ctx, "image"),
      diskGb: template ? (numberOption(ctx, "disk", true) ?? null) : requiredNumber(ctx, "disk", true),
      launchMode: launchModeOption(ctx) ?? (template ? null : "SSH"),
      bidPricePerGpuHour: bidPerGpuHour(ctx),
      onstart: await onstartScript(ctx),
      args: (ctx.values.args as string[] | undefined) ?? null,
      dockerOptions: stringOption(ctx, "options") ?? null,
      env: ((ctx.values.env as string[] | undefined) ?? []).map(envVar),
      ports: (ctx.values.port as string[] | undefined) ?? [],
      label: stringOption(ctx, "label") ?? null,
    };
    const client = ctx.client();
    const data = await withProgress(ctx.io.stderr, "creating instance", () => client.request(CreateInstanceDocument, { input }));
    const { instance, apiKey } = unwrap(data.createInstance);
    if (ctx.raw) return printJson(ctx, { instance, apiKey });
    ctx.print(`created ${instance.id}: ${instance.status}${instance.statusMessage ? ` (${instance.statusMessage})` : ""}`);
    if (apiKey) ctx.print(`instance API key (shown once): ${apiKey.token}`);
    ctx.print(`follow it with: watch instance ${shortId(instance.id)}`);
  },
};

export const showInstances: Command = {
  name: "show instances",
  usage: "[--all] [--raw]",
  summary: "Your instances, newest first (--all includes destroyed ones)",
  positionals: { min: 0, max: 0 },
  options: { all: { type: "boolean" } },
  async run(ctx) {
    const data = await ctx.client().request(InstancesDocument, {
      first: 100,
      status: ctx.values.all ? ALL_STATUSES : null,
    });
    const instances = data.instances.edges.map((edge) => edge.node);
    if (ctx.raw) return printJson(ctx, instances);
    ctx.print(instances.length === 0 ? "No instances." : table(INSTANCE_COLUMNS, instances));
  },
};

/** start/stop/destroy instance <id>: one mutation each, same shape. */
async function lifecycle(client: ReturnType<CommandContext["client"]>, verb: "start" | "stop" | "destroy" | "reboot" | "recycle", id: string) {
  switch (verb) {
    case "start":
      return unwrap((await client.request(StartInstanceDocument, { id })).startInstance);
    case "stop":
      return unwrap((await client.request(StopInstanceDocument, { id })).stopInstance);
    case "destroy":
      return unwrap((await client.request(DestroyInstanceDocument, { id })).destroyInstance);
    case "reboot":
      return unwrap((await client.request(RebootInstanceDocument, { id })).rebootInstance);
    case "recycle":
      return unwrap((await client.request(RecycleInstanceDocument, { id })).recycleInstance);
  }
}

function lifecycleCommand(verb: "start" | "stop" | "destroy" | "reboot" | "recycle", summary: string): Command {
  return {
    name: `${verb} instance`,
    usage: "<id>",
    summary,
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      printInstance(ctx, await lifecycle(ctx.client(), verb, globalId("Instance", ctx.positionals[0]!)));
    },
  };
}

export const startInstance = lifecycleCommand("start", "Start a stopped instance; it waits in SCHEDULING for its GPUs");
export const stopInstance = lifecycleCommand("stop", "Stop an instance; its disk is kept (and charged)");
export const destroyInstance = lifecycleCommand("destroy", "Destroy an instance and its disk; final");
export const rebootInstance = lifecycleCommand("reboot", "Restart an instance's container; its files are kept");
export const recycleInstance = lifecycleCommand("recycle", "Recreate an instance's container from a fresh pull of its image; its files are lost");

export const logs: Command = {
  name: "logs",
  usage: "<id> [--tail N] [--follow]",
  summary: "The last lines of an instance's output (--tail, default 100); --follow keeps printing new ones",
  positionals: { min: 1, max: 1 },
  options: { tail: { type: "string" }, follow: { type: "boolean" } },
  async run(ctx) {
    const id = globalId("Instance", ctx.positionals[0]!);
    const tail = numberOption(ctx, "tail", true) ?? 100;
    const client = ctx.client();
    if (!ctx.values.follow) {
      const { lines } = unwrap((await client.request(InstanceLogsDocument, { id, tail })).instanceLogs);
      if (ctx.raw) return printJson(ctx, lines);
      for (const line of lines) ctx.print(line);
      return;
    }
    const subscription = client.subscribe(FollowInstanceLogsDocument, { id, tail }, ({ instanceLogs }) => {
      for (const line of instanceLogs.lines) ctx.print(ctx.raw ? JSON.stringify(line) : line);
    });
    await subscription.done;
  },
};

export const changeBid: Command = {
  name: "change bid",
  usage: "<id> --price PRICE",
  summary: "Set an interruptible instance's bid per GPU-hour",
  positionals: { min: 1, max: 1 },
  options: { price: { type: "string" } },
  async run(ctx) {
    const id = globalId("Instance", ctx.positionals[0]!);
    const data = await ctx.client().request(ChangeBidDocument, { id, price: requiredOption(ctx, "price") });
    const instance = unwrap(data.changeBid);
    if (ctx.raw) return printJson(ctx, instance);
    ctx.print(`${instance.id}: bid ${dollars(instance.bidPerGpuHour)}/GPU-hr, ${instance.status}${instance.statusMessage ? ` (${instance.statusMessage})` : ""}`);
  },
};

const FINAL: InstanceStatus[] = ["EXITED", "DESTROYED"];

export const watchInstance: Command = {
  name: "watch instance",
  usage: "<id> [--until STATUS]",
  summary: "Follow an instance's status live until it ends (or reaches --until, e.g. RUNNING)",
  positionals: { min: 1, max: 1 },
  options: { until: { type: "string" } },
  async run(ctx) {
    const id = globalId("Instance", ctx.positionals[0]!);
    const until = stringOption(ctx, "until")?.toUpperCase() as InstanceStatus | undefined;
    if (until && !ALL_STATUSES.includes(until)) throw new UsageError(`--until takes one of ${ALL_STATUSES.join(", ")}`);
    const client = ctx.client();
    let last = "";
    let finished = false;
    const subscription = client.subscribe(WatchInstanceDocument, { id }, ({ instanceStatus: instance }) => {
      // The subscription repeats the instance on status-message changes too; print each distinct step once.
      const line = `${instance.status}${instance.statusMessage ? `: ${instance.statusMessage}` : ""}`;
      if (line !== last) {
        last = line;
        if (ctx.raw) printJson(ctx, instance);
        else ctx.print(`${when(instance.statusChangedAt, true)}  ${instance.id}  ${line}`);
      }
      if (instance.status === until || FINAL.includes(instance.status)) {
        finished = true;
        void subscription.close();
      }
    });
    await subscription.done.catch((error: unknown) => {
      // Our own close() may end the socket before the completion arrives.
      if (!finished) throw error;
    });
  },
};

export const labelInstance: Command = {
  name: "label instance",
  usage: "<id> <label>",
  summary: "Set an instance's label (an empty label clears it)",
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [id, label] = ctx.positionals as [string, string];
    const instance = unwrap((await ctx.client().request(LabelInstanceDocument, { id: globalId("Instance", id), label })).labelInstance);
    if (ctx.raw) return printJson(ctx, instance);
    ctx.print(`${instance.id}: label ${instance.label ? `"${instance.label}"` : "cleared"}`);
  },
};
