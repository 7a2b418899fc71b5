import { z } from "zod";
import type { Tx } from "../../infra/db.ts";
import { prisma } from "../../infra/db.ts";
import { BidStanding, type Prisma } from "../../prisma/generated/client/client.ts";
import { parseInput } from "../validation.ts";
import type { Contract } from "./clearing.ts";
import { type BidPosition, type OrderBook, orderBook } from "./book.ts";
import { LIVE_STATUSES, type LiveInstance, auctionMachine, liveInstancesOf, toContract } from "./contracts.ts";

/*
 * Bids as their owners and the market see them. A bid is an interruptible instance: its price and
 * placement live on the instance; each clearing of the machine records the standing it decided
 * (`recordBidPositions`), and every price the bid held is a row of its history.
 */

/**
 * In the clearing's transaction: stores the positions that changed, and ranks the bid changes that
 * no clearing has ranked yet (their instance's standing is null since the change). Returns the bids
 * whose standing or price to win changed, for the owners' `bids` events after commit.
 */
export async function recordBidPositions(
  tx: Tx,
  live: readonly LiveInstance[],
  positions: readonly BidPosition[],
): Promise<{ instanceId: number; clientId: number }[]> {
  const byId = new Map(live.map((instance) => [instance.id, instance]));
  const changed = positions.filter((position) => {
    const instance = byId.get(position.instanceId)!;
    return instance.bidStanding !== position.standing || instance.bidPriceToWinMicros !== position.priceToWinMicros;
  });
  if (changed.length === 0) return [];
  const ids = changed.map((p) => p.instanceId);
  const standings = changed.map((p) => p.standing);
  const prices = changed.map((p) => (p.priceToWinMicros === null ? null : p.priceToWinMicros.toString()));
  await tx.$executeRaw`
    WITH v AS (
      SELECT * FROM unnest(${ids}::int[], ${standings}::text[], ${prices}::text[]) AS v(id, standing, price)
    ), ranked AS (
      UPDATE bid_change b SET standing = v.standing::"BidStanding", price_to_win_micros = v.price::bigint
        FROM v WHERE b.instance_id = v.id AND b.standing IS NULL
    )
    UPDATE instance i SET bid_standing = v.standing::"BidStanding", bid_price_to_win_micros = v.price::bigint FROM v WHERE i.id = v.id`;
  return changed.map((p) => ({ instanceId: p.instanceId, clientId: byId.get(p.instanceId)!.clientId }));
}

/** In the transaction that sets a bid's price (creation inserts its first row itself): a history row, and the standing unranked. */
export async function recordBidChange(tx: Tx, instanceId: number, priceMicros: bigint, placedAt: Date): Promise<void> {
  await tx.bidChange.create({ data: { instanceId, priceMicros, placedAt }, select: { id: true } });
}

const bidsFilter = z.object({ status: z.array(z.enum(BidStanding)).max(5).nullish() });

/** The caller's live bids (interruptible instances that want to run), optionally of some standings. */
export function bidsWhere(userId: number, filter: z.input<typeof bidsFilter>): Prisma.InstanceWhereInput {
  const { status } = parseInput(bidsFilter, filter);
  return {
    clientId: userId,
    kind: "INTERRUPTIBLE",
    status: { in: LIVE_STATUSES },
    ...(status?.length ? { bidStanding: { in: status } } : {}),
  };
}

/** Whether an instance's recorded standing still describes it: only live bids stand in an auction. */
export function standsInAuction(instance: { kind: string; status: string }): boolean {
  return instance.kind === "INTERRUPTIBLE" && (LIVE_STATUSES as string[]).includes(instance.status);
}

/**
 * The order books of the listed machines among `machineIds`, from their contracts now (two
 * statements however many machines). An unlisted or unknown machine has none.
 */
export async function orderBooks(machineIds: readonly number[], now = new Date()): Promise<Map<number, OrderBook>> {
  const [machines, live] = await Promise.all([
    prisma.machine.findMany({
      where: { id: { in: [...machineIds] }, listed: true, pricePerGpuHourMicros: { not: null } },
      select: { id: true, numGpus: true, online: true, pricePerGpuHourMicros: true, minBidPerGpuHourMicros: true },
    }),
    liveInstancesOf(prisma, machineIds),
  ]);
  const contracts = new Map(machines.map((machine) => [machine.id, [] as Contract[]]));
  for (const instance of live) contracts.get(instance.machineId)?.push(toContract(instance, now));
  return new Map(machines.map((machine) => [machine.id, orderBook(auctionMachine(machine), contracts.get(machine.id)!)]));
}
