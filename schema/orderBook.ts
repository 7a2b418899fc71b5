import DataLoader from "dataloader";
import type { OrderBook, PriceLevel } from "../domain/auction/book.ts";
import { orderBooks } from "../domain/auction/bids.ts";
import { NotFoundError } from "../domain/errors.ts";
import { eventStream } from "../infra/pubsub.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { MachineRef } from "./machine.ts";
import { OfferRef } from "./offer.ts";

type Book = OrderBook & { machineId: number };

const PriceLevelRef = builder.objectRef<PriceLevel>("OrderBookLevel").implement({
  description: "The live bids at one price: how many and for how many GPUs, never whose.",
  fields: (t) => ({
    price: t.field({ type: "Money", description: "Per GPU-hour.", resolve: (level) => level.priceMicros }),
    gpus: t.exposeInt("gpus", { description: "GPUs the bids at this price ask for." }),
    bids: t.exposeInt("bids", { description: "Number of bids at this price." }),
    winningGpus: t.exposeInt("winningGpus", { description: "Of `gpus`, those the bids at this price hold now." }),
  }),
});

const OrderBookRef = builder.objectRef<Book>("OrderBook").implement({
  description:
    "One listed machine's auction as the market sees it: GPUs held by on-demand rentals and the live bids by price level, anonymous.",
  fields: (t) => ({
    machineId: t.globalID({ description: "The machine.", resolve: (book) => ({ type: "Machine", id: book.machineId }) }),
    numGpus: t.exposeInt("numGpus", { description: "GPUs of the machine." }),
    onDemandGpus: t.exposeInt("onDemandGpus", { description: "GPUs held by on-demand rentals: bids compete for the rest." }),
    minBid: t.field({ type: "Money", description: "The machine's minimum bid per GPU-hour.", resolve: (book) => book.minBidMicros }),
    clearingPrice: t.field({
      type: "Money",
      nullable: true,
      description: "The lowest bid per GPU-hour that holds GPUs now; null when no bid does.",
      resolve: (book) => book.clearingPriceMicros,
    }),
    levels: t.field({ type: [PriceLevelRef], description: "Live bids by price, highest first.", resolve: (book) => book.levels }),
  }),
});

/**
 * Books of the machines asked for in the same tick, read together: a page of offers, or every
 * order-book subscriber one clearing wakes. Never cached, and public, so requests may share a batch.
 */
const books = new DataLoader<number, Book | null>(
  async (machineIds) => {
    const found = await orderBooks(machineIds);
    return machineIds.map((machineId) => {
      const book = found.get(machineId);
      return book ? { ...book, machineId } : null;
    });
  },
  { cache: false, batchScheduleFn: (dispatch) => setImmediate(dispatch) },
);

/** "Machine:12" or "12". */
function machineIdArgument(raw: string | number): number {
  const text = String(raw);
  const separator = text.lastIndexOf(":");
  return localId({ typename: separator < 0 ? "Machine" : text.slice(0, separator), id: text.slice(separator + 1) }, "Machine", "machineId");
}

async function requiredBook(machineId: number): Promise<Book> {
  const book = await books.load(machineId);
  if (!book) throw new NotFoundError("Machine");
  return book;
}

const BOOK_DESCRIPTION = "The machine's order book; null once the machine is unlisted.";

builder.objectField(OfferRef, "orderBook", (t) =>
  t.field({ type: OrderBookRef, nullable: true, description: BOOK_DESCRIPTION, resolve: (offer) => books.load(offer.machineId) }),
);

builder.prismaObjectField(MachineRef, "orderBook", (t) =>
  t.field({ type: OrderBookRef, nullable: true, skipTypeScopes: true, description: BOOK_DESCRIPTION, resolve: (machine) => books.load(machine.id) }),
);

builder.queryField("orderBook", (t) =>
  t.field({
    type: OrderBookRef,
    description: "A listed machine's order book; open to anonymous callers. An unlisted or unknown machine is NOT_FOUND.",
    args: { machineId: t.arg.id({ required: true, description: 'Such as "Machine:12" or 12 (an offer\'s machineId).' }) },
    resolve: (_root, args) => requiredBook(machineIdArgument(args.machineId)),
  }),
);

builder.subscriptionField("orderBook", (t) =>
  t.field({
    type: OrderBookRef,
    description:
      "A listed machine's order book now, then again after each clearing of the machine (at most one event per clearing; a slow subscriber gets the latest). Any key may watch any listed machine; an unlisted or unknown machine is NOT_FOUND.",
    args: { machineId: t.arg.id({ required: true, description: 'Such as "Machine:12" or 12 (an offer\'s machineId).' }) },
    subscribe: async (_root, args) => {
      const machineId = machineIdArgument(args.machineId);
      await requiredBook(machineId);
      return eventStream("orderBook", machineId, { merge: (a) => a });
    },
    // Refetched for every event: the book is the state now, so coalesced events lose nothing.
    resolve: (_event, args) => requiredBook(machineIdArgument(args.machineId)),
  }),
);
