import { describe, expect, it } from "vitest";
import { authenticateApiKey } from "../domain/apiKeys.ts";
import {
  DEMO_CLIENT_EMAIL,
  DEMO_CREDIT_MICROS,
  DEMO_HOST_EMAIL,
  demoMachines,
  issueDemoKeys,
  loadDemoData,
} from "../domain/demo.ts";
import { prisma } from "../infra/db.ts";

import { DAY_MS } from "../domain/time.ts";

describe("demo data", () => {
  it("loads into an empty database once", async () => {
    expect(await loadDemoData()).toBe(true);
    const counts = async () => ({
      users: await prisma.user.count(),
      machines: await prisma.machine.count(),
      offers: await prisma.offer.count(),
      ledger: await prisma.ledgerEntry.count(),
    });
    const first = await counts();
    expect(await loadDemoData()).toBe(false);
    expect(await counts()).toEqual(first);
  });

  it("is a realistic fleet of one host", async () => {
    const host = await prisma.user.findUniqueOrThrow({ where: { email: DEMO_HOST_EMAIL } });
    const machines = await prisma.machine.findMany({ include: { offers: true } });
    expect(machines.length).toBeGreaterThanOrEqual(45);
    expect(machines.every((m) => m.hostId === host.id && m.listed)).toBe(true);
    expect(new Set(machines.map((m) => m.countryCode)).size).toBeGreaterThanOrEqual(5);
    expect(new Set(machines.map((m) => m.gpuName)).size).toBeGreaterThanOrEqual(8);
    expect(machines.filter((m) => m.verification === "VERIFIED").length).toBeGreaterThan(machines.length / 2);
    expect(machines.some((m) => m.datacenter)).toBe(true);
    expect(new Set(machines.map((m) => m.reliability)).size).toBeGreaterThan(20);
    const now = Date.now();
    for (const m of machines) {
      expect(m.reliability).toBeGreaterThanOrEqual(0.9);
      expect(m.reliability).toBeLessThan(1);
      expect(m.minBidPerGpuHourMicros!).toBeLessThan(m.pricePerGpuHourMicros!);
      expect(m.endDate!.getTime()).toBeGreaterThan(now + 25 * DAY_MS);
      expect(m.endDate!.getTime()).toBeLessThan(now + 185 * DAY_MS);
      expect(m.offers.length).toBeGreaterThanOrEqual(1);
    }
    // Prices in line with the market: an H100 costs several times an RTX 4090.
    const price = (gpu: string) => machines.filter((m) => m.gpuName === gpu).map((m) => Number(m.pricePerGpuHourMicros) / 1e6);
    expect(Math.min(...price("RTX 4090"))).toBeGreaterThanOrEqual(0.35);
    expect(Math.max(...price("RTX 4090"))).toBeLessThanOrEqual(0.6);
    expect(Math.min(...price("H100 SXM"))).toBeGreaterThanOrEqual(1.8);
    const rentableVerified = await prisma.offer.count({ where: { verified: true, rentable: true } });
    expect(rentableVerified).toBeGreaterThan(40);
  });

  it("gives the client credit that equals the sum of its ledger", async () => {
    const client = await prisma.user.findUniqueOrThrow({ where: { email: DEMO_CLIENT_EMAIL } });
    const ledger = await prisma.ledgerEntry.aggregate({ where: { userId: client.id }, _sum: { amountMicros: true } });
    expect(client.balanceMicros).toBe(DEMO_CREDIT_MICROS);
    expect(ledger._sum.amountMicros).toBe(client.balanceMicros);
  });

  it("is the same fleet on every run", () => {
    expect(demoMachines()).toEqual(demoMachines());
  });

  it("prints fresh keys on each start and revokes the previous ones", async () => {
    const first = await issueDemoKeys();
    expect(first.map((k) => k.email)).toEqual([DEMO_HOST_EMAIL, DEMO_CLIENT_EMAIL]);
    for (const key of first) expect((await authenticateApiKey(prisma, key.token))?.scope).toBe("ACCOUNT");
    const second = await issueDemoKeys();
    for (const key of first) expect(await authenticateApiKey(prisma, key.token)).toBeNull();
    const client = await prisma.user.findUniqueOrThrow({ where: { email: DEMO_CLIENT_EMAIL } });
    expect((await authenticateApiKey(prisma, second[1].token))?.userId).toBe(client.id);
    // The machines' agent keys are not the demo's to revoke.
    expect(await prisma.apiKey.count({ where: { scope: "MACHINE", revokedAt: null } })).toBe(await prisma.machine.count());
  });
});
