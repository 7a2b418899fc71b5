import DataLoader from "dataloader";
import type { Context } from "../api/context.ts";
import { HOLDING_STATUSES } from "../domain/auction/contracts.ts";
import { seesMachine } from "../domain/authorization.ts";
import { type EarningsSplit, contractEarnings } from "../domain/billing/statements.ts";
import { RentalKind as RentalKindValues, InstanceStatus as InstanceStatusValues } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";

/*
 * The host's view of the rentals on its machines: the contract's terms, state and what it has
 * earned, and nothing of the client (no account, label, image, environment, onstart or keys).
 */

const ContractEarningsRef = builder.objectRef<EarningsSplit>("ContractEarnings").implement({
  description: "What a contract has earned its host so far (charged up to the metering clock), after the platform fee, in US dollars.",
  fields: (t) => ({
    gpu: t.field({ type: "Money", description: "For GPU time.", resolve: (split) => split.gpuMicros }),
    storage: t.field({ type: "Money", description: "For disk held, running or not.", resolve: (split) => split.storageMicros }),
    bandwidth: t.field({ type: "Money", description: "For traffic up and down.", resolve: (split) => split.bandwidthMicros }),
    total: t.field({ type: "Money", description: "The sum of gpu, storage and bandwidth.", resolve: (split) => split.totalMicros }),
  }),
});

/** Contract earnings read in one statement per host and request (a page of contracts, or of machines). */
const earningsLoaders = new WeakMap<Context, DataLoader<{ hostId: number; instanceId: number }, EarningsSplit, string>>();

function earningsLoader(ctx: Context): DataLoader<{ hostId: number; instanceId: number }, EarningsSplit, string> {
  let loader = earningsLoaders.get(ctx);
  if (!loader) {
    loader = new DataLoader(
      async (keys) => {
        const found = new Map<string, EarningsSplit>();
        for (const hostId of new Set(keys.map((key) => key.hostId))) {
          const ids = keys.filter((key) => key.hostId === hostId).map((key) => key.instanceId);
          for (const [instanceId, split] of await contractEarnings(hostId, ids)) found.set(`${hostId}:${instanceId}`, split);
        }
        return keys.map((key) => found.get(`${key.hostId}:${key.instanceId}`)!);
      },
      { cacheKeyFn: (key) => `${key.hostId}:${key.instanceId}` },
    );
    earningsLoaders.set(ctx, loader);
  }
  return loader;
}

const ContractKind = builder.enumType(RentalKindValues, {
  name: "ContractKind",
  description: "How the contract rents its GPUs.",
  values: {
    ON_DEMAND: { description: "Pays the machine's on-demand price, locked at its start; never interrupted." },
    INTERRUPTIBLE: { description: "Pays its bid while the bid wins the machine's auction; paused while outbid." },
  },
});

const ContractStatus = builder.enumType(InstanceStatusValues, {
  name: "ContractStatus",
  description: "Where the rental stands on the machine.",
  values: {
    SCHEDULING: { description: "Waiting for its GPUs (or for the machine to come back online)." },
    LOADING: { description: "Holds its GPUs; the container is starting." },
    RUNNING: { description: "Holds its GPUs and runs." },
    PAUSED: { description: "Interruptible and outbid or preempted: holds no GPUs, keeps its disk." },
    STOPPED: { description: "Stopped by the client: holds no GPUs, keeps its disk (storage is still paid)." },
    EXITED: { description: "Its end date passed or its container ended: keeps its disk until destroyed." },
    DESTROYED: { description: "Ended for good; its disk was freed." },
  },
});

export const MachineContractRef = builder.prismaObject("Instance", {
  variant: "MachineContract",
  description:
    "A rental on one of the caller's machines as its host sees it: the terms, the state and the earnings, never who rents it or what it runs. Only the machine's host (and its agent) sees it.",
  fields: (t) => ({
    instanceId: t.globalID({ description: "The rented instance, as the agent knows it.", resolve: (instance) => ({ type: "Instance", id: instance.id }) }),
    kind: t.expose("kind", { type: ContractKind, description: "On-demand or interruptible." }),
    numGpus: t.exposeInt("numGpus", { description: "GPUs rented." }),
    gpuIndices: t.intList({
      description: "The machine's GPUs (0-based) it holds while LOADING or RUNNING; empty otherwise.",
      resolve: (instance) => (HOLDING_STATUSES.has(instance.status) ? instance.gpuIndices : []),
    }),
    diskGb: t.exposeInt("diskGb", { description: "Disk reserved on the machine, GB." }),
    pricePerGpuHour: t.field({
      type: "Money",
      description: "On-demand: the price per GPU-hour locked at the start, in US dollars. Interruptible: the current bid per GPU-hour.",
      resolve: (instance) => (instance.kind === "INTERRUPTIBLE" ? (instance.bidPerGpuHourMicros ?? instance.pricePerGpuHourMicros) : instance.pricePerGpuHourMicros),
    }),
    bidPerGpuHour: t.field({
      type: "Money",
      nullable: true,
      description: "Interruptible only: the current bid per GPU-hour, in US dollars; null for on-demand.",
      resolve: (instance) => instance.bidPerGpuHourMicros,
    }),
    storagePricePerGbMonth: t.field({
      type: "Money",
      description: "The storage price per GB-month (30 days) locked at the start, in US dollars.",
      resolve: (instance) => instance.storagePricePerGbMonthMicros,
    }),
    status: t.expose("status", { type: ContractStatus, description: "Where it stands now." }),
    statusChangedAt: t.expose("statusChangedAt", { type: "DateTime", description: "When it entered its status." }),
    since: t.expose("createdAt", { type: "DateTime", description: "When the contract began." }),
    endDate: t.expose("endDate", { type: "DateTime", description: "When the contract ends (its lifetime); it moves only by the host's extendMachineEndDate." }),
    endedAt: t.field({
      type: "DateTime",
      nullable: true,
      description: "When it was destroyed; null while it lasts.",
      resolve: (instance) => (instance.status === "DESTROYED" ? (instance.destroyedAt ?? instance.statusChangedAt) : null),
    }),
    earnings: t.field({
      type: ContractEarningsRef,
      description: "What it has earned the host so far, as it accrues.",
      select: { machine: { select: { hostId: true } } },
      resolve: (instance, _args, ctx) => earningsLoader(ctx).load({ hostId: instance.machine.hostId, instanceId: instance.id }),
    }),
  }),
});

builder.prismaObjectFields("Machine", (t) => ({
  contracts: t.relatedConnection(
    "instances",
    {
      type: MachineContractRef,
      cursor: "id",
      totalCount: true,
      // Its host's view only, whichever path reaches the machine.
      authScopes: (machine, _args, ctx) => seesMachine(ctx.viewer, machine),
      description: "The rentals on this machine, oldest first: the live ones (every one not destroyed), and with `includeEnded` the destroyed ones too. Host only.",
      args: { includeEnded: t.arg.boolean({ defaultValue: false, description: "Also list destroyed contracts, for the machine's history." }) },
      query: (args) => ({ where: args.includeEnded ? {} : { status: { not: "DESTROYED" } }, orderBy: { id: "asc" } }),
    },
    { description: "A page of a machine's contracts." },
    { description: "One contract on the machine." },
  ),
}));
