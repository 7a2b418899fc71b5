import { type FieldNode, Kind } from "graphql";
import { OFFER_ROW_COLUMNS, type OfferRow, offerById, SORTABLE_FIELDS, searchOffers, sortFieldDescription } from "../domain/offers/search.ts";
import { prisma } from "../infra/db.ts";
import { onReadReplica } from "../infra/replica.ts";
import { builder } from "./builder.ts";
import { globalId } from "./ids.ts";
import { LaunchMode } from "./instance.ts";
import { DAY_MS } from "../domain/time.ts";

const MB_PER_GB = 1000;

export const OfferRef = builder.objectRef<OfferRow>("Offer");

builder.node(OfferRef, {
  description: "A rentable chunk of one listed machine: a machine of 8 GPUs with minChunk 1 is offered as 1, 2, 4 and 8 GPUs.",
  id: { resolve: (offer) => offer.id },
  loadOne: (id) => offerById(prisma, id),
  fields: (t) => ({
    // Encoded here rather than by t.globalID, whose resolver is async: a page of 100 offers would await 200 of them.
    machineId: t.id({
      description: "The listed machine the offer is a chunk of, such as \"Machine:12\" (its number is the search field machine_id); machine(id) shows its public specs.",
      resolve: (offer) => globalId("Machine", offer.machineId),
    }),
    hostId: t.id({
      description: "The host's account, such as \"User:5\" (its number is the search field host_id); only the host may read the account itself.",
      resolve: (offer) => globalId("User", offer.hostId),
    }),
    gpuName: t.exposeString("gpuName", { description: "The GPU model, such as RTX 4090 (search field gpu_name, with _ for spaces)." }),
    numGpus: t.exposeInt("numGpus", { description: "GPUs in this offer." }),
    gpuRam: t.float({ description: "VRAM per GPU, GB.", resolve: (offer) => offer.gpuRam / MB_PER_GB }),
    gpuTotalRam: t.float({ description: "VRAM of the offer's GPUs, GB.", resolve: (offer) => offer.gpuTotalRam / MB_PER_GB }),
    computeCap: t.exposeInt("computeCap", { description: "CUDA compute capability × 100 (860 for 8.6)." }),
    totalFlops: t.exposeFloat("totalFlops", { description: "FP32 TFLOPS of the offer's GPUs." }),
    gpuMemBw: t.exposeFloat("gpuMemBw", { description: "GPU memory bandwidth, GB/s." }),
    pcieGen: t.exposeInt("pcieGen", { description: "PCIe generation of the GPUs' slots (search field pci_gen)." }),
    pcieBw: t.exposeFloat("pcieBw", { description: "PCIe bandwidth per GPU, GB/s." }),
    cpuName: t.exposeString("cpuName", { description: "The CPU model." }),
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
    driverVersion: t.exposeString("driverVersion", { description: "NVIDIA driver version, such as 550.54.15." }),
    directPortCount: t.exposeInt("directPortCount", { description: "Free external ports for direct connections (search field direct_port_count)." }),
    staticIp: t.exposeBoolean("staticIp", { description: "The host declared a fixed public address (search field static_ip)." }),
    dphTotal: t.field({
      type: "Money",
      description: "Dollars per hour for the GPUs and the storage the search asked for (storageGb).",
      resolve: (offer) => offer.dphTotalMicros,
    }),
    pricePerGpuHour: t.field({ type: "Money", description: "On-demand price, dollars per GPU-hour.", resolve: (offer) => offer.pricePerGpuMicros }),
    minBid: t.field({
      type: "Money",
      description: "Lowest interruptible bid per GPU-hour.",
      resolve: (offer) => offer.minBidMicros,
    }),
    storageCostPerGbMonth: t.field({ type: "Money", description: "Disk price, dollars per GB-month (30 days).", resolve: (offer) => offer.storageCostMicros }),
    inetUpCostPerGb: t.field({ type: "Money", description: "Upload price, dollars per GB sent.", resolve: (offer) => offer.inetUpCostMicros }),
    inetDownCostPerGb: t.field({ type: "Money", description: "Download price, dollars per GB received.", resolve: (offer) => offer.inetDownCostMicros }),
    dlperf: t.exposeFloat("dlperf", { description: "DLPerf of the offer's GPUs." }),
    dlperfPerDphTotal: t.exposeFloat("dlperfPerDphtotal", { description: "DLPerf per dollar-hour of dphTotal." }),
    flopsPerDphTotal: t.exposeFloat("flopsPerDphtotal", { description: "TFLOPS per dollar-hour of dphTotal." }),
    reliability: t.exposeFloat("reliability", { description: "Estimated share of time the machine is up and serving its rentals, 0 to 1." }),
    score: t.exposeFloat("score", { description: "The default ranking: DLPerf per dollar-hour × reliability³ (higher is better)." }),
    verified: t.exposeBoolean("verified", { description: "Operators verified the machine (search shows verified offers by default)." }),
    datacenter: t.exposeBoolean("datacenter", { description: "Secure cloud: the machine is in a vetted datacenter." }),
    geolocation: t.exposeString("geolocation", { description: "Where the machine is, in words, such as Oregon, US." }),
    countryCode: t.exposeString("countryCode", { description: "Where the machine is: ISO 3166-1 alpha-2 country code." }),
    endDate: t.expose("endDate", { type: "DateTime", description: "The listing ends then; rentals end by it." }),
    durationDays: t.float({
      description: "Days until endDate.",
      resolve: (offer) => (offer.endDate.getTime() - Date.now()) / DAY_MS,
    }),
    rentable: t.exposeBoolean("rentable", { description: "Can be rented on demand now: listed, online, enough free GPUs and disk." }),
    rented: t.exposeBoolean("rented", { description: "Some of the machine's GPUs are rented." }),
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
  description: "A field to order offers by: the search fields of the same name.",
  values: Object.fromEntries(
    SORTABLE_FIELDS.map((field) => [field.toUpperCase(), { value: field, description: sortFieldDescription(field) }]),
  ) as Record<string, { value: (typeof SORTABLE_FIELDS)[number]; description: string }>,
});

const OfferOrderDirection = builder.enumType("OfferOrderDirection", {
  description: "Which way to order.",
  values: { ASC: { description: "Smallest first." }, DESC: { description: "Largest first." } } as const,
});

const OfferOrder = builder.inputType("OfferOrder", {
  description: "One ordering key; later keys break ties of earlier ones.",
  fields: (t) => ({
    field: t.field({ type: OfferOrderField, required: true, description: "The field to order by." }),
    direction: t.field({ type: OfferOrderDirection, required: true, description: "Which way." }),
  }),
});

const OfferFilter = builder.inputType("OfferFilter", {
  description: "A structured alternative to `query`; both apply, and this wins on the same field and operator.",
  fields: (t) => ({
    gpuNames: t.stringList({ description: "Any of these GPU models." }),
    minNumGpus: t.int({ description: "At least this many GPUs in the offer." }),
    maxNumGpus: t.int({ description: "At most this many GPUs in the offer." }),
    minGpuRamGb: t.float({ description: "At least this much VRAM per GPU, GB." }),
    maxDphTotal: t.field({ type: "Money", description: "At most this many dollars per hour in all (dphTotal)." }),
    minReliability: t.float({ description: "At least this reliability, 0 to 1." }),
    minDlperf: t.float({ description: "At least this DLPerf." }),
    minCudaVersion: t.float({ description: "A driver that runs at least this CUDA version, such as 12.1." }),
    minInetDownMbps: t.float({ description: "At least this download bandwidth, Mbps." }),
    minDurationDays: t.float({ description: "A listing that lasts at least this many days more." }),
    countries: t.stringList({ description: "Any of these two-letter country codes." }),
    datacenter: t.boolean({ description: "Only (true) or no (false) datacenter machines." }),
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

const OfferConnection = builder.connectionObject(
  {
    type: OfferRef,
    name: "OfferConnection",
    description: "A page of offers.",
    fields: (t) => ({
      totalCount: t.int({
        description: "How many offers match the search, over every page (counted only when asked for).",
        resolve: (connection) => (connection as unknown as { totalCount: () => Promise<number> }).totalCount(),
      }),
    }),
  },
  { name: "OfferEdge" },
);

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

/** The row fields each Offer field reads, where they are not the field's own name. */
const ROW_FIELDS_OF: Record<string, (keyof OfferRow)[]> = {
  __typename: [],
  dphTotal: ["dphTotalMicros"],
  pricePerGpuHour: ["pricePerGpuMicros"],
  minBid: ["minBidMicros"],
  storageCostPerGbMonth: ["storageCostMicros"],
  inetUpCostPerGb: ["inetUpCostMicros"],
  inetDownCostPerGb: ["inetDownCostMicros"],
  dlperfPerDphTotal: ["dlperfPerDphtotal"],
  flopsPerDphTotal: ["flopsPerDphtotal"],
  durationDays: ["endDate"],
  winningBid: ["winningBidMicros"],
};

/**
 * The offer fields an `offers` selection (`edges { node { … } }`) reads, so that the search fetches
 * only those; every field when the selection uses fragments or a field this does not know.
 */
export function askedOfferColumns(fieldNodes: readonly FieldNode[]): (keyof OfferRow)[] {
  const asked = new Set<keyof OfferRow>();
  const fields = (node: FieldNode | undefined) => node?.selectionSet?.selections ?? [];
  for (const connection of fieldNodes) {
    for (const edges of fields(connection)) {
      if (edges.kind !== Kind.FIELD) return OFFER_ROW_COLUMNS;
      if (edges.name.value !== "edges") continue;
      for (const edge of fields(edges)) {
        if (edge.kind !== Kind.FIELD) return OFFER_ROW_COLUMNS;
        if (edge.name.value !== "node") continue;
        for (const field of fields(edge)) {
          if (field.kind !== Kind.FIELD) return OFFER_ROW_COLUMNS;
          const columns = ROW_FIELDS_OF[field.name.value] ?? [field.name.value];
          if (!columns.every((column) => (OFFER_ROW_COLUMNS as string[]).includes(column))) return OFFER_ROW_COLUMNS;
          for (const column of columns) asked.add(column);
        }
      }
    }
  }
  return [...asked];
}

builder.queryField("offers", (t) =>
  t.field({
    type: OfferConnection,
    description: [
      "Search the offers; open to anonymous callers. `query` is the CLI filter language",
      '(`gpu_name=RTX_4090 num_gpus>=2 dph<1.5 verified=any`); by default only verified, rentable offers,',
      "ordered by score descending. `storageGb` (default 10) prices storage into dphTotal. `first` is at most 100.",
      "A query that cannot be read fails with extensions.code INVALID_QUERY and a message naming the token;",
      "a reference field this marketplace does not record (bw_nvlink, reliability2, …) with UNRECORDED_FIELD naming it.",
    ].join(" "),
    args: {
      query: t.arg.string({ description: "The search language, such as `gpu_name=RTX_4090 num_gpus>=2 dph<1.5`." }),
      filter: t.arg({ type: OfferFilter, description: "The same search as structured fields." }),
      orderBy: t.arg({ type: [OfferOrder], description: "Up to 5 keys; default score descending." }),
      storageGb: t.arg.float({ description: "Disk to price into dphTotal, GB; default 10." }),
      first: t.arg.int({ description: "Page size: 0 to 100, default 20." }),
      after: t.arg.string({ description: "The cursor of the offer to start after (pageInfo.endCursor)." }),
    },
    resolve: async (_root, args, _context, info) => {
      const page = await onReadReplica((db) => searchOffers(db, args, askedOfferColumns(info.fieldNodes)));
      return {
        totalCount: page.totalCount,
        // Cursors are made for the edges and ends a client asks for (often only endCursor).
        edges: page.offers.map((node, i) => ({
          node,
          get cursor() {
            return page.cursor(i);
          },
        })),
        pageInfo: {
          hasNextPage: page.hasNextPage,
          hasPreviousPage: page.hasPreviousPage,
          get startCursor() {
            return page.offers.length ? page.cursor(0) : null;
          },
          get endCursor() {
            return page.offers.length ? page.cursor(page.offers.length - 1) : null;
          },
        },
      };
    },
  }),
);
