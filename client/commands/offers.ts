import { SearchOffersDocument, type OfferOrder, type OfferOrderField, type SearchOffersQuery } from "../generated/graphql.ts";
import { type Command, numberOption, printJson, stringOption } from "../command.ts";
import { type Column, dollars, fixed, table } from "../format.ts";

type Offer = SearchOffersQuery["offers"]["edges"][number]["node"];

/** Short names people type for the longer order fields. */
const ORDER_ALIASES: Record<string, OfferOrderField> = {
  dph: "DPH_TOTAL",
  dlperf_usd: "DLPERF_PER_DPHTOTAL",
  flops_usd: "FLOPS_PER_DPHTOTAL",
  duration: "DURATION",
};

/** "dph_total,reliability-" → ascending dphTotal, then descending reliability (a trailing - is descending). */
export function parseOrder(text: string): OfferOrder[] {
  return text
    .split(",")
    .filter((part) => part.trim() !== "")
    .map((part) => {
      const trimmed = part.trim();
      const direction = trimmed.endsWith("-") ? "DESC" : "ASC";
      const name = trimmed.replace(/[-+]$/, "");
      return { field: ORDER_ALIASES[name] ?? (name.toUpperCase() as OfferOrderField), direction };
    });
}

/** Lifts the API's default clauses (verified=true rentable=true), as the reference's -n does with its own. */
const NO_DEFAULT_QUERY = "verified=any rentable=any";

const OFFER_COLUMNS: Column<Offer>[] = [
  { header: "ID", value: (o) => o.id.replace(/^Offer:/, "") },
  { header: "N", value: (o) => `${o.numGpus}x`, right: true },
  { header: "Model", value: (o) => o.gpuName },
  { header: "VRAM", value: (o) => `${fixed(o.gpuRam, 0)}GB`, right: true },
  { header: "TFLOPS", value: (o) => fixed(o.totalFlops), right: true },
  { header: "DLP", value: (o) => fixed(o.dlperf), right: true },
  { header: "DLP/$", value: (o) => fixed(o.dlperfPerDphTotal), right: true },
  // The rental's share of the machine's cores (cpu_cores_effective), as RAM is its share.
  { header: "vCPUs", value: (o) => fixed(o.cpuCoresEffective), right: true },
  { header: "RAM", value: (o) => `${fixed(o.cpuRam, 0)}GB`, right: true },
  { header: "Disk", value: (o) => `${fixed(o.diskSpace, 0)}GB`, right: true },
  { header: "Net up/down", value: (o) => `${fixed(o.inetUp, 0)}/${fixed(o.inetDown, 0)}`, right: true },
  { header: "R", value: (o) => fixed(o.reliability * 100) + "%", right: true },
  { header: "Max days", value: (o) => fixed(o.durationDays), right: true },
  { header: "$/GPU-hr", value: (o) => dollars(o.pricePerGpuHour), right: true },
  { header: "Bid now", value: (o) => dollars(o.winningBid), right: true },
  { header: "$/hr", value: (o) => dollars(o.dphTotal), right: true },
  { header: "Location", value: (o) => o.geolocation },
];

export const searchOffers: Command = {
  name: "search offers",
  usage: "[query] [-o|--order FIELD[-],...] [--storage GB] [--limit N] [-n|--no-default] [--raw]",
  summary:
    "Search the offers with the filter language, e.g. 'gpu_name=RTX_4090 num_gpus>=2 dph<1.5'; 'verified=true rentable=true' applies unless the query sets them or -n is given",
  positionals: { min: 0, max: Infinity },
  options: {
    order: { type: "string", short: "o" },
    storage: { type: "string" },
    limit: { type: "string" },
    "no-default": { type: "boolean", short: "n" },
  },
  async run(ctx) {
    const order = stringOption(ctx, "order");
    // The API's default clauses come first, so the query's own clauses (after these) still win.
    const query = [ctx.values["no-default"] ? NO_DEFAULT_QUERY : "", ...ctx.positionals].join(" ").trim();
    const data = await ctx.publicClient().request(SearchOffersDocument, {
      query: query || null,
      first: numberOption(ctx, "limit", true) ?? null,
      storageGb: numberOption(ctx, "storage") ?? null,
      orderBy: order ? parseOrder(order) : null,
    });
    const offers = data.offers.edges.map((edge) => edge.node);
    if (ctx.raw) return printJson(ctx, offers);
    ctx.print(offers.length === 0 ? "No offers match." : table(OFFER_COLUMNS, offers));
  },
};
