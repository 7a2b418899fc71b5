import { applyEvent } from "../../domain/instances/status.ts";
import type { InstanceEvent } from "../../domain/instances/lifecycle.ts";
import { METERING_PHASES } from "../../domain/billing/metering.ts";
import { PERIOD_SECONDS, hostShare, timeAmount, type TimeCategory } from "../../domain/billing/rates.ts";
import { prisma } from "../../infra/db.ts";

/** Fixtures and the reference charge computation shared by the metering tests and benchmark. */

export const at = (sec: number) => new Date(sec * 1000);

/** An instance as createInstance leaves it, created at `sec` (epoch seconds). */
export async function instanceAt(
  clientId: number,
  machineId: number,
  sec: number,
  options: { numGpus?: number; diskGb?: number; bid?: bigint; price?: bigint; storagePrice?: bigint } = {},
): Promise<number> {
  const instance = await prisma.instance.create({
    data: {
      clientId,
      machineId,
      kind: options.bid ? "INTERRUPTIBLE" : "ON_DEMAND",
      numGpus: options.numGpus ?? 1,
      pricePerGpuHourMicros: options.price ?? 400_000n,
      storagePricePerGbMonthMicros: options.storagePrice ?? 100_000n,
      inetUpPricePerGbMicros: 5_000n,
      inetDownPricePerGbMicros: 2_000n,
      endDate: at(sec + 365 * PERIOD_SECONDS),
      bidPerGpuHourMicros: options.bid ?? null,
      bidPlacedAt: at(sec),
      image: "ubuntu:22.04",
      diskGb: options.diskGb ?? 20,
      launchMode: "SSH",
      onstart: "",
      env: [],
      ports: [],
      status: "SCHEDULING",
      intendedStatus: "RUNNING",
      statusChangedAt: at(sec),
      createdAt: at(sec),
      statusChanges: { create: { toStatus: "SCHEDULING", event: "CREATED", at: at(sec) } },
    },
  });
  return instance.id;
}

/** Applies a lifecycle event at `sec` through the lifecycle table. */
export async function eventAt(instanceId: number, event: InstanceEvent, sec: number): Promise<void> {
  // In one transaction, as the services do: the status and its history row commit together.
  await prisma.$transaction(async (tx) => {
    const instance = await tx.instance.findUniqueOrThrow({ where: { id: instanceId }, select: { id: true, status: true } });
    await applyEvent(tx, instance, event, {}, at(sec));
  });
}

/** Each client's metering clock (epoch seconds), from its phase's clock row. */
export async function meteringClocks(): Promise<(clientId: number) => number> {
  const clocks = await prisma.meteringClock.findMany();
  const byPhase = new Map(clocks.map((clock) => [clock.id - 1, clock.meteredUntil.getTime() / 1000]));
  return (clientId) => byPhase.get(clientId % METERING_PHASES)!;
}

/**
 * What metering must have charged each client and paid each host up to `until` (epoch seconds, or
 * each client's own, as from meteringClocks()),
 * computed independently from the status history: for each instance, maximal stretches of one
 * rate (RUNNING for GPU, any status but DESTROYED for storage) cut at billing-period boundaries,
 * each charged floor(rate × seconds / unit). Machines are assumed online and bids unchanged.
 */
export async function expectedCharges(until: number | ((clientId: number) => number), feeBps = 0): Promise<{ charged: Map<number, bigint>; earned: Map<number, bigint> }> {
  const instances = [];
  // In pages: the relations' IN lists must stay under the database's parameter limit.
  for (let cursor = 0; ; ) {
    const page = await prisma.instance.findMany({
      where: { id: { gt: cursor } },
      orderBy: { id: "asc" },
      take: 10_000,
      include: { statusChanges: { orderBy: [{ at: "asc" }, { id: "asc" }] }, machine: { select: { hostId: true } } },
    });
    if (!page.length) break;
    instances.push(...page);
    cursor = page[page.length - 1].id;
  }
  const charged = new Map<number, bigint>();
  const earned = new Map<number, bigint>();
  const add = (map: Map<number, bigint>, id: number, amount: bigint) => map.set(id, (map.get(id) ?? 0n) + amount);
  for (const instance of instances) {
    const upTo = typeof until === "number" ? until : until(instance.clientId);
    const changes = instance.statusChanges.map((c) => ({ sec: Math.floor(c.at.getTime() / 1000), status: c.toStatus }));
    for (const category of ["GPU", "STORAGE"] as TimeCategory[]) {
      const charging = (status: string) => (category === "GPU" ? status === "RUNNING" : status !== "DESTROYED");
      const price = category === "GPU" ? (instance.bidPerGpuHourMicros ?? instance.pricePerGpuHourMicros) : instance.storagePricePerGbMonthMicros;
      const units = category === "GPU" ? instance.numGpus : instance.diskGb;
      // Seconds at which charging is on, as [start, end) stretches.
      const stretches: [number, number][] = [];
      changes.forEach((change, i) => {
        const end = Math.min(i + 1 < changes.length ? changes[i + 1].sec : upTo, upTo);
        if (!charging(change.status) || change.sec >= end) return;
        const last = stretches.at(-1);
        if (last && last[1] === change.sec) last[1] = end;
        else stretches.push([change.sec, end]);
      });
      for (const [start, end] of stretches) {
        for (let s = start; s < end; ) {
          const e = Math.min(end, (Math.floor(s / PERIOD_SECONDS) + 1) * PERIOD_SECONDS);
          const amount = timeAmount(category, price, units, BigInt(e - s));
          add(charged, instance.clientId, amount);
          add(earned, instance.machine.hostId, hostShare(amount, feeBps));
          s = e;
        }
      }
    }
  }
  return { charged, earned };
}

/** Sum of each account's ledger entries of one kind. */
export async function ledgerTotals(kind: "CHARGE" | "EARNING"): Promise<Map<number, bigint>> {
  const rows = await prisma.ledgerEntry.groupBy({ by: ["userId"], where: { kind }, _sum: { amountMicros: true } });
  return new Map(rows.map((row) => [row.userId, kind === "CHARGE" ? -(row._sum.amountMicros ?? 0n) : (row._sum.amountMicros ?? 0n)]));
}

/** Open accrual rows and the narrow copies the ticks charge them from (open_time_accrual) that disagree: always 0. */
export async function openAccrualMismatches(): Promise<number> {
  const [row] = await prisma.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n
       FROM (SELECT * FROM time_accrual WHERE ended_at IS NULL) a FULL JOIN open_time_accrual o ON o.accrual_id = a.id
      WHERE a.id IS NULL OR o.accrual_id IS NULL OR o.client_id <> a.client_id OR o.host_id <> a.host_id
         OR o.category <> a.category OR o.rate_micros <> a.unit_price_micros * a.units
         OR o.started_sec <> extract(epoch FROM a.started_at) OR o.phase <> a.client_id % ${METERING_PHASES}`,
  );
  return row.n;
}
