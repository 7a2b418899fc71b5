import type { IssuedKey } from "../domain/apiKeys.ts";
import { extendMachineEndDate, listMachine, myMachines, registerMachine, setMachineNetwork, setMinBid, unlistMachine } from "../domain/machines.ts";
import { seesMachine } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import { type Machine, VerificationState as VerificationStateValues } from "../prisma/generated/client/client.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { selection } from "./selection.ts";

const VerificationState = builder.enumType(VerificationStateValues, {
  name: "VerificationState",
  description: "Machines start unverified; operators verify them after checks and deverify them on problems.",
});

export const MachineRef = builder.prismaNode("Machine", {
  id: { field: "id" },
  description: "A host's GPU machine: its specs and its listing. Only its host sees it.",
  // Defence in depth: every path to a machine already filters by host.
  authScopes: (machine, ctx) => seesMachine(ctx.viewer, machine),
  fields: (t) => ({
    gpuName: t.exposeString("gpuName"),
    numGpus: t.exposeInt("numGpus"),
    publicAddress: t.exposeString("publicAddress", { nullable: true, description: "The fixed address the host declared (setMachineNetwork)." }),
    reportedAddress: t.exposeString("reportedAddress", { nullable: true, description: "The address its agent sees itself at; used unless publicAddress is set." }),
    directPortStart: t.exposeInt("directPortStart", { nullable: true, description: "First external port for direct connections." }),
    directPortEnd: t.exposeInt("directPortEnd", { nullable: true, description: "Last external port for direct connections (inclusive)." }),
    gpuRamMb: t.exposeInt("gpuRamMb", { description: "VRAM per GPU in MB." }),
    computeCap: t.exposeInt("computeCap", { description: "Compute capability × 100 (8.6 is 860)." }),
    tflopsPerGpu: t.exposeFloat("tflopsPerGpu", { description: "Peak FP32 TFLOPS per GPU." }),
    gpuMemBw: t.exposeFloat("gpuMemBw", { description: "GPU memory bandwidth in GB/s." }),
    pcieGen: t.exposeInt("pcieGen"),
    pcieBw: t.exposeFloat("pcieBw", { description: "PCIe bandwidth per GPU in GB/s." }),
    cpuName: t.exposeString("cpuName"),
    cpuCores: t.exposeInt("cpuCores"),
    cpuRamMb: t.exposeInt("cpuRamMb"),
    diskSpaceGb: t.exposeFloat("diskSpaceGb"),
    diskBw: t.exposeFloat("diskBw", { description: "Disk bandwidth in MB/s." }),
    inetUpMbps: t.exposeFloat("inetUpMbps"),
    inetDownMbps: t.exposeFloat("inetDownMbps"),
    cudaMaxGood: t.exposeFloat("cudaMaxGood", { description: "Highest CUDA version the driver runs." }),
    driverVersion: t.exposeString("driverVersion"),
    countryCode: t.exposeString("countryCode", { description: "ISO 3166-1 alpha-2." }),
    geolocation: t.exposeString("geolocation"),
    datacenter: t.exposeBoolean("datacenter", { description: "In a vetted datacenter (secure cloud)." }),
    verification: t.expose("verification", { type: VerificationState }),
    dlperf: t.exposeFloat("dlperf", { description: "DLPerf of the whole machine; see domain/dlperf.ts." }),
    reliability: t.exposeFloat("reliability"),
    online: t.exposeBoolean("online"),
    listed: t.exposeBoolean("listed"),
    pricePerGpuHour: t.field({
      type: "Money",
      nullable: true,
      description: "On-demand price per GPU-hour; null until first listed.",
      resolve: (machine) => machine.pricePerGpuHourMicros,
    }),
    minBidPerGpuHour: t.field({
      type: "Money",
      nullable: true,
      description: "Lowest bid per GPU-hour for interruptible rentals.",
      resolve: (machine) => machine.minBidPerGpuHourMicros,
    }),
    storagePricePerGbMonth: t.field({
      type: "Money",
      nullable: true,
      resolve: (machine) => machine.storagePricePerGbMonthMicros,
    }),
    inetUpPricePerGb: t.field({ type: "Money", nullable: true, resolve: (machine) => machine.inetUpPricePerGbMicros }),
    inetDownPricePerGb: t.field({
      type: "Money",
      nullable: true,
      resolve: (machine) => machine.inetDownPricePerGbMicros,
    }),
    minChunk: t.exposeInt("minChunk", { description: "Smallest number of GPUs rented together." }),
    endDate: t.expose("endDate", {
      type: "DateTime",
      nullable: true,
      description: "The listing's end: the longest a new rental may run.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const RegisterMachineInput = builder.inputType("RegisterMachineInput", {
  description: "The machine's hardware as its agent measured it.",
  fields: (t) => ({
    gpuName: t.string({ required: true }),
    numGpus: t.int({ required: true, description: "1 to 16." }),
    gpuRamMb: t.int({ required: true, description: "VRAM per GPU in MB." }),
    computeCap: t.int({ required: true, description: "Compute capability × 100 (8.6 is 860)." }),
    tflopsPerGpu: t.float({ required: true, description: "Peak FP32 TFLOPS per GPU." }),
    gpuMemBw: t.float({ required: true, description: "GPU memory bandwidth in GB/s." }),
    pcieGen: t.int({ required: true, description: "1 to 6." }),
    pcieBw: t.float({ required: true, description: "PCIe bandwidth per GPU in GB/s." }),
    cpuName: t.string({ required: true }),
    cpuCores: t.int({ required: true }),
    cpuRamMb: t.int({ required: true }),
    diskSpaceGb: t.float({ required: true }),
    diskBw: t.float({ required: true, description: "Disk bandwidth in MB/s." }),
    inetUpMbps: t.float({ required: true }),
    inetDownMbps: t.float({ required: true }),
    cudaMaxGood: t.float({ required: true, description: "Highest CUDA version the driver runs, such as 12.4." }),
    driverVersion: t.string({ required: true, description: "Such as 550.54.15." }),
    countryCode: t.string({ required: true, description: "ISO 3166-1 alpha-2, such as US." }),
    geolocation: t.string({ required: true, description: "Where people would say it is, such as Oregon, US." }),
    datacenter: t.boolean({ required: true, defaultValue: false }),
  }),
});

const RegisterMachinePayload = builder
  .objectRef<{ machine: Machine; apiKey: IssuedKey }>("RegisterMachinePayload")
  .implement({
    fields: (t) => ({
      machine: t.field({ type: MachineRef, resolve: (payload) => payload.machine }),
      apiKey: t.field({
        type: IssuedApiKeyRef,
        description: "The MACHINE-scoped key for the machine's agent, shown only now.",
        resolve: (payload) => payload.apiKey,
      }),
    }),
  });

builder.mutationField("registerMachine", (t) =>
  t.withAuth({ permission: "MACHINES" }).field({
    type: RegisterMachinePayload,
    description:
      "Registers a machine by its specs; it starts unverified and unlisted. Returns its agent's MACHINE-scoped key, shown once.",
    errors: {},
    args: { input: t.arg({ type: RegisterMachineInput, required: true }) },
    resolve: (_root, { input }, ctx) => registerMachine(ctx.viewer.userId, input),
  }),
);

const ListMachineInput = builder.inputType("ListMachineInput", {
  description:
    "A listing or a change to it: omitted optional fields keep their earlier values; null ones (and omitted ones on a first listing) take their defaults. Rentals keep the price and end date they started with.",
  fields: (t) => ({
    machineId: t.globalID({ required: true }),
    pricePerGpuHour: t.field({ type: "Money", required: true, description: "On-demand price per GPU-hour." }),
    minBidPerGpuHour: t.field({
      type: "Money",
      description:
        "Lowest bid per GPU-hour for interruptible rentals, at most the price; omitted: the earlier min bid (lowered to the price if above it); default: the price.",
    }),
    storagePricePerGbMonth: t.field({ type: "Money", description: "Omitted: the earlier price; default 0." }),
    inetUpPricePerGb: t.field({ type: "Money", description: "Omitted: the earlier price; default 0." }),
    inetDownPricePerGb: t.field({ type: "Money", description: "Omitted: the earlier price; default 0." }),
    minChunk: t.int({
      description: "Smallest number of GPUs rented together: a power of two up to the GPU count; omitted: the earlier one; default 1.",
    }),
    endDate: t.field({ type: "DateTime", required: true, description: "Within a year from now." }),
  }),
});

builder.mutationField("listMachine", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Lists (or relists) the machine: its offers appear in search at once. Existing rentals keep their terms.",
    errors: {},
    args: { input: t.arg({ type: ListMachineInput, required: true }) },
    resolve: (_query, _root, { input }, ctx) => {
      const machineId = localId(input.machineId, "Machine", "machineId");
      return listMachine(ctx.viewer.userId, { ...input, machineId });
    },
  }),
);

builder.mutationField("unlistMachine", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Withdraws the machine's offers from search. Existing rentals keep running.",
    errors: {},
    args: { machineId: t.arg.globalID({ required: true }) },
    resolve: (_query, _root, args, ctx) => {
      const machineId = localId(args.machineId, "Machine", "machineId");
      return unlistMachine(ctx.viewer.userId, machineId);
    },
  }),
);

