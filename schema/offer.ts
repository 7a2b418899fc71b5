import { OFFER_FIELDS } from "../domain/offers/query-language.ts";
import { type OfferRow, offerById, SORTABLE_FIELDS, searchOffers } from "../domain/offers/search.ts";
import { prisma } from "../infra/db.ts";
import { onReadReplica } from "../infra/replica.ts";
import { builder } from "./builder.ts";
import { LaunchMode } from "./instance.ts";
import { DAY_MS } from "../domain/time.ts";

const MB_PER_GB = 1000;

export const OfferRef = builder.objectRef<OfferRow>("Offer");

builder.node(OfferRef, {
  description: "A rentable chunk of one listed machine: a machine of 8 GPUs with minChunk 1 is offered as 1, 2, 4 and 8 GPUs.",
  id: { resolve: (offer) => offer.id },
  loadOne: (id) => offerById(prisma, id),
  fields: (t) => ({
    machineId: t.globalID({
      description: "The listed machine the offer is a chunk of, such as \"Machine:12\" (its number is the search field machine_id); machine(id) shows its public specs.",
      resolve: (offer) => ({ type: "Machine", id: offer.machineId }),
    }),
    hostId: t.globalID({
      description: "The host's account, such as \"User:5\" (its number is the search field host_id); only the host may read the account itself.",
      resolve: (offer) => ({ type: "User", id: offer.hostId }),
    }),
    gpuName: t.exposeString("gpuName"),
    numGpus: t.exposeInt("numGpus", { description: "GPUs in this offer." }),
    gpuRam: t.float({ description: "VRAM per GPU, GB.", resolve: (offer) => offer.gpuRam / MB_PER_GB }),
    gpuTotalRam: t.float({ description: "VRAM of the offer's GPUs, GB.", resolve: (offer) => offer.gpuTotalRam / MB_PER_GB }),
    computeCap: t.exposeInt("computeCap", { description: "CUDA compute capability × 100 (860 for 8.6)." }),
    totalFlops: t.exposeFloat("totalFlops", { description: "FP32 TFLOPS of the offer's GPUs." }),
    gpuMemBw: t.exposeFloat("gpuMemBw", { description: "GPU memory bandwidth, GB/s." }),
    pcieGen: t.exposeInt("pcieGen"),
    pcieBw: t.exposeFloat("pcieBw", { description: "PCIe bandwidth per GPU, GB/s." }),
    cpuName: t.exposeString("cpuName"),
    cpuCores: t.exposeInt("cpuCores", { description: "CPU cores of the machine." }),
    cpuCoresEffective: t.exposeFloat("cpuCoresEffective", {
      description: "CPU cores a rental of this offer gets: the machine's cores × numGpus / the machine's GPUs.",
    }),
    cpuRam: t.float({
      description: "System RAM a rental of this offer gets (its share of the machine's, as cpuCoresEffective), GB.",
      resolve: (offer) => offer.cpuRam / MB_PER_GB,
    }),
    diskSpace: t.exposeFloat("diskSpace", {
      description: "Disk still free on the machine, GB: what a new rental may ask for (disks of instances not destroyed are reserved).",
    }),
    diskBw: t.exposeFloat("diskBw", { description: "Disk bandwidth, MB/s." }),
    inetUp: t.exposeFloat("inetUp", { description: "Upload bandwidth, Mbps." }),
    inetDown: t.exposeFloat("inetDown", { description: "Download bandwidth, Mbps." }),
    cudaMaxGood: t.exposeFloat("cudaMaxGood", { description: "Highest CUDA version the driver supports." }),
    driverVersion: t.exposeString("driverVersion"),
    directPortCount: t.exposeInt("directPortCount", { description: "Free external ports for direct connections (search field direct_port_count)." }),
    staticIp: t.exposeBoolean("staticIp", { description: "The host declared a fixed public address (search field static_ip)." }),
    dphTotal: t.field({
      type: "Money",
      description: "Dollars per hour for the GPUs and the storage the search asked for (storageGb).",
      resolve: (offer) => offer.dphTotalMicros,
    }),
    pricePerGpuHour: t.field({ type: "Money", resolve: (offer) => offer.pricePerGpuMicros }),
    minBid: t.field({
      type: "Money",
      description: "Lowest interruptible bid per GPU-hour.",
      resolve: (offer) => offer.minBidMicros,
    }),
    storageCostPerGbMonth: t.field({ type: "Money", resolve: (offer) => offer.storageCostMicros }),
    inetUpCostPerGb: t.field({ type: "Money", resolve: (offer) => offer.inetUpCostMicros }),
    inetDownCostPerGb: t.field({ type: "Money", resolve: (offer) => offer.inetDownCostMicros }),
    dlperf: t.exposeFloat("dlperf", { description: "DLPerf of the offer's GPUs." }),
    dlperfPerDphTotal: t.exposeFloat("dlperfPerDphtotal", { description: "DLPerf per dollar-hour of dphTotal." }),
    flopsPerDphTotal: t.exposeFloat("flopsPerDphtotal", { description: "TFLOPS per dollar-hour of dphTotal." }),
    reliability: t.exposeFloat("reliability"),
    score: t.exposeFloat("score", { description: "The default ranking: DLPerf per dollar-hour × reliability³ (higher is better)." }),
    verified: t.exposeBoolean("verified"),
    datacenter: t.exposeBoolean("datacenter", { description: "Secure cloud: the machine is in a vetted datacenter." }),
    geolocation: t.exposeString("geolocation"),
    countryCode: t.exposeString("countryCode"),
    endDate: t.expose("endDate", { type: "DateTime", description: "The listing ends then; rentals end by it." }),
    durationDays: t.float({
      description: "Days until endDate.",
      resolve: (offer) => (offer.endDate.getTime() - Date.now()) / DAY_MS,
    }),
    rentable: t.exposeBoolean("rentable"),
    rented: t.exposeBoolean("rented"),
    gpusFreeOfOnDemand: t.exposeInt("gpusFreeOfOnDemand", {
      description: "GPUs of the machine not held by on-demand rentals: what an interruptible bid can win.",
    }),
    winningBid: t.field({
      type: "Money",
      nullable: true,
      description:
        "The lowest bid per GPU-hour that would run this offer right now (the min bid when enough GPUs are idle); null when on-demand rentals leave too few GPUs.",
      resolve: (offer) => offer.winningBidMicros,
    }),
  }),
});

