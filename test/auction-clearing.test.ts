import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AuctionMachine, type Clearing, type Contract, clearMachine, winningBidFor } from "../domain/auction/clearing.ts";
import { bidPositions, orderBook } from "../domain/auction/book.ts";
import { onDemandClaim } from "../domain/auction/contracts.ts";
import { parseMoney } from "../domain/money.ts";

const usd = (text: string) => parseMoney(text)!;
const machine8: AuctionMachine = { numGpus: 8, minBidMicros: usd("0.10"), available: true };

let nextId = 1;
function onDemand(numGpus: number, bidPlacedAt = 0): Contract {
  return { instanceId: nextId++, kind: "ON_DEMAND", numGpus, bidPerGpuMicros: null, bidPlacedAt, wantsToRun: true };
}
function bid(numGpus: number, price: string, bidPlacedAt = 0): Contract {
  return { instanceId: nextId++, kind: "INTERRUPTIBLE", numGpus, bidPerGpuMicros: usd(price), bidPlacedAt, wantsToRun: true };
}
function outcomeOf(clearing: Clearing, contract: Contract) {
  return clearing.outcomes.find((o) => o.instanceId === contract.instanceId);
}
function running(clearing: Clearing): number[] {
  return clearing.outcomes.filter((o) => o.runs).map((o) => o.instanceId);
}

describe("clearMachine: examples on an 8-GPU machine", () => {
  it("runs on-demand first, then the highest bids that fit", () => {
    const rental = onDemand(4);
    const high = bid(3, "0.50");
    const middle = bid(2, "0.40");
    const low = bid(1, "0.30");
    const clearing = clearMachine(machine8, [low, middle, rental, high]);
    expect(clearing).toEqual({
      outcomes: [
        { instanceId: rental.instanceId, runs: true },
        { instanceId: high.instanceId, runs: true },
        // 1 GPU is left after the higher bid: it would have to outbid the 0.50 bid.
        { instanceId: middle.instanceId, runs: false, reason: "OUTBID", winningBidMicros: usd("0.500001") },
        // A smaller, lower bid still takes the GPU the paused one cannot use.
        { instanceId: low.instanceId, runs: true },
      ],
      gpusAllocated: 8,
      gpusOnDemand: 4,
    });
  });

  it("pauses the whole-machine bid when a higher bid takes half the GPUs", () => {
    const whole = bid(8, "0.30");
    const half = bid(4, "0.35");
    const clearing = clearMachine(machine8, [whole, half]);
    expect(outcomeOf(clearing, half)).toEqual({ instanceId: half.instanceId, runs: true });
    expect(outcomeOf(clearing, whole)).toEqual({ instanceId: whole.instanceId, runs: false, reason: "OUTBID", winningBidMicros: usd("0.350001") });
    expect(clearing.gpusAllocated).toBe(4);
    // The 4 idle GPUs can be won at the min bid; all 8 only by beating the 0.35 bid.
    expect(winningBidFor(machine8, [whole, half], 4)).toBe(usd("0.10"));
    expect(winningBidFor(machine8, [whole, half], 8)).toBe(usd("0.350001"));
  });

  it("breaks a price tie in favour of the earlier bid", () => {
    const rental = onDemand(4);
    const later = bid(4, "0.30", 2_000);
    const earlier = bid(4, "0.30", 1_000);
    const clearing = clearMachine(machine8, [rental, later, earlier]);
    expect(running(clearing)).toEqual([rental.instanceId, earlier.instanceId]);
    expect(outcomeOf(clearing, later)).toMatchObject({ runs: false, reason: "OUTBID", winningBidMicros: usd("0.300001") });
  });

  it("breaks a full tie by instance id", () => {
    const first = bid(8, "0.30", 5);
    const second = bid(8, "0.30", 5);
    expect(running(clearMachine(machine8, [second, first]))).toEqual([first.instanceId]);
  });

  it("preempts bids for a new on-demand rental, whatever they bid", () => {
    const whole = bid(8, "9.99");
    const clearing = clearMachine(machine8, [whole, onDemand(2)]);
    expect(outcomeOf(clearing, whole)).toEqual({ instanceId: whole.instanceId, runs: false, reason: "PREEMPTED_BY_ON_DEMAND" });
    expect(clearing.gpusOnDemand).toBe(2);
    expect(winningBidFor(machine8, [whole, onDemand(2)], 8)).toBeNull();
    expect(winningBidFor(machine8, [whole, onDemand(2)], 6)).toBe(usd("0.10"));
  });

  it("keeps a restarted on-demand rental waiting rather than displacing running ones", () => {
    const running1 = onDemand(6, 1);
    const restarted = onDemand(4, 2);
    const clearing = clearMachine(machine8, [restarted, running1]);
    expect(outcomeOf(clearing, running1)).toMatchObject({ runs: true });
    expect(outcomeOf(clearing, restarted)).toEqual({ instanceId: restarted.instanceId, runs: false, reason: "WAITING_FOR_GPUS" });
  });

  it("never runs bids below the min bid or without a price", () => {
    const below = bid(1, "0.09");
    const noPrice: Contract = { ...bid(1, "0"), bidPerGpuMicros: null };
    const atMin = bid(1, "0.10");
    const clearing = clearMachine(machine8, [below, noPrice, atMin]);
    expect(outcomeOf(clearing, below)).toMatchObject({ runs: false, reason: "BELOW_MIN_BID" });
    expect(outcomeOf(clearing, noPrice)).toMatchObject({ runs: false, reason: "BELOW_MIN_BID" });
    expect(outcomeOf(clearing, atMin)).toMatchObject({ runs: true });
  });

  it("runs nothing on an unavailable machine", () => {
    const contracts = [onDemand(2), bid(2, "1.00")];
    const clearing = clearMachine({ ...machine8, available: false }, contracts);
    expect(clearing.outcomes.map((o) => o.runs === false && o.reason)).toEqual(["MACHINE_UNAVAILABLE", "MACHINE_UNAVAILABLE"]);
    expect(clearing.gpusAllocated).toBe(0);
    expect(winningBidFor({ ...machine8, available: false }, contracts, 1)).toBeNull();
  });

  it("reports contracts larger than the machine and ignores contracts that do not want to run", () => {
    const huge = bid(9, "5.00");
    const stopped = { ...onDemand(8), wantsToRun: false };
    const clearing = clearMachine(machine8, [huge, stopped]);
    expect(clearing.outcomes).toEqual([{ instanceId: huge.instanceId, runs: false, reason: "EXCEEDS_MACHINE" }]);
    expect(winningBidFor(machine8, [huge, stopped], 8)).toBe(usd("0.10"));
  });
});

