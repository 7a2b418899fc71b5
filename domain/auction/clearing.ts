/**
 * The auction on one machine: a pure function from the machine and its contracts to who runs.
 * The worker calls it with the machine row locked and applies the result; offers call
 * `winningBidFor` to show what it takes to run now.
 *
 * Rules, in order:
 * 1. An unavailable machine runs nothing.
 * 2. On-demand contracts, earliest `bidPlacedAt` first, each take their GPUs when they fit in what
 *    earlier on-demand contracts left (creation only admits on-demand rentals that fit, so normally
 *    all run); one that does not fit waits and never displaces another. Bids play no part here, so
 *    a bid never displaces an on-demand rental.
 * 3. Bids at or above the machine's min bid, ranked by price per GPU descending, then earlier
 *    `bidPlacedAt`, then lower instanceId, take their GPUs first-fit: each bid runs when it fits in
 *    the GPUs left by on-demand contracts and higher-ranked winners, otherwise it is paused and the
 *    next bid is tried. A bid too large for what is left therefore never blocks smaller, lower bids.
 *
 * No priority inversion: a bid is "paused for lack of GPUs" when the machine is available, its bid
 * is at or above the min bid and it fits the machine, yet it does not run (reason OUTBID or
 * PREEMPTED_BY_ON_DEMAND). For every such bid, the GPUs left unallocated plus the GPUs of all
 * running lower-ranked bids are fewer than it needs: pausing every lower bid would not let it run.
 * First-fit guarantees this because a bid's turn comes before any lower bid takes GPUs.
 */

export type RentalKind = "ON_DEMAND" | "INTERRUPTIBLE";

export interface AuctionMachine {
  numGpus: number;
  minBidMicros: bigint;
  /** Listed or rented, online and before its end date. */
  available: boolean;
}

export interface Contract {
  instanceId: number;
  kind: RentalKind;
  numGpus: number;
  /** Bid in micro-dollars per GPU-hour; null for on-demand (an interruptible without one never runs). */
  bidPerGpuMicros: bigint | null;
  /**
   * When the contract last claimed GPUs (ms epoch or a sequence); earlier wins ties. For a bid, when
   * its price was last set. For on-demand, when it was created or last started, so a restarted
   * rental queues behind the on-demand rentals already running instead of displacing them.
   */
  bidPlacedAt: number;
  /** Intended RUNNING and not ended. Contracts that do not want to run hold no GPUs. */
  wantsToRun: boolean;
}

export type NotRunningReason =
  | "OUTBID"
  | "PREEMPTED_BY_ON_DEMAND"
  | "BELOW_MIN_BID"
  | "MACHINE_UNAVAILABLE"
  | "WAITING_FOR_GPUS"
  | "EXCEEDS_MACHINE";

export type Outcome =
  | { instanceId: number; runs: true }
  /** `winningBidMicros`: the lowest price per GPU that would run it if bid now. */
  | { instanceId: number; runs: false; reason: "OUTBID"; winningBidMicros: bigint }
  | { instanceId: number; runs: false; reason: Exclude<NotRunningReason, "OUTBID"> };

export interface Clearing {
  /** One per contract that wants to run, ordered by instanceId. */
  outcomes: Outcome[];
  gpusAllocated: number;
  /** GPUs held by running on-demand contracts; the rest are what bids compete for. */
  gpusOnDemand: number;
}

export function clearMachine(machine: AuctionMachine, contracts: readonly Contract[]): Clearing {
  const wanting = contracts.filter((c) => c.wantsToRun);
  if (!machine.available) {
    return { outcomes: byInstanceId(wanting.map((c) => paused(c, "MACHINE_UNAVAILABLE"))), gpusAllocated: 0, gpusOnDemand: 0 };
  }
  const onDemand = allocateOnDemand(machine, wanting);
  const bidCapacity = machine.numGpus - onDemand.gpus;
  const { ranked, outcomes: unranked } = rankBids(machine, wanting);
  const outcomes = [...onDemand.outcomes, ...unranked];
  let free = bidCapacity;
  for (const bid of ranked) {
    if (bid.numGpus <= free) {
      free -= bid.numGpus;
      outcomes.push({ instanceId: bid.instanceId, runs: true });
    } else if (bid.numGpus > bidCapacity) {
      outcomes.push(paused(bid, "PREEMPTED_BY_ON_DEMAND"));
    } else {
      const others = ranked.filter((other) => other !== bid);
      const winningBidMicros = priceToWin(others, bidCapacity, machine.minBidMicros, bid.numGpus)!;
      outcomes.push({ instanceId: bid.instanceId, runs: false, reason: "OUTBID", winningBidMicros });
    }
  }
  return { outcomes: byInstanceId(outcomes), gpusAllocated: onDemand.gpus + bidCapacity - free, gpusOnDemand: onDemand.gpus };
}

