import { earningsEstimate } from "../domain/market/estimate.ts";
import { type GraphQLResolveInfo, Kind } from "graphql";
import {
  type GpuMarketStats,
  marketStats,
  MONEY_SERIES_COLUMNS,
  type NullableSeriesColumn,
  type PricePoint,
  type PriceSeries,
  priceHistory,
  priceSeries,
  SERIES_COLUMN_NAMES,
  type SeriesColumn,
} from "../domain/market/history.ts";
import { builder } from "./builder.ts";

const PriceBucket = builder.enumType("PriceBucket", {
  description: "MINUTE points come from the minute samples (ranges up to 1 day), HOUR and DAY from their rollups (up to 92 and 2000 days): about 2,000 points at most.",
  values: {
    MINUTE: { description: "One point per minute sample; ranges up to 1 day." },
    HOUR: { description: "One point per hour; ranges up to 92 days." },
    DAY: { description: "One point per day (UTC); ranges up to 2000 days." },
  } as const,
});

/** The market figures a history point and the live stats share (domain/market/sampler.ts defines them). */
const MarketFigures = builder.interfaceRef<Omit<PricePoint, "time" | "samples">>("MarketFigures").implement({
  description: "A GPU model's market over the listed machines (fully rented ones included); in a bucket, means per minute.",
  fields: (t) => {
    const money = (key: "minPriceMicros" | "p50PriceMicros" | "p90PriceMicros" | "avgPriceMicros" | "minBidMicros" | "p50BidMicros" | "p90BidMicros" | "avgBidMicros", description: string) =>
      t.field({ type: "Money", nullable: true, description, resolve: (row) => row[key] });
    return {
      machines: t.exposeFloat("machines", { description: "Listed machines." }),
      offers: t.exposeFloat("offers", { description: "Offer rows (chunks) of those machines." }),
      gpusTotal: t.exposeFloat("gpusTotal", { description: "GPUs of the listed machines." }),
      gpusRented: t.exposeFloat("gpusRented", { description: "GPUs of loading or running instances." }),
      gpusAvailable: t.exposeFloat("gpusAvailable", { description: "Idle GPUs on machines that can be rented now." }),
      utilization: t.exposeFloat("utilization", { nullable: true, description: "Rented / total GPU time, 0–1." }),
      minPrice: money("minPriceMicros", "Lowest on-demand price per GPU-hour of a listed machine."),
      p50Price: money("p50PriceMicros", "Median on-demand price per GPU-hour over the machines (in a bucket: median of the minutes' medians)."),
      p90Price: money("p90PriceMicros", "90th percentile on-demand price per GPU-hour (in a bucket: of the minutes' p90s)."),
      avgPrice: money("avgPriceMicros", "Mean on-demand price per GPU-hour over machines and minutes."),
      minBid: money("minBidMicros", "Lowest current bid per GPU-hour of a running interruptible instance."),
      p50Bid: money("p50BidMicros", "Median of those bids."),
      p90Bid: money("p90BidMicros", "90th percentile of those bids."),
      avgBid: money("avgBidMicros", "Mean of those bids."),
      dlperfPerDollar: t.exposeFloat("dlperfPerDollar", { nullable: true, description: "Median over machines of their best offer's DLPerf per $/hour." }),
    };
  },
});

const PricePointRef = builder.objectRef<PricePoint>("PricePoint").implement({
  description: "One GPU model's market over one bucket.",
  interfaces: [MarketFigures],
  fields: (t) => ({
    time: t.expose("time", { type: "DateTime", description: "Start of the bucket." }),
    samples: t.exposeInt("samples", { description: "Minute samples in the bucket." }),
  }),
});

const GpuMarketStatsRef = builder.objectRef<GpuMarketStats>("GpuMarketStats").implement({
  description: "One GPU model's market now.",
  interfaces: [MarketFigures],
  fields: (t) => ({
    gpuName: t.exposeString("gpuName", { description: "The GPU model, such as RTX 4090." }),
    machinesFullyRented: t.exposeInt("machinesFullyRented", {
      description: "Listed machines all of whose GPUs are rented: in the market, though none of their offers is rentable.",
    }),
  }),
});