// Small numbers make ties in price, time and GPU counts common.
const machineArb = fc.record({
  numGpus: fc.integer({ min: 1, max: 8 }),
  minBidMicros: fc.bigInt({ min: 0n, max: 10n }),
  available: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
});
const contractArb = (instanceId: number): fc.Arbitrary<Contract> =>
  fc.record({
    instanceId: fc.constant(instanceId),
    kind: fc.constantFrom("ON_DEMAND" as const, "INTERRUPTIBLE" as const),
    numGpus: fc.integer({ min: 1, max: 9 }),
    bid: fc.option(fc.bigInt({ min: 0n, max: 20n }), { freq: 10 }),
    bidPlacedAt: fc.integer({ min: 0, max: 6 }),
    wantsToRun: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  }).map(({ bid, ...c }) => ({ ...c, bidPerGpuMicros: c.kind === "ON_DEMAND" ? null : bid }));
const contractsArb = (firstId = 1) =>
  fc.integer({ min: 0, max: 12 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => contractArb(firstId + i))));
const bidsArb = (firstId: number) => contractsArb(firstId).map((cs) => cs.map((c) => ({ ...c, kind: "INTERRUPTIBLE" as const })));

const byId = (contracts: readonly Contract[]) => new Map(contracts.map((c) => [c.instanceId, c]));
/** Independent restatement of the bid ranking: does `a` rank above `b`? */
function ranksAbove(a: Contract, b: Contract): boolean {
  if (a.bidPerGpuMicros! !== b.bidPerGpuMicros!) return a.bidPerGpuMicros! > b.bidPerGpuMicros!;
  if (a.bidPlacedAt !== b.bidPlacedAt) return a.bidPlacedAt < b.bidPlacedAt;
  return a.instanceId < b.instanceId;
}
/** A new bid placed after every contract in `contracts`. */
function newBid(contracts: readonly Contract[], numGpus: number, price: bigint): Contract {
  const last = Math.max(0, ...contracts.map((c) => Math.max(c.instanceId, c.bidPlacedAt)));
  return { instanceId: last + 1, kind: "INTERRUPTIBLE", numGpus, bidPerGpuMicros: price, bidPlacedAt: last + 1, wantsToRun: true };
}
const runsIn = (clearing: Clearing, instanceId: number) => clearing.outcomes.some((o) => o.instanceId === instanceId && o.runs);

