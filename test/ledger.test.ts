import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ledgerMismatches, postEntry } from "../domain/billing/ledger.ts";
import { meterUpTo } from "../domain/billing/metering.ts";
import { PERIOD_SECONDS, bandwidthAmount, periodStart } from "../domain/billing/rates.ts";
import { recordUsage } from "../domain/billing/usage.ts";
import { type InstanceEvent, TRANSITIONS } from "../domain/instances/lifecycle.ts";
import { prisma } from "../infra/db.ts";
import { at, eventAt, expectedCharges, instanceAt, ledgerTotals, openAccrualMismatches } from "./support/metering.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const LAG = 2;
const DOWN_PRICE = 2_000n; // instanceAt's contract: $/GB received
const UP_PRICE = 5_000n;

type Step =
  | { type: "event"; instance: number; choice: number; gap: number }
  | { type: "tick"; gap: number }
  | { type: "usage"; instance: number; rx: number; tx: number; gap: number }
  | { type: "credit"; account: number; amount: number };

// Usage grows by at most 4 GB a report: what the test machines' links carry within the usage
// bound's slack alone (domain/billing/usage.ts), whatever the gap.
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.constant("event" as const), instance: fc.nat(3), choice: fc.nat(20), gap: fc.double({ min: 0, max: 5000, noNaN: true }) }) },
  { weight: 4, arbitrary: fc.record({ type: fc.constant("tick" as const), gap: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 100_000 })) }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("usage" as const), instance: fc.nat(3), rx: fc.integer({ min: -1e9, max: 4e9 }), tx: fc.integer({ min: -1e9, max: 4e9 }), gap: fc.integer({ min: 0, max: 20_000 }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("credit" as const), account: fc.nat(3), amount: fc.integer({ min: -5_000_000, max: 50_000_000 }) }) },
);

async function reset(): Promise<void> {
  await prisma.$executeRawUnsafe(
    `TRUNCATE instance, instance_status_change, time_accrual, bandwidth_accrual, bandwidth_counter, ledger_entry, metering_clock, machine, offer, api_key CASCADE`,
  );
  await prisma.user.updateMany({ data: { balanceMicros: 0n } });
}

describe("ledger invariant over randomized scenarios", () => {
  it("keeps every balance equal to the sum of its entries after every step, and charges exactly", async () => {
    const accounts = [await createAccount("c1", { credit: 0n }), await createAccount("c2", { credit: 0n }), await createAccount("h1", { credit: 0n }), await createAccount("h2", { credit: 0n })].map((a) => a.userId);
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 40 }), fc.integer({ min: 0, max: 86_399 }), async (steps, offset) => {
        await reset();
        const machines = [await createListedMachine(accounts[2]), await createListedMachine(accounts[3])];
        let now = periodStart(Math.floor(Date.now() / 1000)) - 10 * PERIOD_SECONDS + offset;
        let metered = now;
        const instances: number[] = [];
        for (let i = 0; i < 4; i++) {
          instances.push(await instanceAt(accounts[i % 2], machines[i % 2], now, { numGpus: 1 + i, diskGb: 10 + i * 100, bid: i === 3 ? 150_000n : undefined }));
        }
        const counters = new Map<number, { rx: bigint; tx: bigint }>();
        const bytes = new Map<string, { client: number; price: bigint; bytes: bigint }>();
        for (const step of steps) {
          if (step.type === "event") {
            now += step.gap;
            const id = instances[step.instance];
            const { status } = await prisma.instance.findUniqueOrThrow({ where: { id }, select: { status: true } });
            const allowed = Object.keys(TRANSITIONS[status]) as InstanceEvent[];
            if (allowed.length) await eventAt(id, allowed[step.choice % allowed.length], now);
          } else if (step.type === "tick") {
            now += step.gap;
            metered = Math.floor(now);
            await meterUpTo(at(metered + LAG));
          } else if (step.type === "usage") {
            now += step.gap;
            const id = instances[step.instance];
            const last = counters.get(id) ?? { rx: 0n, tx: 0n };
            // Negative draws are stale reports (below the last counter): they must count nothing.
            const rx = last.rx + BigInt(step.rx);
            const tx = last.tx + BigInt(step.tx);
            await recordUsage(prisma, id, rx < 0n ? 0n : rx, tx < 0n ? 0n : tx, at(now));
            const period = periodStart(Math.floor(now));
            const client = accounts[step.instance % 2];
            for (const [kind, price, grown] of [["down", DOWN_PRICE, rx - last.rx], ["up", UP_PRICE, tx - last.tx]] as const) {
              if (grown <= 0n) continue;
              const key = `${id}-${kind}-${period}`;
              const row = bytes.get(key) ?? { client, price, bytes: 0n };
              bytes.set(key, { ...row, bytes: row.bytes + grown });
            }
            counters.set(id, { rx: rx > last.rx ? rx : last.rx, tx: tx > last.tx ? tx : last.tx });
          } else {
            await prisma.$transaction((tx) =>
              postEntry(tx, { userId: accounts[step.account], kind: "ADJUSTMENT", amountMicros: BigInt(step.amount), description: "test" }),
            );
          }
          expect(await ledgerMismatches(prisma)).toEqual([]);
          expect(await openAccrualMismatches()).toBe(0);
        }
        metered = Math.floor(now) + 1;
        await meterUpTo(at(metered + LAG));
        expect(await ledgerMismatches(prisma)).toEqual([]);

        const { charged, earned } = await expectedCharges(metered);
        for (const { client, price, bytes: b } of bytes.values()) charged.set(client, (charged.get(client) ?? 0n) + bandwidthAmount(price, b));
        const nonzero = (map: Map<number, bigint>) => new Map([...map].filter(([, v]) => v !== 0n));
        expect(nonzero(await ledgerTotals("CHARGE"))).toEqual(nonzero(charged));
        // Hosts earn the time charges in full (fee 0) and the bandwidth charges of their machines.
        const totalEarned = [...(await ledgerTotals("EARNING")).values()].reduce((a, b) => a + b, 0n);
        const totalCharged = [...charged.values()].reduce((a, b) => a + b, 0n);
        expect(totalEarned).toBe(totalCharged);
        expect([...earned.values()].reduce((a, b) => a + b, 0n)).toBeLessThanOrEqual(totalEarned);
      }),
      { numRuns: 40 },
    );
  }, 600_000);
});