const OfferOrderField = builder.enumType("OfferOrderField", {
  values: Object.fromEntries(
    SORTABLE_FIELDS.map((field) => [field.toUpperCase(), { value: field, description: OFFER_FIELDS[field].description }]),
  ) as Record<string, { value: (typeof SORTABLE_FIELDS)[number]; description: string }>,
});

const OfferOrderDirection = builder.enumType("OfferOrderDirection", { values: ["ASC", "DESC"] as const });

const OfferOrder = builder.inputType("OfferOrder", {
  fields: (t) => ({
    field: t.field({ type: OfferOrderField, required: true }),
    direction: t.field({ type: OfferOrderDirection, required: true }),
  }),
});

const OfferFilter = builder.inputType("OfferFilter", {
  description: "A structured alternative to `query`; both apply, and this wins on the same field and operator.",
  fields: (t) => ({
    gpuNames: t.stringList({ description: "Any of these GPU models." }),
    minNumGpus: t.int(),
    maxNumGpus: t.int(),
    minGpuRamGb: t.float(),
    maxDphTotal: t.field({ type: "Money" }),
    minReliability: t.float(),
    minDlperf: t.float(),
    minCudaVersion: t.float(),
    minInetDownMbps: t.float(),
    minDurationDays: t.float(),
    countries: t.stringList({ description: "Any of these two-letter country codes." }),
    datacenter: t.boolean(),
    verified: t.boolean({ description: "Absent: verified only (the default). null: both." }),
    rentable: t.boolean({ description: "Absent: rentable only (the default). null: both." }),
    launchMode: t.field({
      type: LaunchMode,
      description: "The rental's launch mode: SSH needs a direct port for 22, JUPYTER one for 8080; machines without enough free direct ports are left out.",
    }),
    ports: t.stringList({
      description: "The ports the rental will ask for (as createInstance takes them): each below 70000 needs a free direct port of the machine, so machines with too few are left out.",
    }),
  }),
});

const OfferConnection = builder.connectionObject({ type: OfferRef, name: "OfferConnection" }, { name: "OfferEdge" });

builder.queryField("offer", (t) =>
  t.field({
    type: OfferRef,
    nullable: true,
    description:
      "One offer by its id, rentable or not; open to anonymous callers. Null when no listed machine offers that chunk (any more).",
    args: {
      id: t.arg.id({ required: true, description: 'Such as "Offer:12-4" or "12-4" (machine 12, 4 GPUs).' }),
      storageGb: t.arg.float({ description: "Disk to price into dphTotal, GB; default 10." }),
    },
    resolve: (_root, args) => offerById(prisma, String(args.id), args.storageGb),
  }),
);

builder.queryField("offers", (t) =>
  t.field({
    type: OfferConnection,
    description: [
      "Search the offers; open to anonymous callers. `query` is the CLI filter language",
      '(`gpu_name=RTX_4090 num_gpus>=2 dph<1.5 verified=any`); by default only verified, rentable offers,',
      "ordered by score descending. `storageGb` (default 10) prices storage into dphTotal. `first` is at most 100.",
      "A query that cannot be read fails with extensions.code INVALID_QUERY and a message naming the token;",
      "a reference field this marketplace does not record (has_avx, cpu_ghz, …) with UNRECORDED_FIELD naming it.",
    ].join(" "),
    args: {
      query: t.arg.string(),
      filter: t.arg({ type: OfferFilter }),
      orderBy: t.arg({ type: [OfferOrder] }),
      storageGb: t.arg.float(),
      first: t.arg.int(),
      after: t.arg.string(),
    },
    resolve: async (_root, args) => {
      const page = await onReadReplica((db) => searchOffers(db, args));
      return {
        edges: page.offers.map((node, i) => ({ cursor: page.cursors[i], node })),
        pageInfo: {
          hasNextPage: page.hasNextPage,
          hasPreviousPage: page.hasPreviousPage,
          startCursor: page.cursors[0] ?? null,
          endCursor: page.cursors.at(-1) ?? null,
        },
      };
    },
  }),
);