describe("clearMachine: properties", () => {
  it("gives one outcome per contract that wants to run and never allocates more GPUs than the machine has", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        const clearing = clearMachine(machine, contracts);
        const contract = byId(contracts);
        expect(clearing.outcomes.map((o) => o.instanceId).sort((a, b) => a - b)).toEqual(
          contracts.filter((c) => c.wantsToRun).map((c) => c.instanceId),
        );
        const runningContracts = running(clearing).map((id) => contract.get(id)!);
        const gpus = runningContracts.reduce((sum, c) => sum + c.numGpus, 0);
        expect(gpus).toBe(clearing.gpusAllocated);
        expect(gpus).toBeLessThanOrEqual(machine.numGpus);
        const onDemandGpus = runningContracts.filter((c) => c.kind === "ON_DEMAND").reduce((sum, c) => sum + c.numGpus, 0);
        expect(onDemandGpus).toBe(clearing.gpusOnDemand);
      }),
    );
  });

  it("never lets a bid displace an on-demand rental", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), bidsArb(100), (machine, contracts, extraBids) => {
        const before = clearMachine(machine, contracts);
        const after = clearMachine(machine, [...contracts, ...extraBids]);
        const onDemandRunning = (clearing: Clearing) =>
          running(clearing).filter((id) => contracts.some((c) => c.instanceId === id && c.kind === "ON_DEMAND"));
        expect(onDemandRunning(after)).toEqual(onDemandRunning(before));
      }),
    );
  });

  // "Paused for lack of GPUs": available machine, bid at or above the min bid, fits the machine, not
  // running (OUTBID or PREEMPTED_BY_ON_DEMAND). Pausing every lower-ranked running bid must not free
  // enough GPUs for it.
  it("never runs a lower bid while a higher one is paused for lack of GPUs", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        const clearing = clearMachine(machine, contracts);
        const contract = byId(contracts);
        const unallocated = machine.numGpus - clearing.gpusAllocated;
        for (const outcome of clearing.outcomes) {
          if (outcome.runs || (outcome.reason !== "OUTBID" && outcome.reason !== "PREEMPTED_BY_ON_DEMAND")) continue;
          const higher = contract.get(outcome.instanceId)!;
          const lowerRunningGpus = running(clearing)
            .map((id) => contract.get(id)!)
            .filter((c) => c.kind === "INTERRUPTIBLE" && ranksAbove(higher, c))
            .reduce((sum, c) => sum + c.numGpus, 0);
          expect(unallocated + lowerRunningGpus).toBeLessThan(higher.numGpus);
        }
      }),
    );
  });

  it("does not depend on the order of the contracts", () => {
    fc.assert(
      fc.property(
        machineArb,
        contractsArb().chain((cs) => fc.tuple(fc.constant(cs), fc.shuffledSubarray(cs, { minLength: cs.length }))),
        (machine, [contracts, shuffled]) => {
          expect(clearMachine(machine, shuffled)).toEqual(clearMachine(machine, contracts));
          expect(winningBidFor(machine, shuffled, 2)).toBe(winningBidFor(machine, contracts, 2));
        },
      ),
    );
  });

  it("runs nothing on an unavailable machine", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        const clearing = clearMachine({ ...machine, available: false }, contracts);
        expect(clearing.gpusAllocated).toBe(0);
        expect(clearing.outcomes.every((o) => !o.runs && o.reason === "MACHINE_UNAVAILABLE")).toBe(true);
      }),
    );
  });

  it("never runs a bid below the min bid", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        const contract = byId(contracts);
        for (const id of running(clearMachine(machine, contracts))) {
          const c = contract.get(id)!;
          if (c.kind === "INTERRUPTIBLE") expect(c.bidPerGpuMicros! >= machine.minBidMicros).toBe(true);
        }
      }),
    );
  });

  it("winningBidFor is the lowest price at which a new bid runs", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), fc.integer({ min: 1, max: 9 }), (machine, contracts, numGpus) => {
        const price = winningBidFor(machine, contracts, numGpus);
        if (price === null) {
          const cleared = clearMachine(machine, contracts);
          expect(!machine.available || numGpus > machine.numGpus - cleared.gpusOnDemand).toBe(true);
          const rich = newBid(contracts, numGpus, 1_000_000n);
          expect(runsIn(clearMachine(machine, [...contracts, rich]), rich.instanceId)).toBe(false);
          return;
        }
        expect(price >= machine.minBidMicros).toBe(true);
        const winner = newBid(contracts, numGpus, price);
        expect(runsIn(clearMachine(machine, [...contracts, winner]), winner.instanceId)).toBe(true);
        const loser = newBid(contracts, numGpus, price - 1n);
        expect(runsIn(clearMachine(machine, [...contracts, loser]), loser.instanceId)).toBe(false);
      }),
    );
  });

  it("an outbid contract's winningBidMicros runs it when bid again now, and one micro-dollar less does not", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        for (const outcome of clearMachine(machine, contracts).outcomes) {
          if (outcome.runs || outcome.reason !== "OUTBID") continue;
          const others = contracts.filter((c) => c.instanceId !== outcome.instanceId);
          const own = contracts.find((c) => c.instanceId === outcome.instanceId)!;
          expect(outcome.winningBidMicros > own.bidPerGpuMicros!).toBe(true);
          const rebid = { ...newBid(contracts, own.numGpus, outcome.winningBidMicros), instanceId: own.instanceId };
          expect(runsIn(clearMachine(machine, [...others, rebid]), own.instanceId)).toBe(true);
          const short = { ...rebid, bidPerGpuMicros: outcome.winningBidMicros - 1n };
          expect(runsIn(clearMachine(machine, [...others, short]), own.instanceId)).toBe(false);
        }
      }),
    );
  });
});