builder.queryField("priceHistory", (t) =>
  t.field({
    type: [PricePointRef],
    description:
      "A GPU model's prices, bids and utilization over [from, to), one point per bucket with samples; open to anonymous callers. A range too long for the bucket fails with the error code VALIDATION.",
    args: {
      gpuName: t.arg.string({ required: true, description: "The GPU model, such as RTX 4090." }),
      from: t.arg({ type: "DateTime", required: true, description: "The first instant included." }),
      to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }),
      bucket: t.arg({ type: PriceBucket, required: true, defaultValue: "HOUR", description: "How long each point spans." }),
    },
    resolve: (_root, args) => priceHistory(args),
  }),
);

const SERIES_DESCRIPTIONS: Record<SeriesColumn, string> = {
  timestamps: "Start of each bucket, Unix time in seconds (a chart's x values, as uPlot takes them).",
  samples: "Minute samples in each bucket.",
  machines: "Listed machines.",
  offers: "Offer rows (chunks) of those machines.",
  gpusTotal: "GPUs of the listed machines.",
  gpusRented: "GPUs of loading or running instances.",
  gpusAvailable: "Idle GPUs on machines that can be rented now.",
  utilization: "Rented / total GPU time, 0–1; null without GPUs.",
  minPrice: "Lowest on-demand price per GPU-hour of a listed machine.",
  p50Price: "Median on-demand price per GPU-hour (in a bucket: median of the minutes' medians).",
  p90Price: "90th percentile on-demand price per GPU-hour (in a bucket: of the minutes' p90s).",
  avgPrice: "Mean on-demand price per GPU-hour over machines and minutes.",
  minBid: "Lowest current bid per GPU-hour of a running interruptible instance.",
  p50Bid: "Median of those bids.",
  p90Bid: "90th percentile of those bids.",
  avgBid: "Mean of those bids.",
  dlperfPerDollar: "Median over machines of their best offer's DLPerf per $/hour.",
};

const PriceSeriesRef = builder.objectRef<PriceSeries>("PriceSeries").implement({
  description:
    "One GPU model's market over a range as parallel arrays, one entry per bucket with samples in time order: entry i of every list is the same bucket. Means per minute within a bucket, as in PricePoint.",
  fields: (t) => {
    const money = MONEY_SERIES_COLUMNS.map(
      (column) =>
        [
          column,
          t.field({ type: ["Money"], nullable: { list: false, items: true }, description: SERIES_DESCRIPTIONS[column], resolve: (series) => series[column] ?? [] }),
        ] as const,
    );
    const float = (column: Exclude<SeriesColumn, NullableSeriesColumn | "samples">) =>
      t.field({ type: ["Float"], description: SERIES_DESCRIPTIONS[column], resolve: (series) => series[column] ?? [] });
    const nullableFloat = (column: "utilization" | "dlperfPerDollar") =>
      t.field({ type: ["Float"], nullable: { list: false, items: true }, description: SERIES_DESCRIPTIONS[column], resolve: (series) => series[column] ?? [] });
    return {
      gpuName: t.exposeString("gpuName"),
      bucket: t.field({ type: PriceBucket, resolve: (series) => series.bucket }),
      timestamps: float("timestamps"),
      samples: t.field({ type: ["Int"], description: SERIES_DESCRIPTIONS.samples, resolve: (series) => series.samples ?? [] }),
      machines: float("machines"),
      offers: float("offers"),
      gpusTotal: float("gpusTotal"),
      gpusRented: float("gpusRented"),
      gpusAvailable: float("gpusAvailable"),
      utilization: nullableFloat("utilization"),
      dlperfPerDollar: nullableFloat("dlperfPerDollar"),
      ...Object.fromEntries(money),
    };
  },
});

