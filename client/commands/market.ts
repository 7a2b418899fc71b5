import { type Command, numberOption, printJson, stringOption, UsageError } from "../command.ts";
import { chart, dollars, when } from "../format.ts";
import { type PriceBucket, PriceHistoryDocument } from "../generated/graphql.ts";

const BUCKETS: PriceBucket[] = ["MINUTE", "HOUR", "DAY"];
const BUCKET_MS: Record<PriceBucket, number> = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000 };
const MAX_WIDTH = 100;

/** Means of consecutive groups, so that a long series fits `width` columns; null where a group has no values. */
function fit(values: (number | null)[], width: number): (number | null)[] {
  if (values.length <= width) return values;
  return Array.from({ length: width }, (_, column) => {
    const group = values
      .slice(Math.floor((column * values.length) / width), Math.floor(((column + 1) * values.length) / width))
      .filter((v): v is number => v !== null);
    return group.length ? group.reduce((a, b) => a + b, 0) / group.length : null;
  });
}

// Chart positions only: prices are display values here, never summed or stored.
const price = (money: string | null) => (money === null ? null : Number(money));

export const priceHistory: Command = {
  name: "price history",
  usage: "<gpu_name> [--bucket minute|hour|day] [--days N] [--raw]",
  summary: "A GPU model's on-demand prices and bids over time, charted in the terminal",
  positionals: { min: 1, max: Infinity },
  options: { bucket: { type: "string" }, days: { type: "string" } },
  async run(ctx) {
    // "RTX_4090" as in search queries, or "RTX 4090" quoted or as two words.
    const gpuName = ctx.positionals.join(" ").replace(/_/g, " ");
    const bucket = (stringOption(ctx, "bucket") ?? "hour").toUpperCase() as PriceBucket;
    if (!BUCKETS.includes(bucket)) throw new UsageError("--bucket takes minute, hour or day");
    const days = numberOption(ctx, "days") ?? 7;
    const to = new Date();
    const from = new Date(to.getTime() - days * 86_400_000);
    const data = await ctx.publicClient().request(PriceHistoryDocument, { gpuName, bucket, from: from.toISOString(), to: to.toISOString() });
    const points = data.priceHistory;
    if (ctx.raw) return printJson(ctx, points);
    if (points.length === 0) return ctx.print(`No price history for ${gpuName} in the last ${days} days.`);

    // One column per bucket of the range, gaps where the sampler has no points.
    const step = BUCKET_MS[bucket];
    const start = Math.floor(from.getTime() / step) * step;
    const slots = Math.ceil((to.getTime() - start) / step);
    const bySlot = new Map(points.map((p) => [Math.floor((new Date(p.time).getTime() - start) / step), p]));
    const series = (pick: (p: (typeof points)[number]) => string | null) =>
      fit(Array.from({ length: slots }, (_, i) => price(bySlot.has(i) ? pick(bySlot.get(i)!) : null)), MAX_WIDTH);
    const last = points.at(-1)!;
    ctx.print(`${gpuName}: $/GPU-hour per ${bucket.toLowerCase()}, ${when(points[0]!.time)} to ${when(last.time)} (UTC)`);
    ctx.print(
      chart(
        [
          { mark: "·", values: series((p) => p.p90Price) },
          { mark: "b", values: series((p) => p.p50Bid) },
          { mark: "●", values: series((p) => p.p50Price) },
        ],
        { label: (value) => `$${value.toFixed(3)}` },
      ),
    );
    ctx.print("● median price   · p90 price   b median winning bid");
    const utilization = last.gpusTotal > 0 ? `${((100 * last.gpusRented) / last.gpusTotal).toFixed(0)}%` : "-";
    ctx.print(
      `latest: median ${dollars(last.p50Price)}, p90 ${dollars(last.p90Price)}, min ${dollars(last.minPrice)}, median bid ${dollars(last.p50Bid)}, ${utilization} of ${last.gpusTotal.toFixed(0)} GPUs rented`,
    );
  },
};
