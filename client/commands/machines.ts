import { allPages, ApiError, unwrap } from "../client.ts";
import { type Command, type CommandContext, globalId, instantOption, numberOption, printJson, requiredOption, stringOption, UsageError } from "../command.ts";
import { type Column, dollars, fixed, shortId, table, when } from "../format.ts";
import {
  CancelMaintenanceDocument,
  type ListMachineInput,
  ListMachineDocument,
  MachineListingDocument,
  MachineMaintenanceDocument,
  type MachineFieldsFragment,
  type MaintenanceWindowFieldsFragment,
  MyMachinesDocument,
  ScheduleMaintenanceDocument,
  SetMinBidDocument,
  UnlistMachineDocument,
} from "../generated/graphql.ts";

const MACHINE_COLUMNS: Column<MachineFieldsFragment>[] = [
  { header: "ID", value: (m) => shortId(m.id), right: true },
  { header: "N", value: (m) => `${m.numGpus}x`, right: true },
  { header: "Model", value: (m) => m.gpuName },
  { header: "Disk", value: (m) => `${fixed(m.diskSpaceGb, 0)}GB`, right: true },
  { header: "Listed", value: (m) => (m.listed ? "yes" : "no") },
  { header: "Online", value: (m) => (m.inMaintenance ? "maint" : m.online ? "yes" : "no") },
  { header: "Verification", value: (m) => m.verification },
  { header: "R", value: (m) => `${fixed(m.reliability * 100)}%`, right: true },
  { header: "$/GPU-hr", value: (m) => dollars(m.pricePerGpuHour), right: true },
  { header: "Min bid", value: (m) => dollars(m.minBidPerGpuHour), right: true },
  { header: "$/GB-mo", value: (m) => dollars(m.storagePricePerGbMonth), right: true },
  { header: "Up $/GB", value: (m) => dollars(m.inetUpPricePerGb), right: true },
  { header: "Down $/GB", value: (m) => dollars(m.inetDownPricePerGb), right: true },
  { header: "End", value: (m) => `${when(m.endDate)}${m.duration != null ? " (rolling)" : ""}` },
];

function printMachine(ctx: CommandContext, machine: MachineFieldsFragment): void {
  if (ctx.raw) return printJson(ctx, machine);
  ctx.print(table(MACHINE_COLUMNS, [machine]));
}

export const showMachines: Command = {
  name: "show machines",
  usage: "[-q|--quiet] [--raw]",
  summary: "Your machines, listed or not, with their prices (per GPU-hour) and state; --quiet prints the ids only",
  positionals: { min: 0, max: 0 },
  options: { quiet: { type: "boolean", short: "q" } },
  async run(ctx) {
    const machines = await allPages(async (after) => (await ctx.client().request(MyMachinesDocument, { after })).myMachines);
    if (ctx.raw) return printJson(ctx, machines);
    if (ctx.values.quiet) return machines.forEach((m) => ctx.print(shortId(m.id)));
    ctx.print(machines.length === 0 ? "No machines." : table(MACHINE_COLUMNS, machines));
  },
};

const DURATION_UNITS_DAYS: Record<string, number> = { day: 1, week: 7, month: 30, year: 365 };

/** The reference's -l: "3 days", "2 weeks", "1 month", "1 year", or seconds as a plain number; in days. */
export function durationDays(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:(day|week|month|year)s?)?\s*$/i.exec(text);
  if (!match) throw new UsageError(`--duration takes "N days", "N weeks", "N months", "N years" or seconds, not "${text}"`);
  const amount = Number(match[1]);
  return match[2] ? amount * DURATION_UNITS_DAYS[match[2].toLowerCase()]! : amount / 86_400;
}

function noSuchMachine(id: string): ApiError {
  return new ApiError("NOT_FOUND", `no machine ${id} of yours`);
}