/** The series columns a priceSeries selection asks for; every column when it uses fragments. */
function askedColumns(info: GraphQLResolveInfo): SeriesColumn[] {
  const asked = new Set<SeriesColumn>();
  for (const node of info.fieldNodes) {
    for (const selection of node.selectionSet?.selections ?? []) {
      if (selection.kind !== Kind.FIELD) return SERIES_COLUMN_NAMES;
      if ((SERIES_COLUMN_NAMES as string[]).includes(selection.name.value)) asked.add(selection.name.value as SeriesColumn);
    }
  }
  return [...asked];
}

builder.queryField("priceSeries", (t) =>
  t.field({
    type: PriceSeriesRef,
    description:
      "A GPU model's prices, bids and utilization over [from, to) as parallel arrays (PriceSeries), for charts: ranges up to 7 days of MINUTE buckets (about 10,000 points), 400 days of HOUR and 2000 of DAY; open to anonymous callers. A range too long for the bucket fails with the error code VALIDATION.",
    args: {
      gpuName: t.arg.string({ required: true }),
      from: t.arg({ type: "DateTime", required: true }),
      to: t.arg({ type: "DateTime", required: true }),
      bucket: t.arg({ type: PriceBucket, required: true, defaultValue: "HOUR" }),
    },
    resolve: (_root, args, _context, info) => priceSeries(args, askedColumns(info)),
  }),
);

builder.queryField("marketStats", (t) =>
  t.field({
    type: [GpuMarketStatsRef],
    description: "Every GPU model's market now, fully rented machines included; open to anonymous callers.",
    resolve: () => marketStats(),
  }),
);

const EstimateSource = builder.enumType("EarningsEstimateSource", {
  description: "What an earnings estimate is based on.",
  values: {
    EARNINGS: { description: "From what similar machines (same model, half to twice the GPUs) earned." },
    PRICE_HISTORY: { description: "No similar machine earned anything: average price × 24 h × the model's utilization." },
    NONE: { description: "Neither earnings nor price history for this model." },
  },
});

const MachineSpecsInput = builder.inputType("MachineSpecsInput", {
  description: "The hardware to estimate earnings for.",
  fields: (t) => ({
    gpuName: t.string({ required: true, description: "The GPU model, such as RTX 4090." }),
    numGpus: t.int({ required: true, description: "GPUs in the machine." }),
  }),
});

const EarningsEstimateRef = builder.objectRef<Awaited<ReturnType<typeof earningsEstimate>>>("EarningsEstimate").implement({
  description: "What a machine of these specs would have earned per day (host's share) over the last windowDays whole days.",
  fields: (t) => ({
    gpuName: t.exposeString("gpuName", { description: "The GPU model estimated for." }),
    numGpus: t.exposeInt("numGpus", { description: "The GPU count estimated for." }),
    windowDays: t.exposeInt("windowDays", { description: "Whole days looked back over." }),
    source: t.field({ type: EstimateSource, description: "What the estimate is based on.", resolve: (e) => e.source }),
    similarMachines: t.exposeInt("similarMachines", { description: "Machines of similar specs the estimate draws on." }),
    perDay: t.field({ type: "Money", nullable: true, description: "Median.", resolve: (e) => e.perDayMicros }),
    perDayLow: t.field({ type: "Money", nullable: true, description: "25th percentile (EARNINGS only).", resolve: (e) => e.perDayLowMicros }),
    perDayHigh: t.field({ type: "Money", nullable: true, description: "75th percentile (EARNINGS only).", resolve: (e) => e.perDayHighMicros }),
    utilization: t.exposeFloat("utilization", { nullable: true, description: "The model's rented share of GPU time over the window." }),
  }),
});

builder.queryField("earningsEstimate", (t) =>
  t.field({
    type: EarningsEstimateRef,
    description: "How much a host could make per day with this hardware, for deciding whether to list; open to anonymous callers.",
    args: { specs: t.arg({ type: MachineSpecsInput, required: true, description: "The hardware." }) },
    resolve: (_root, args) => earningsEstimate(args.specs),
  }),
);
