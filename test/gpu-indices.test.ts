import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AuctionMachine, type Contract, clearMachine } from "../domain/auction/clearing.ts";
import { assignGpuIndices } from "../domain/auction/gpuIndices.ts";

describe("assignGpuIndices: examples", () => {
  it("keeps the indices a running winner holds and gives newcomers the lowest free ones", () => {
    const assigned = assignGpuIndices(8, [
      { instanceId: 3, numGpus: 2, held: [], previous: [] },
      { instanceId: 1, numGpus: 2, held: [4, 5], previous: [] },
      { instanceId: 2, numGpus: 3, held: [], previous: [] },
    ]);
    expect(Object.fromEntries(assigned)).toEqual({ 1: [4, 5], 2: [0, 1, 2], 3: [3, 6] });
  });

  it("gives a restarted winner the indices it last held when they are free, others when not", () => {
    const assigned = assignGpuIndices(4, [
      { instanceId: 1, numGpus: 1, held: [2], previous: [] },
      { instanceId: 2, numGpus: 2, held: [], previous: [0, 1] },
      { instanceId: 3, numGpus: 1, held: [], previous: [2] },
    ]);
    expect(Object.fromEntries(assigned)).toEqual({ 1: [2], 2: [0, 1], 3: [3] });
  });

  it("ignores held sets that are invalid: out of range, the wrong size, duplicated, or taken", () => {
    const assigned = assignGpuIndices(6, [
      { instanceId: 1, numGpus: 1, held: [7], previous: [] },
      { instanceId: 2, numGpus: 2, held: [1], previous: [] },
      { instanceId: 3, numGpus: 2, held: [3, 3], previous: [] },
      { instanceId: 0, numGpus: 1, held: [], previous: [] },
    ]);
    expect(Object.fromEntries(assigned)).toEqual({ 0: [0], 1: [1], 2: [2, 3], 3: [4, 5] });
  });

  it("refuses winners that need more GPUs than the machine has", () => {
    expect(() => assignGpuIndices(2, [{ instanceId: 1, numGpus: 3, held: [], previous: [] }])).toThrow(/needs 3 GPUs/);
  });
});

/*
 * A machine under random event sequences, as the clearing service drives it: after every event the
 * auction clears and the winners get their indices; a winner holds them (LOADING/RUNNING), others
 * keep their last ones as a preference.
 */
interface SimInstance {
  id: number;
  kind: Contract["kind"];
  numGpus: number;
  bid: bigint | null;
  placedAt: number;
  state: "live" | "stopped" | "ended";
  holding: boolean;
  indices: number[];
}

const MIN_BID = 100n;

type Event =
  | { type: "onDemand"; numGpus: number }
  | { type: "bid"; numGpus: number; price: number }
  | { type: "changeBid"; pick: number; price: number }
  | { type: "stop" | "start" | "expire" | "destroy"; pick: number }
  | { type: "offline" | "online" };

const eventArb = (machineGpus: number): fc.Arbitrary<Event> =>
  fc.oneof(
    fc.record({ type: fc.constant("onDemand" as const), numGpus: fc.integer({ min: 1, max: machineGpus }) }),
    fc.record({ type: fc.constant("bid" as const), numGpus: fc.integer({ min: 1, max: machineGpus }), price: fc.integer({ min: 50, max: 500 }) }),
    fc.record({ type: fc.constant("changeBid" as const), pick: fc.nat(), price: fc.integer({ min: 50, max: 500 }) }),
    fc.record({ type: fc.constantFrom("stop" as const, "start" as const, "expire" as const, "destroy" as const), pick: fc.nat() }),
    fc.record({ type: fc.constantFrom("offline" as const, "online" as const) }),
  );

