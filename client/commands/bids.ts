import { type Command, globalId, printJson } from "../command.ts";
import { type Column, dollars, shortId, table, when } from "../format.ts";
import { BidsDocument, type BidsQuery, OrderBookDocument, type OrderBookQuery } from "../generated/graphql.ts";

type Bid = BidsQuery["bids"]["edges"][number]["node"];
type Level = OrderBookQuery["orderBook"]["levels"][number];

const BID_COLUMNS: Column<Bid>[] = [
  { header: "Instance", value: (b) => shortId(b.id), right: true },
  { header: "Label", value: (b) => b.instance.label ?? "-" },
  { header: "Machine", value: (b) => shortId(b.machineId), right: true },
  { header: "GPUs", value: (b) => String(b.numGpus), right: true },
  { header: "Bid/GPU-hr", value: (b) => dollars(b.pricePerGpuHour), right: true },
  { header: "To win", value: (b) => dollars(b.priceToWin), right: true },
  // Null between a change and the clearing that ranks it.
  { header: "Standing", value: (b) => b.standing ?? "RANKING" },
  { header: "Status", value: (b) => b.instance.status },
  { header: "Placed", value: (b) => when(b.placedAt) },
];

export const showBids: Command = {
  name: "show bids",
  usage: "[--raw]",
  summary: "Your live bids, their standing and the price that wins each now",
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const data = await ctx.client().request(BidsDocument, { first: 100 });
    const bids = data.bids.edges.map((edge) => edge.node);
    if (ctx.raw) return printJson(ctx, bids);
    ctx.print(bids.length === 0 ? "No live bids." : table(BID_COLUMNS, bids));
  },
};

const LEVEL_COLUMNS: Column<Level>[] = [
  { header: "Bid/GPU-hr", value: (l) => dollars(l.price), right: true },
  { header: "GPUs", value: (l) => String(l.gpus), right: true },
  { header: "Bids", value: (l) => String(l.bids), right: true },
  { header: "Winning GPUs", value: (l) => String(l.winningGpus), right: true },
];

export const showOrderBook: Command = {
  name: "show order-book",
  usage: "<machine> [--raw]",
  summary: "A listed machine's bids by price (anonymous), its minimum bid and clearing price",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const { orderBook: book } = await ctx.publicClient().request(OrderBookDocument, { machineId: globalId("Machine", ctx.positionals[0]!) });
    if (ctx.raw) return printJson(ctx, book);
    ctx.print(
      [
        `Machine ${shortId(book.machineId)}: ${book.numGpus} GPUs, ${book.onDemandGpus} held on demand`,
        `Minimum bid ${dollars(book.minBid)}/GPU-hr, clearing at ${book.clearingPrice ? `${dollars(book.clearingPrice)}/GPU-hr` : "- (no bid wins)"}`,
        book.levels.length === 0 ? "No live bids." : table(LEVEL_COLUMNS, book.levels),
      ].join("\n"),
    );
  },
};