/**
 * The lowest bid per GPU that would win `numGpus` GPUs if placed now (after every existing bid, so
 * it loses ties): the min bid when that many are free of on-demand contracts and winning bids, else
 * one micro-dollar above the bids it must beat. Null when the machine is unavailable or on-demand
 * contracts leave fewer than `numGpus` GPUs.
 */
export function winningBidFor(machine: AuctionMachine, contracts: readonly Contract[], numGpus: number): bigint | null {
  if (!machine.available) return null;
  const wanting = contracts.filter((c) => c.wantsToRun);
  const bidCapacity = machine.numGpus - allocateOnDemand(machine, wanting).gpus;
  return priceToWin(rankBids(machine, wanting).ranked, bidCapacity, machine.minBidMicros, numGpus);
}

/** Step 2 of the rules: on-demand contracts in placement order, each when it fits. */
function allocateOnDemand(machine: AuctionMachine, wanting: readonly Contract[]): { outcomes: Outcome[]; gpus: number } {
  const outcomes: Outcome[] = [];
  let gpus = 0;
  for (const c of wanting.filter((c) => c.kind === "ON_DEMAND").sort(byPlacement)) {
    if (c.numGpus > machine.numGpus) {
      outcomes.push(paused(c, "EXCEEDS_MACHINE"));
    } else if (gpus + c.numGpus <= machine.numGpus) {
      gpus += c.numGpus;
      outcomes.push({ instanceId: c.instanceId, runs: true });
    } else {
      outcomes.push(paused(c, "WAITING_FOR_GPUS"));
    }
  }
  return { outcomes, gpus };
}

/** The bids that take part in the auction, in rank order, and outcomes for those that cannot. */
function rankBids(machine: AuctionMachine, wanting: readonly Contract[]): { ranked: Contract[]; outcomes: Outcome[] } {
  const ranked: Contract[] = [];
  const outcomes: Outcome[] = [];
  for (const c of wanting) {
    if (c.kind !== "INTERRUPTIBLE") continue;
    if (c.bidPerGpuMicros === null || c.bidPerGpuMicros < machine.minBidMicros) outcomes.push(paused(c, "BELOW_MIN_BID"));
    else if (c.numGpus > machine.numGpus) outcomes.push(paused(c, "EXCEEDS_MACHINE"));
    else ranked.push(c);
  }
  ranked.sort((a, b) => comparePriceDescending(a.bidPerGpuMicros!, b.bidPerGpuMicros!) || byPlacement(a, b));
  return { ranked, outcomes };
}

/**
 * The lowest price at which a new bid for `numGpus`, ranked after every bid in `ranked` at the same
 * or a higher price, is allocated. A bid's allocation depends only on the bids ranked above it, and
 * those take more GPUs the lower the new price goes, so the first price group after which too few
 * GPUs are left sets the price: one micro-dollar above that group.
 */
function priceToWin(ranked: readonly Contract[], bidCapacity: number, minBidMicros: bigint, numGpus: number): bigint | null {
  if (numGpus > bidCapacity) return null;
  let free = bidCapacity;
  for (let i = 0; i < ranked.length; ) {
    const price = ranked[i].bidPerGpuMicros!;
    for (; i < ranked.length && ranked[i].bidPerGpuMicros === price; i++) {
      if (ranked[i].numGpus <= free) free -= ranked[i].numGpus;
    }
    if (free < numGpus) return price + 1n;
  }
  return minBidMicros;
}

function paused(c: Contract, reason: Exclude<NotRunningReason, "OUTBID">): Outcome {
  return { instanceId: c.instanceId, runs: false, reason };
}

function byPlacement(a: Contract, b: Contract): number {
  return a.bidPlacedAt - b.bidPlacedAt || a.instanceId - b.instanceId;
}

function comparePriceDescending(a: bigint, b: bigint): number {
  return a > b ? -1 : a < b ? 1 : 0;
}

function byInstanceId(outcomes: Outcome[]): Outcome[] {
  return outcomes.sort((a, b) => a.instanceId - b.instanceId);
}
