import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { stopExhaustedAccounts } from "../domain/billing/exhaustion.ts";
import { postEntry } from "../domain/billing/ledger.ts";
import { METERING_PHASES, meterUpTo } from "../domain/billing/metering.ts";
import { prisma } from "../infra/db.ts";
import { eventChannel } from "../infra/pubsub.ts";
import { runMetering } from "../workers/metering.ts";
import { at, eventAt, expectedCharges, instanceAt, ledgerTotals, meteringClocks } from "./support/metering.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const LAG = 2; // METERING_LAG_SECONDS default
const S0 = Math.floor(Date.now() / 1000) - 600;
const listener = new Redis(process.env.REDIS_URL!);
afterAll(() => listener.disconnect());

/** Balance event messages as published: the account ids of each. */
const published: number[][] = [];
await listener.subscribe(eventChannel("balance"));
listener.on("message", (_channel, message: string) => published.push((JSON.parse(message) as [number, unknown][]).map(([id]) => id)));

async function balances(): Promise<Map<number, bigint>> {
  const users = await prisma.user.findMany({ select: { id: true, balanceMicros: true } });
  return new Map(users.map((user) => [user.id, user.balanceMicros]));
}

/** A client in each phase, each with a running instance on the host's machine since S0. */
async function clientPerPhase(hostId: number): Promise<number[]> {
  const byPhase = new Map<number, number>();
  while (byPhase.size < METERING_PHASES) {
    const { userId } = await createAccount("client", { credit: 0n });
    if (!byPhase.has(userId % METERING_PHASES)) byPhase.set(userId % METERING_PHASES, userId);
  }
  const machineId = await createListedMachine(hostId, { numGpus: 8 });
  for (const clientId of byPhase.values()) {
    await prisma.$transaction((tx) => postEntry(tx, { userId: clientId, kind: "ADJUSTMENT", amountMicros: 1_000_000_000n, description: "credit" }));
    const id = await instanceAt(clientId, machineId, S0, { numGpus: 2, diskGb: 40 });
    await eventAt(id, "ALLOCATED", S0);
    await eventAt(id, "AGENT_RUNNING", S0);
  }
  return [...byPhase.entries()].sort(([a], [b]) => a - b).map(([, clientId]) => clientId);
}

const waitForMessages = (count: number) => expect.poll(() => published.length, { timeout: 5_000 }).toBe(count);

describe("metering phases", () => {
  it("the job meters one phase per run, oldest clock first, and publishes balance events for that phase's clients and their hosts", async () => {
    const host = await createAccount("host", { credit: 0n });
    const clients = await clientPerPhase(host.userId);
    const now = at(S0 + 50 + LAG);

    for (let phase = 0; phase < METERING_PHASES; phase++) {
      const before = await balances();
      const tick = await runMetering(now);
      expect(tick).toMatchObject({ phase, from: S0, to: S0 + 50 });
      const after = await balances();
      const moved = [...after.keys()].filter((id) => after.get(id) !== before.get(id)).sort((a, b) => a - b);
      expect(moved).toEqual([clients[phase], host.userId].sort((a, b) => a - b));
      await waitForMessages(phase + 1);
      expect(published[phase].sort((a, b) => a - b)).toEqual(moved);
    }
    // Every phase is at S0 + 50: nothing more until a later second.
    expect(await runMetering(now)).toMatchObject({ from: null, to: null });
    expect(await runMetering(at(S0 + 51 + LAG))).toMatchObject({ phase: 0, from: S0 + 50, to: S0 + 51 });

    const clock = await meteringClocks();
    expect(clients.map(clock)).toEqual([S0 + 51, ...Array(METERING_PHASES - 1).fill(S0 + 50)]);
    const { charged, earned } = await expectedCharges(clock);
    expect(await ledgerTotals("CHARGE")).toEqual(charged);
    expect(await ledgerTotals("EARNING")).toEqual(earned);
    for (const clientId of clients) expect((await balances()).get(clientId)).toBe(1_000_000_000n - charged.get(clientId)!);
  });

  it("a database metered on one clock before phases: the other phases' clocks start where it was, charging nothing twice", async () => {
    await meterUpTo(at(S0 + 60 + LAG));
    await prisma.meteringClock.deleteMany({ where: { id: { gt: 1 } } });
    const tick = await runMetering(at(S0 + 61 + LAG));
    expect(tick).toMatchObject({ phase: 0, from: S0 + 60, to: S0 + 61 });
    expect((await prisma.meteringClock.findMany({ orderBy: { id: "asc" } })).map((clock) => clock.meteredUntil.getTime() / 1000)).toEqual([
      S0 + 61,
      ...Array(METERING_PHASES - 1).fill(S0 + 60),
    ]);
    await meterUpTo(at(S0 + 70 + LAG));
    const { charged, earned } = await expectedCharges(S0 + 70);
    expect(await ledgerTotals("CHARGE")).toEqual(charged);
    expect(await ledgerTotals("EARNING")).toEqual(earned);
  });

  it("stopping exhausted accounts after a phase's tick stops only the accounts it charged", async () => {
    const instances = await prisma.instance.findMany({ where: { status: "RUNNING" }, select: { id: true, clientId: true } });
    expect(instances.length).toBe(METERING_PHASES);
    await prisma.user.updateMany({ where: { id: { in: instances.map((instance) => instance.clientId) } }, data: { balanceMicros: -1n } });
    const victim = instances.find((instance) => instance.clientId % METERING_PHASES === 2)!;
    expect(await stopExhaustedAccounts(at(S0 + 70), (await meterUpTo(at(S0 + 71 + LAG), 2)).accounts)).toBe(1);
    const stopped = await prisma.instance.findMany({ where: { status: "STOPPED" }, select: { id: true } });
    expect(stopped).toEqual([{ id: victim.id }]);
    expect(await stopExhaustedAccounts(at(S0 + 70))).toBe(METERING_PHASES - 1);
  });
});