export const listMachine: Command = {
  name: "list machine",
  usage:
    "<id> [-g|--price_gpu DOLLARS] [-s|--price_disk DOLLARS] [-u|--price_inetu DOLLARS] [-d|--price_inetd DOLLARS] [-b|--min_bid DOLLARS] [-m|--min_chunk N] [-e|--end_date DATE | -l|--duration TIME] [--raw]",
  summary:
    "List a machine for rent, or change its listing: only the prices given change. --price_gpu and --min_bid per GPU-hour, --price_disk per GB-month, --price_inetu/--price_inetd per GB; -l \"30 days\" is a rolling end date",
  positionals: { min: 1, max: 1 },
  options: {
    price_gpu: { type: "string", short: "g" },
    price_disk: { type: "string", short: "s" },
    price_inetu: { type: "string", short: "u" },
    price_inetd: { type: "string", short: "d" },
    min_bid: { type: "string", short: "b" },
    price_min_bid: { type: "string" },
    min_chunk: { type: "string", short: "m" },
    end_date: { type: "string", short: "e" },
    duration: { type: "string", short: "l" },
  },
  async run(ctx) {
    const machineId = globalId("Machine", ctx.positionals[0]!);
    const duration = stringOption(ctx, "duration");
    const endDate = instantOption(ctx, "end_date");
    if (duration !== undefined && endDate !== undefined) throw new UsageError("give --end_date or --duration, not both");
    // The API needs the GPU price; without --price_gpu the current one is kept, as every other omitted field is.
    let price = stringOption(ctx, "price_gpu");
    if (price === undefined) {
      const { machine } = await ctx.client().request(MachineListingDocument, { id: machineId });
      if (!machine) throw noSuchMachine(machineId);
      price = machine.pricePerGpuHour ?? undefined;
      if (price === undefined) throw new UsageError("this machine was never listed: --price_gpu is required");
    }
    const input: ListMachineInput = {
      machineId,
      pricePerGpuHour: price,
      storagePricePerGbMonth: stringOption(ctx, "price_disk"),
      inetUpPricePerGb: stringOption(ctx, "price_inetu"),
      inetDownPricePerGb: stringOption(ctx, "price_inetd"),
      minBidPerGpuHour: stringOption(ctx, "min_bid") ?? stringOption(ctx, "price_min_bid"),
      minChunk: numberOption(ctx, "min_chunk", true),
      endDate,
      duration: duration === undefined ? undefined : durationDays(duration),
    };
    printMachine(ctx, unwrap((await ctx.client().request(ListMachineDocument, { input })).listMachine));
  },
};

export const unlistMachine: Command = {
  name: "unlist machine",
  usage: "<id> [--raw]",
  summary: "Withdraw a machine's offers from search; rentals on it keep running",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    printMachine(ctx, unwrap((await ctx.client().request(UnlistMachineDocument, { machineId: globalId("Machine", ctx.positionals[0]!) })).unlistMachine));
  },
};

export const setMinBid: Command = {
  name: "set min-bid",
  usage: "<id> --price DOLLARS [--raw]",
  summary: "Set a machine's lowest bid for interruptible rentals, per GPU-hour (at most its on-demand price)",
  positionals: { min: 1, max: 1 },
  options: { price: { type: "string" } },
  async run(ctx) {
    const data = await ctx.client().request(SetMinBidDocument, { machineId: globalId("Machine", ctx.positionals[0]!), price: requiredOption(ctx, "price") });
    printMachine(ctx, unwrap(data.setMinBid));
  },
};

function printWindow(ctx: CommandContext, verb: string, window: MaintenanceWindowFieldsFragment): void {
  if (ctx.raw) return printJson(ctx, window);
  ctx.print(`${verb} ${window.id} on ${window.machineId}: ${when(window.startsAt)} to ${when(window.endsAt)} UTC (${window.durationHours} h)${window.reason ? `: ${window.reason}` : ""}`);
}

export const scheduleMaint: Command = {
  name: "schedule maint",
  usage: "<machine id> --sdate START --duration HOURS [--reason TEXT] [--raw]",
  summary: "Schedule maintenance of a machine (start in unix seconds or ISO-8601, duration in hours); its renters are told",
  positionals: { min: 1, max: 1 },
  options: { sdate: { type: "string" }, duration: { type: "string" }, reason: { type: "string" } },
  async run(ctx) {
    const start = instantOption(ctx, "sdate");
    if (start === undefined) throw new UsageError("--sdate is required");
    const durationHours = numberOption(ctx, "duration");
    if (durationHours === undefined) throw new UsageError("--duration is required");
    const data = await ctx.client().request(ScheduleMaintenanceDocument, {
      machineId: globalId("Machine", ctx.positionals[0]!),
      start,
      durationHours,
      reason: stringOption(ctx, "reason") ?? null,
    });
    printWindow(ctx, "scheduled", unwrap(data.scheduleMaintenance));
  },
};

export const cancelMaint: Command = {
  name: "cancel maint",
  usage: "<machine id | MaintenanceWindow:N> [--raw]",
  summary: "Cancel a machine's maintenance windows that have not ended (or one window by its id)",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const target = ctx.positionals[0]!;
    let ids = [target];
    if (!target.startsWith("MaintenanceWindow:")) {
      const { machine } = await ctx.client().request(MachineMaintenanceDocument, { id: globalId("Machine", target) });
      if (!machine) throw noSuchMachine(target);
      ids = machine.maintenanceWindows.map((w) => w.id);
    }
    if (ids.length === 0) throw new ApiError("NOT_FOUND", `no maintenance to cancel on machine ${target}`);
    const cancelled: MaintenanceWindowFieldsFragment[] = [];
    for (const id of ids) cancelled.push(unwrap((await ctx.client().request(CancelMaintenanceDocument, { id })).cancelMaintenance));
    if (ctx.raw) return printJson(ctx, cancelled);
    for (const window of cancelled) printWindow(ctx, "cancelled", window);
  },
};