builder.mutationField("setMinBid", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Sets the lowest bid per GPU-hour that interruptible rentals may pay, at most the on-demand price.",
    errors: {},
    args: {
      machineId: t.arg.globalID({ required: true }),
      pricePerGpuHour: t.arg({ type: "Money", required: true }),
    },
    resolve: (_query, _root, args, ctx) => {
      const machineId = localId(args.machineId, "Machine", "machineId");
      return setMinBid(ctx.viewer.userId, machineId, args.pricePerGpuHour);
    },
  }),
);

builder.mutationField("extendMachineEndDate", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description: "Moves the machine's listing end date later, and every contract on it that has not ended with it.",
    errors: {},
    args: { machineId: t.arg.globalID({ required: true }), endDate: t.arg({ type: "DateTime", required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const machine = await extendMachineEndDate(ctx.viewer.userId, localId(args.machineId, "Machine", "machineId"), args.endDate);
      return prisma.machine.findUniqueOrThrow({ ...selection(query), where: { id: machine.id } });
    },
  }),
);

builder.queryField("myMachines", (t) =>
  t.withAuth({ permission: "READ" }).prismaField({
    type: ["Machine"],
    description: "The caller's machines, oldest first.",
    resolve: (query, _root, _args, ctx) => myMachines(prisma, ctx.viewer.userId, query),
  }),
);

const MachineNetworkInput = builder.inputType("MachineNetworkInput", {
  fields: (t) => ({
    machineId: t.globalID({ required: true }),
    publicAddress: t.string({ description: "A fixed public address (IP or host name); omitted: the address the agent reports." }),
    directPortStart: t.int({ required: true, description: "First external port renters' ports are mapped to." }),
    directPortEnd: t.int({ required: true, description: "Last one (inclusive); at most 10,000 ports." }),
  }),
});

builder.mutationField("setMachineNetwork", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "How renters reach the machine: its public address and the range of external ports that instances' ports are mapped to. Instances keep the ports they hold.",
    errors: {},
    args: { input: t.arg({ type: MachineNetworkInput, required: true }) },
    resolve: (_query, _root, { input }, ctx) => {
      const machineId = localId(input.machineId, "Machine", "machineId");
      return setMachineNetwork(ctx.viewer.userId, { ...input, machineId });
    },
  }),
);
