import { describe, expect, it } from "vitest";
import { meterUpTo } from "../domain/billing/metering.ts";
import { PERIOD_SECONDS } from "../domain/billing/rates.ts";
import { prisma } from "../infra/db.ts";
import { at, eventAt, expectedCharges, instanceAt, ledgerTotals, openAccrualMismatches } from "./support/metering.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const LAG = 2; // METERING_LAG_SECONDS default
const meter = (sec: number) => meterUpTo(at(sec + LAG));

// Three days ago, 23:00 UTC: scenarios cross a billing period.
const T0 = Math.floor(Date.now() / 1000 / PERIOD_SECONDS) * PERIOD_SECONDS - 3 * PERIOD_SECONDS + 23 * 3600;

describe("metering", () => {
  it("charges GPU time while RUNNING and storage while the instance exists, exactly, across ticks and periods", async () => {
    const host = await createAccount("host", { credit: 0n });
    const client = await createAccount("client", { credit: 0n });
    const machineId = await createListedMachine(host.userId);
    const id = await instanceAt(client.userId, machineId, T0, { numGpus: 2, diskGb: 50 });
    await eventAt(id, "ALLOCATED", T0 + 10);
    await eventAt(id, "AGENT_RUNNING", T0 + 30);

    // Ticks every second for a while, then a long pause over midnight.
    for (let s = T0 + 1; s <= T0 + 40; s++) await meter(s);
    await meter(T0 + 3630);
    await eventAt(id, "STOP_REQUESTED", T0 + 3630 + 0.4);
    await meter(T0 + 7200);

    // GPU: 3600 s at $0.40 × 2 = $0.80, cut at midnight (T0 + 3600) into 3570 s and 30 s.
    const gpu = (800_000n * 3570n) / 3600n + (800_000n * 30n) / 3600n;
    // Storage: 50 GB at $0.10/GB-month = 5,000,000 µ$ per 2,592,000 s; 3600 s before midnight, 3600 after.
    const storage = 2n * ((5_000_000n * 3600n) / 2_592_000n);
    const user = await prisma.user.findUniqueOrThrow({ where: { id: client.userId } });
    expect(user.balanceMicros).toBe(-(gpu + storage));
    const hostUser = await prisma.user.findUniqueOrThrow({ where: { id: host.userId } });
    expect(hostUser.balanceMicros).toBe(gpu + storage);
    const { charged } = await expectedCharges(T0 + 7200);
    expect(charged.get(client.userId)).toBe(gpu + storage);

    // Ledger: one CHARGE entry per category and day, and the balance equals their sum.
    const entries = await prisma.ledgerEntry.findMany({ where: { userId: client.userId }, orderBy: [{ periodStart: "asc" }, { category: "asc" }] });
    expect(entries.map((e) => [e.kind, e.category, e.periodStart!.getTime() / 1000 - T0])).toEqual([
      ["CHARGE", "GPU", -23 * 3600],
      ["CHARGE", "STORAGE", -23 * 3600],
      ["CHARGE", "GPU", 3600],
      ["CHARGE", "STORAGE", 3600],
    ]);
    expect(entries.reduce((sum, e) => sum + e.amountMicros, 0n)).toBe(user.balanceMicros);

    // Accrual rows: one per stretch and period, not per tick.
    const rows = await prisma.timeAccrual.findMany({ where: { instanceId: id }, orderBy: [{ category: "asc" }, { startedAt: "asc" }] });
    expect(rows.map((r) => [r.category, r.startedAt.getTime() / 1000 - T0, r.endedAt && r.endedAt.getTime() / 1000 - T0])).toEqual([
      ["GPU", 30, 3600],
      ["GPU", 3600, 3630],
      ["STORAGE", 0, 3600],
      ["STORAGE", 3600, null],
    ]);
    expect(await openAccrualMismatches()).toBe(0);
    expect(await ledgerTotals("CHARGE")).toEqual(new Map([[client.userId, gpu + storage]]));
  });

  it("charges nothing twice when ticks repeat or run concurrently", async () => {
    // Its own instance, running from T1 (after the scenario above, so the file's ticks move forward).
    const T1 = T0 + 3 * 3600;
    const host = await createAccount("host", { credit: 0n });
    const client = await createAccount("client", { credit: 0n });
    const id = await instanceAt(client.userId, await createListedMachine(host.userId), T1, { numGpus: 1, diskGb: 10 });
    await eventAt(id, "ALLOCATED", T1);
    await eventAt(id, "AGENT_RUNNING", T1);
    await meter(T1 + 100);
    const balance = async () => (await prisma.user.findUniqueOrThrow({ where: { id: client.userId } })).balanceMicros;
    const charged = -(await balance());
    expect(charged).toBeGreaterThan(0n);

    const before = await prisma.user.findMany({ select: { id: true, balanceMicros: true }, orderBy: { id: "asc" } });
    await Promise.all([meter(T1 + 100), meter(T1 + 100), meter(T1 + 50)]);
    expect(await prisma.user.findMany({ select: { id: true, balanceMicros: true }, orderBy: { id: "asc" } })).toEqual(before);
    expect(charged).toBe((await expectedCharges(T1 + 100)).charged.get(client.userId));
    // And the next tick charges exactly what the next 100 s cost.
    await meter(T1 + 200);
    expect(-(await balance())).toBe((await expectedCharges(T1 + 200)).charged.get(client.userId));
  });
});
