import type { IssuedKey } from "../domain/apiKeys.ts";
import { extendMachineEndDate, listMachine, myMachines, myMachinesWhere, registerMachine, setMachineNetwork, setMinBid, unlistMachine } from "../domain/machines.ts";
import { readsMachine } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import { type Machine, VerificationState as VerificationStateValues } from "../prisma/generated/client/client.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { detectedSpecFields } from "./machineSpecs.ts";
import { selection } from "./selection.ts";
import { describedValues } from "./enumValues.ts";

export const VerificationState = builder.enumType("VerificationState", {
  description: "Machines start unverified; operators verify them after checks and deverify them on problems.",
  values: describedValues(VerificationStateValues, {
    UNVERIFIED: "Not checked yet: its offers show only when a search asks for unverified machines.",
    VERIFIED: "Checked by operators: its offers show in the default search.",
    DEVERIFIED: "Verified once, then found wanting: its offers show only when a search asks for them.",
  }),
});

/** Fields anyone may read on a listed machine (the specs and prices its offers show); the rest is its host's. */
const PUBLIC = { skipTypeScopes: true } as const;

export const MachineRef = builder.prismaNode("Machine", {
  id: { field: "id", ...PUBLIC },
  description:
    "A host's GPU machine: its specs and its listing. Anyone may read a listed machine's public fields (specs, prices, verification, reliability); its host (and its agent) and operators read every field, listed or not. Another caller asking for a host-only field gets a FORBIDDEN error for that field.",
  // Host-only unless a field says PUBLIC: a field added later stays private by default.
  authScopes: (machine, ctx) => readsMachine(ctx.viewer, machine),
  fields: (t) => ({
    gpuName: t.exposeString("gpuName", { ...PUBLIC, description: "The GPU model, such as RTX_4090 (the search field gpu_name)." }),
    numGpus: t.exposeInt("numGpus", { ...PUBLIC, description: "GPUs in the machine." }),
    publicAddress: t.exposeString("publicAddress", { nullable: true, description: "The fixed address the host declared (setMachineNetwork). Host only." }),
    reportedAddress: t.exposeString("reportedAddress", { nullable: true, description: "The address its agent sees itself at; used unless publicAddress is set. Host only." }),
    directPortStart: t.exposeInt("directPortStart", { nullable: true, description: "First external port for direct connections. Host only." }),
    directPortEnd: t.exposeInt("directPortEnd", { nullable: true, description: "Last external port for direct connections (inclusive). Host only." }),
    gpuRamMb: t.exposeInt("gpuRamMb", { ...PUBLIC, description: "VRAM per GPU, MB." }),
    computeCap: t.exposeInt("computeCap", { ...PUBLIC, description: "CUDA compute capability × 100 (8.6 is 860)." }),
    tflopsPerGpu: t.exposeFloat("tflopsPerGpu", { ...PUBLIC, description: "Peak FP32 TFLOPS per GPU." }),
    gpuMemBw: t.exposeFloat("gpuMemBw", { ...PUBLIC, description: "GPU memory bandwidth, GB/s." }),
    pcieGen: t.exposeInt("pcieGen", { ...PUBLIC, description: "PCIe generation of the GPUs' slots (search field pci_gen)." }),
    pcieBw: t.exposeFloat("pcieBw", { ...PUBLIC, description: "PCIe bandwidth per GPU, GB/s." }),
    cpuName: t.exposeString("cpuName", { ...PUBLIC, description: "The CPU model, as the host's system names it." }),
    cpuCores: t.exposeInt("cpuCores", { ...PUBLIC, description: "CPU cores (threads) of the machine; a rental gets its GPU share of them." }),
    cpuRamMb: t.exposeInt("cpuRamMb", { ...PUBLIC, description: "System RAM of the machine, MB; a rental gets its GPU share of it." }),
    diskSpaceGb: t.exposeFloat("diskSpaceGb", { ...PUBLIC, description: "Disk for rentals, GB (10^9 bytes)." }),
    diskBw: t.exposeFloat("diskBw", { ...PUBLIC, description: "Disk bandwidth, MB/s." }),
    inetUpMbps: t.exposeFloat("inetUpMbps", { ...PUBLIC, description: "Upload bandwidth, Mbps." }),
    inetDownMbps: t.exposeFloat("inetDownMbps", { ...PUBLIC, description: "Download bandwidth, Mbps." }),
    cudaMaxGood: t.exposeFloat("cudaMaxGood", { ...PUBLIC, description: "Highest CUDA version the driver runs, such as 12.4." }),
    driverVersion: t.exposeString("driverVersion", { ...PUBLIC, description: "NVIDIA driver version, such as 550.54.15." }),
    countryCode: t.exposeString("countryCode", { ...PUBLIC, description: "Where the machine is: ISO 3166-1 alpha-2 country code, such as US." }),
    geolocation: t.exposeString("geolocation", { ...PUBLIC, description: "Where the machine is, in words, such as Oregon, US." }),
    datacenter: t.exposeBoolean("datacenter", { ...PUBLIC, description: "In a vetted datacenter (secure cloud): operators decide it (setMachineDatacenter), never the host." }),
    verification: t.expose("verification", { ...PUBLIC, type: VerificationState, description: "Whether operators verified the machine; search shows verified machines by default." }),
    dlperf: t.exposeFloat("dlperf", { ...PUBLIC, description: "DLPerf of the whole machine: an estimate of its deep-learning speed (higher is faster)." }),
    reliability: t.exposeFloat("reliability", { ...PUBLIC, description: "Estimated share of time the machine is up and serving its rentals, 0 to 1." }),
    online: t.exposeBoolean("online", { ...PUBLIC, description: "Its agent sent a heartbeat recently." }),
    listed: t.exposeBoolean("listed", { ...PUBLIC, description: "Its offers are in search: the host listed it and has not unlisted it." }),
    pricePerGpuHour: t.field({
      ...PUBLIC,
      type: "Money",
      nullable: true,
      description: "On-demand price, dollars per GPU-hour; null until first listed.",
      resolve: (machine) => machine.pricePerGpuHourMicros,
    }),
    minBidPerGpuHour: t.field({
      ...PUBLIC,
      type: "Money",
      nullable: true,
      description: "Lowest bid for interruptible rentals, dollars per GPU-hour; null until first listed.",
      resolve: (machine) => machine.minBidPerGpuHourMicros,
    }),
    storagePricePerGbMonth: t.field({
      ...PUBLIC,
      type: "Money",
      nullable: true,
      description: "Disk price, dollars per GB-month (30 days) of allocated disk; null until first listed.",
      resolve: (machine) => machine.storagePricePerGbMonthMicros,
    }),
    inetUpPricePerGb: t.field({
      ...PUBLIC,
      type: "Money",
      nullable: true,
      description: "Upload price, dollars per GB (10^9 bytes) sent; null until first listed.",
      resolve: (machine) => machine.inetUpPricePerGbMicros,
    }),
    inetDownPricePerGb: t.field({
      ...PUBLIC,
      type: "Money",
      nullable: true,
      description: "Download price, dollars per GB (10^9 bytes) received; null until first listed.",
      resolve: (machine) => machine.inetDownPricePerGbMicros,
    }),
    minChunk: t.exposeInt("minChunk", { ...PUBLIC, description: "Smallest number of GPUs rented together." }),
    endDate: t.expose("endDate", {
      ...PUBLIC,
      type: "DateTime",
      nullable: true,
      description: "The listing's end: the longest a new rental may run.",
    }),
    duration: t.float({
      nullable: true,
      description: "Days the rolling end date is kept ahead of now (endDate moves forward as time passes); null for a fixed end date.",
      resolve: (machine) => (machine.listingDurationSeconds === null ? null : machine.listingDurationSeconds / 86_400),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the host registered it. Host only." }),
  }),
});

builder.queryField("machine", (t) =>
  t.prismaField({
    type: "Machine",
    nullable: true,
    description:
      "A machine by its global id (\"Machine:12\"; an offer's machineId): any listed machine's public fields for anyone, anonymous callers too; every field of the caller's own machines, listed or not, and of every machine for operators. Null for an unlisted machine of another host or an unknown id.",
    args: { id: t.arg.globalID({ required: true, description: 'Such as "Machine:12".' }) },
    resolve: async (query, _root, args, ctx) => {
      const id = localId(args.id, "Machine");
      const machine = await prisma.machine.findUnique({ ...query, where: { id } });
      return machine && (machine.listed || readsMachine(ctx.viewer, machine)) ? machine : null;
    },
  }),
);

const RegisterMachineInput = builder.inputType("RegisterMachineInput", {
  description: "The machine's hardware as its agent measured it.",
  fields: (t) => ({
    gpuName: t.string({ required: true, description: "The GPU model as nvidia-smi names it, such as NVIDIA GeForce RTX 4090." }),
    numGpus: t.int({ required: true, description: "GPUs in the machine, 1 to 16." }),
    gpuRamMb: t.int({ required: true, description: "VRAM per GPU in MB." }),
    computeCap: t.int({ required: true, description: "Compute capability × 100 (8.6 is 860)." }),
    tflopsPerGpu: t.float({ required: true, description: "Peak FP32 TFLOPS per GPU." }),
    gpuMemBw: t.float({ required: true, description: "GPU memory bandwidth in GB/s." }),
    pcieGen: t.int({ required: true, description: "PCIe generation of the GPUs' slots, 1 to 6." }),
    pcieBw: t.float({ required: true, description: "PCIe bandwidth per GPU in GB/s." }),
    cpuName: t.string({ required: true, description: "The CPU model." }),
    cpuCores: t.int({ required: true, description: "CPU cores (threads) of the machine." }),
    cpuRamMb: t.int({ required: true, description: "System RAM, MB." }),
    diskSpaceGb: t.float({ required: true, description: "Disk for rentals, GB." }),
    diskBw: t.float({ required: true, description: "Disk bandwidth in MB/s." }),
    inetUpMbps: t.float({ required: true, description: "Upload bandwidth, Mbps." }),
    inetDownMbps: t.float({ required: true, description: "Download bandwidth, Mbps." }),
    cudaMaxGood: t.float({ required: true, description: "Highest CUDA version the driver runs, such as 12.4." }),
    driverVersion: t.string({ required: true, description: "Such as 550.54.15." }),
    countryCode: t.string({ required: true, description: "ISO 3166-1 alpha-2, such as US." }),
    geolocation: t.string({ required: true, description: "Where people would say it is, such as Oregon, US." }),
    ...detectedSpecFields(t),
  }),
});

const RegisterMachinePayload = builder
  .objectRef<{ machine: Machine; apiKey: IssuedKey }>("RegisterMachinePayload")
  .implement({
    description: "A machine just registered, with its agent's key.",
    fields: (t) => ({
      machine: t.field({ type: MachineRef, description: "The machine, unverified and unlisted.", resolve: (payload) => payload.machine }),
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
    args: { input: t.arg({ type: RegisterMachineInput, required: true, description: "The machine's specs." }) },
    resolve: (_root, { input }, ctx) => registerMachine(ctx.viewer.userId, input),
  }),
);

const ListMachineInput = builder.inputType("ListMachineInput", {
  description:
    "A listing or a change to it: omitted optional fields keep their earlier values; null ones (and omitted ones on a first listing) take their defaults. Rentals keep the price and end date they started with.",
  fields: (t) => ({
    machineId: t.globalID({ required: true, description: 'The machine, such as "Machine:12".' }),
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
    endDate: t.field({
      type: "DateTime",
      description: "A fixed end of the listing, within a year from now; not with duration. Omitted with duration: the earlier end (fixed or rolling), which must be ahead.",
    }),
    duration: t.float({
      description:
        "A rolling end date, in days (1/24 to 365): the listing ends this long from now and is moved forward as time passes (the reference's -l). Not with endDate.",
    }),
  }),
});

builder.mutationField("listMachine", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Lists (or relists) the machine: its offers appear in search at once. Existing rentals keep their terms.",
    errors: {},
    args: { input: t.arg({ type: ListMachineInput, required: true, description: "The listing, or what changes in it." }) },
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
    args: { machineId: t.arg.globalID({ required: true, description: 'The machine, such as "Machine:12".' }) },
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
      machineId: t.arg.globalID({ required: true, description: 'The machine, such as "Machine:12".' }),
      pricePerGpuHour: t.arg({ type: "Money", required: true, description: "The minimum bid, dollars per GPU-hour." }),
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
    args: {
      machineId: t.arg.globalID({ required: true, description: 'The machine, such as "Machine:12".' }),
      endDate: t.arg({ type: "DateTime", required: true, description: "The new end, later than the current one and within a year." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const machine = await extendMachineEndDate(ctx.viewer.userId, localId(args.machineId, "Machine", "machineId"), args.endDate);
      return prisma.machine.findUniqueOrThrow({ ...selection(query), where: { id: machine.id } });
    },
  }),
);

builder.queryField("myMachines", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "Machine",
      cursor: "id",
      description: "The caller's machines, listed or not, oldest first. Its owner's keys only.",
      resolve: (query, _root, _args, ctx) => myMachines(prisma, ctx.viewer.userId, query),
      totalCount: (_root, _args, ctx) => prisma.machine.count({ where: myMachinesWhere(ctx.viewer.userId) }),
    },
    { name: "MachineConnection", description: "A page of machines." },
    { name: "MachineEdge" },
  ),
);

const MachineNetworkInput = builder.inputType("MachineNetworkInput", {
  description: "How renters reach a machine.",
  fields: (t) => ({
    machineId: t.globalID({ required: true, description: 'The machine, such as "Machine:12".' }),
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
    args: { input: t.arg({ type: MachineNetworkInput, required: true, description: "The address and port range." }) },
    resolve: (_query, _root, { input }, ctx) => {
      const machineId = localId(input.machineId, "Machine", "machineId");
      return setMachineNetwork(ctx.viewer.userId, { ...input, machineId });
    },
  }),
);
