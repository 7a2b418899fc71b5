import type { BidStanding } from "../../prisma/generated/client/client.ts";
import { type AuctionMachine, type Clearing, type Contract, type Outcome, clearMachine, winningBidFor } from "./clearing.ts";
import { onDemandClaim } from "./contracts.ts";

/*
 * What bidders see of one machine's auction, as pure functions of the same inputs as the clearing:
 * each bid's standing with the price that would win it now, and the machine's order book (bids
 * aggregated by price, never by who placed them).
 */

export interface BidPosition {
  instanceId: number;
  standing: BidStanding;
  /** The lowest bid per GPU-hour that would win the bid's GPUs if placed now: `winningBidFor` its size, the offer's winningBid. */
  priceToWinMicros: bigint | null;
}

function standingOf(outcome: Outcome): BidStanding {
  if (outcome.runs) return "WINNING";
  switch (outcome.reason) {
    case "OUTBID":
    case "PREEMPTED_BY_ON_DEMAND":
    case "BELOW_MIN_BID":
      return outcome.reason;
    // Offline, or (after a change of the machine) more GPUs than it has: either way the bid waits
    // for the machine, not for other bidders. On-demand contracts only wait for GPUs.
    case "MACHINE_UNAVAILABLE":
    case "EXCEEDS_MACHINE":
    case "WAITING_FOR_GPUS":
      return "WAITING_FOR_MACHINE";
  }
}

/** The standing of every bid the clearing ranked, in its order (by instanceId). */
export function bidPositions(machine: AuctionMachine, contracts: readonly Contract[], clearing: Clearing): BidPosition[] {
  const bids = new Map(contracts.filter((c) => c.kind === "INTERRUPTIBLE").map((c) => [c.instanceId, c]));
  const priceToWin = new Map<number, bigint | null>();
  const positions: BidPosition[] = [];
  for (const outcome of clearing.outcomes) {
    const bid = bids.get(outcome.instanceId);
    if (!bid) continue;
    if (!priceToWin.has(bid.numGpus)) priceToWin.set(bid.numGpus, winningBidFor(machine, contracts, bid.numGpus));
    positions.push({ instanceId: bid.instanceId, standing: standingOf(outcome), priceToWinMicros: priceToWin.get(bid.numGpus)! });
  }
  return positions;
}

export interface PriceLevel {
  /** Per GPU-hour. */
  priceMicros: bigint;
  gpus: number;
  bids: number;
  /** Of `gpus`, those the bids at this price hold now. */
  winningGpus: number;
}

export interface OrderBook {
  numGpus: number;
  /** GPUs on-demand rentals hold (or wait for): what bids cannot win. */
  onDemandGpus: number;
  minBidMicros: bigint;
  /** The lowest price per GPU-hour among the bids that win now; null when no bid wins. */
  clearingPriceMicros: bigint | null;
  /** Every live bid, aggregated by price, highest first. */
  levels: PriceLevel[];
}

export function orderBook(machine: AuctionMachine, contracts: readonly Contract[]): OrderBook {
  const wanting = contracts.filter((c) => c.wantsToRun);
  const runs = new Set(clearMachine(machine, wanting).outcomes.filter((o) => o.runs).map((o) => o.instanceId));
  const levels = new Map<bigint, PriceLevel>();
  let clearingPriceMicros: bigint | null = null;
  for (const bid of wanting) {
    if (bid.kind !== "INTERRUPTIBLE" || bid.bidPerGpuMicros === null) continue;
    const priceMicros = bid.bidPerGpuMicros;
    const level = levels.get(priceMicros) ?? { priceMicros, gpus: 0, bids: 0, winningGpus: 0 };
    level.gpus += bid.numGpus;
    level.bids += 1;
    if (runs.has(bid.instanceId)) {
      level.winningGpus += bid.numGpus;
      if (clearingPriceMicros === null || priceMicros < clearingPriceMicros) clearingPriceMicros = priceMicros;
    }
    levels.set(priceMicros, level);
  }
  return {
    numGpus: machine.numGpus,
    onDemandGpus: onDemandClaim(machine.numGpus, wanting),
    minBidMicros: machine.minBidMicros,
    clearingPriceMicros,
    levels: [...levels.values()].sort((a, b) => (a.priceMicros > b.priceMicros ? -1 : a.priceMicros < b.priceMicros ? 1 : 0)),
  };
}
