import { bidsWhere, standsInAuction } from "../domain/auction/bids.ts";
import { NotFoundError } from "../domain/errors.ts";
import { readsAccount } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import { eventStream, flatMapStream } from "../infra/pubsub.ts";
import { BidStanding } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { describedValues } from "./enumValues.ts";
import { InstanceRef } from "./instance.ts";

const BidStandingEnum = builder.enumType("BidStanding", {
  description: "Where a bid stands in its machine's auction.",
  values: describedValues(BidStanding, {
    WINNING: "Holds its GPUs: the instance runs.",
    OUTBID: "Higher bids hold the GPUs it needs.",
    PREEMPTED_BY_ON_DEMAND: "On-demand rentals leave too few GPUs.",
    BELOW_MIN_BID: "Under the machine's minimum bid.",
    WAITING_FOR_MACHINE: "The machine is offline.",
  }),
});

export const BidRef = builder.prismaNode("Instance", {
  variant: "Bid",
  id: { field: "id" },
  description: "An interruptible instance's bid for its GPUs, with where it stands in its machine's auction. Its id is its instance's.",
  // Bids are their owner's alone: a machine's agent sees its instances, never their bids' standing.
  authScopes: (instance, ctx) => readsAccount(ctx.viewer, instance.clientId),
  fields: (t) => ({
    instance: t.variant(InstanceRef, { description: "The interruptible instance that placed the bid." }),
    machineId: t.globalID({ description: "The machine whose GPUs it bids for.", resolve: (instance) => ({ type: "Machine", id: instance.machineId }) }),
    numGpus: t.exposeInt("numGpus", { description: "GPUs it bids for." }),
    pricePerGpuHour: t.field({
      type: "Money",
      description: "The bid per GPU-hour.",
      // Every interruptible instance has one (createInstance and changeBid set it).
      resolve: (instance) => instance.bidPerGpuHourMicros!,
    }),
    placedAt: t.expose("bidPlacedAt", { type: "DateTime", description: "When the price was set; equal bids rank earlier first." }),
    standing: t.field({
      type: BidStandingEnum,
      nullable: true,
      description:
        "As of the last clearing of the machine. Null while the bid waits for its first clearing after being placed or changed (moments), and once the instance is stopped or ended.",
      resolve: (instance) => (standsInAuction(instance) ? instance.bidStanding : null),
    }),
    priceToWin: t.field({
      type: "Money",
      nullable: true,
      description:
        "The lowest bid per GPU-hour that would win this many GPUs on the machine now (the offer's winningBid): for a bid not winning, the price that wins it back. Null when on-demand rentals leave too few GPUs, the machine is offline, or the bid is not live.",
      resolve: (instance) => (standsInAuction(instance) ? instance.bidPriceToWinMicros : null),
    }),
  }),
});

builder.prismaObject("BidChange", {
  description: "A price the bid held: set at creation or by changeBid.",
  fields: (t) => ({
    price: t.field({ type: "Money", description: "Per GPU-hour.", resolve: (change) => change.priceMicros }),
    placedAt: t.expose("placedAt", { type: "DateTime", description: "When this price was set." }),
    standing: t.expose("standing", {
      type: BidStandingEnum,
      nullable: true,
      description: "What the first clearing after the change decided; null until it ran (or when the instance stopped first).",
    }),
    priceToWin: t.field({
      type: "Money",
      nullable: true,
      description: "The price to win then.",
      resolve: (change) => change.priceToWinMicros,
    }),
  }),
});

builder.prismaObjectFields(InstanceRef, (t) => ({
  bid: t.variant(BidRef, {
    description: "Interruptible only: its bid and where it stands.",
    isNull: (instance) => instance.kind !== "INTERRUPTIBLE",
  }),
  bidHistory: t.relation("bidChanges", {
    // Like its Bid: the owner's alone, never the machine's agent's.
    authScopes: (instance, _args, ctx) => readsAccount(ctx.viewer, instance.clientId),
    description: "Interruptible only: every price its bid held, oldest first (empty for on-demand). Its owner's only.",
    query: { orderBy: { id: "asc" } },
  }),
}));

builder.queryField("bids", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: BidRef,
      cursor: "id",
      description: "The caller's live bids (interruptible instances that want to run), newest first; `status` keeps those of these standings.",
      args: { status: t.arg({ type: [BidStandingEnum], description: "Only bids of these standings." }) },
      resolve: (query, _root, args, ctx) =>
        prisma.instance.findMany({ ...query, where: bidsWhere(ctx.viewer.userId, { status: args.status }), orderBy: { id: "desc" } }),
      totalCount: (_root, args, ctx) => prisma.instance.count({ where: bidsWhere(ctx.viewer.userId, { status: args.status }) }),
    },
    { name: "BidConnection" },
    { name: "BidEdge" },
  ),
);

builder.subscriptionField("bids", (t) =>
  t.withAuth({ permission: "READ" }).prismaField({
    type: BidRef,
    description:
      "Each of the caller's live bids as it is now, then each bid again whenever a clearing changes its standing or its price to win (outbid, won back, preempted, a competitor's new price).",
    subscribe: (_root, _args, ctx) => {
      const userId = ctx.viewer.userId;
      const events = eventStream("bids", userId, { merge: (a, b) => ({ instanceIds: [...a.instanceIds, ...b.instanceIds] }) });
      return flatMapStream(events, async (event) => {
        if (event) return [...new Set(event.instanceIds)];
        const live = await prisma.instance.findMany({ where: bidsWhere(userId, {}), select: { id: true }, orderBy: { id: "asc" } });
        return live.map((instance) => instance.id);
      });
    },
    resolve: async (query, instanceId: number, _args, ctx) => {
      const bid = await prisma.instance.findFirst({ ...query, where: { id: instanceId, clientId: ctx.viewer.userId, kind: "INTERRUPTIBLE" } });
      if (!bid) throw new NotFoundError("Bid");
      return bid;
    },
  }),
);