function simulate(machineGpus: number, events: Event[], check: (instances: SimInstance[], before: Map<number, number[]>) => void): void {
  const instances: SimInstance[] = [];
  let online = true;
  let clock = 0;
  const pick = (n: number) => (instances.length ? instances[n % instances.length] : undefined);
  for (const event of events) {
    clock++;
    switch (event.type) {
      case "onDemand": {
        // Admission as createInstance does it: only when on-demand contracts leave the GPUs.
        const claimed = instances.filter((i) => i.kind === "ON_DEMAND" && i.state === "live").reduce((sum, i) => sum + i.numGpus, 0);
        if (online && event.numGpus <= machineGpus - claimed) instances.push(newInstance(instances.length + 1, "ON_DEMAND", event.numGpus, null, clock));
        break;
      }
      case "bid":
        instances.push(newInstance(instances.length + 1, "INTERRUPTIBLE", event.numGpus, BigInt(event.price), clock));
        break;
      case "changeBid": {
        const target = pick(event.pick);
        if (target?.kind === "INTERRUPTIBLE" && target.state !== "ended") Object.assign(target, { bid: BigInt(event.price), placedAt: clock });
        break;
      }
      case "stop": {
        const target = pick(event.pick);
        if (target?.state === "live") Object.assign(target, { state: "stopped", holding: false });
        break;
      }
      case "start": {
        const target = pick(event.pick);
        if (target?.state === "stopped") Object.assign(target, { state: "live", placedAt: target.kind === "ON_DEMAND" ? clock : target.placedAt });
        break;
      }
      case "expire":
      case "destroy": {
        const target = pick(event.pick);
        if (target && target.state !== "ended") Object.assign(target, { state: "ended", holding: false });
        break;
      }
      case "offline":
        online = false;
        break;
      case "online":
        online = true;
        break;
    }
    const before = new Map(instances.filter((i) => i.holding).map((i) => [i.id, i.indices]));
    clear(machineGpus, online, instances);
    check(instances, before);
  }
}

function newInstance(id: number, kind: Contract["kind"], numGpus: number, bid: bigint | null, placedAt: number): SimInstance {
  return { id, kind, numGpus, bid, placedAt, state: "live", holding: false, indices: [] };
}

function clear(machineGpus: number, online: boolean, instances: SimInstance[]): void {
  const machine: AuctionMachine = { numGpus: machineGpus, minBidMicros: MIN_BID, available: online };
  const live = instances.filter((i) => i.state === "live");
  const contracts: Contract[] = live.map((i) => ({
    instanceId: i.id,
    kind: i.kind,
    numGpus: i.numGpus,
    bidPerGpuMicros: i.kind === "INTERRUPTIBLE" ? i.bid : null,
    bidPlacedAt: i.placedAt,
    wantsToRun: true,
  }));
  const winners = new Set(clearMachine(machine, contracts).outcomes.filter((o) => o.runs).map((o) => o.instanceId));
  const assigned = assignGpuIndices(
    machineGpus,
    live
      .filter((i) => winners.has(i.id))
      .map((i) => ({ instanceId: i.id, numGpus: i.numGpus, held: i.holding ? i.indices : [], previous: i.holding ? [] : i.indices })),
  );
  for (const i of live) {
    i.holding = winners.has(i.id);
    if (i.holding) i.indices = assigned.get(i.id)!;
  }
}

describe("GPU indices under random event sequences (property)", () => {
  it("holders never share an index, each holds exactly its GPUs, and a holder that keeps running keeps its indices", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }).chain((gpus) => fc.tuple(fc.constant(gpus), fc.array(eventArb(gpus), { minLength: 1, maxLength: 60 }))),
        ([machineGpus, events]) => {
          simulate(machineGpus, events, (instances, before) => {
            const holders = instances.filter((i) => i.holding);
            const all = holders.flatMap((i) => i.indices);
            expect(new Set(all).size).toBe(all.length);
            for (const holder of holders) {
              expect(holder.indices).toHaveLength(holder.numGpus);
              expect(holder.indices.every((index) => Number.isInteger(index) && index >= 0 && index < machineGpus)).toBe(true);
              const held = before.get(holder.id);
              if (held) expect(holder.indices).toEqual(held);
            }
            expect(holders.every((i) => i.state === "live")).toBe(true);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a restarted instance gets the indices it last held when nobody took them meanwhile", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 8 }), (machineGpus, size) => {
        const numGpus = Math.min(size, machineGpus - 1);
        const events: Event[] = [
          { type: "onDemand", numGpus: 1 },
          { type: "onDemand", numGpus },
          { type: "stop", pick: 1 },
          { type: "start", pick: 1 },
        ];
        const seen: number[][] = [];
        simulate(machineGpus, events, (instances) => seen.push(instances[1]?.indices ?? []));
        expect(seen[3]).toEqual(seen[1]);
        expect(seen[3]).toHaveLength(numGpus);
      }),
    );
  });
});