describe("bid positions and the order book: properties", () => {
  it("a bid stands WINNING exactly when it runs; an OUTBID bid's price to win is its outcome's and the offer's winningBid", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        const clearing = clearMachine(machine, contracts);
        const positions = bidPositions(machine, contracts, clearing);
        const bids = contracts.filter((c) => c.kind === "INTERRUPTIBLE" && c.wantsToRun);
        expect(positions.map((p) => p.instanceId).sort()).toEqual(bids.map((c) => c.instanceId).sort());
        const contract = byId(contracts);
        for (const position of positions) {
          const outcome = clearing.outcomes.find((o) => o.instanceId === position.instanceId)!;
          expect(position.standing === "WINNING").toBe(outcome.runs);
          expect(position.priceToWinMicros).toBe(winningBidFor(machine, contracts, contract.get(position.instanceId)!.numGpus));
          if (!outcome.runs && outcome.reason === "OUTBID") expect(position.priceToWinMicros).toBe(outcome.winningBidMicros);
          if (!machine.available) expect(position.standing).toBe("WAITING_FOR_MACHINE");
        }
      }),
    );
  });

  it("the book aggregates every live bid by price, counts the winners' GPUs, and clears at the lowest winning price", () => {
    fc.assert(
      fc.property(machineArb, contractsArb(), (machine, contracts) => {
        const book = orderBook(machine, contracts);
        const clearing = clearMachine(machine, contracts);
        const bids = contracts.filter((c) => c.kind === "INTERRUPTIBLE" && c.wantsToRun && c.bidPerGpuMicros !== null);
        const winners = bids.filter((c) => runsIn(clearing, c.instanceId));
        expect(book.levels.reduce((sum, l) => sum + l.bids, 0)).toBe(bids.length);
        expect(book.levels.reduce((sum, l) => sum + l.gpus, 0)).toBe(bids.reduce((sum, c) => sum + c.numGpus, 0));
        expect(book.levels.reduce((sum, l) => sum + l.winningGpus, 0)).toBe(winners.reduce((sum, c) => sum + c.numGpus, 0));
        const prices = book.levels.map((l) => l.priceMicros);
        expect(new Set(prices).size).toBe(prices.length);
        expect([...prices].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))).toEqual(prices);
        const lowestWinner = winners.reduce<bigint | null>((low, c) => (low === null || c.bidPerGpuMicros! < low ? c.bidPerGpuMicros : low), null);
        expect(book.clearingPriceMicros).toBe(lowestWinner);
        expect(book.onDemandGpus).toBe(onDemandClaim(machine.numGpus, contracts));
      }),
    );
  });
});
