import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { METERING_HOLD_MESSAGE } from "../domain/billing/exhaustion.ts";
import { ledgerMismatches } from "../domain/billing/ledger.ts";
import { MAX_MONEY_MICROS, METERING_PHASES } from "../domain/billing/metering.ts";
import { runPayouts } from "../domain/payouts.ts";
import { config } from "../infra/config.ts";
import { runMetering } from "../workers/metering.ts";
import { eventAt } from "./support/metering.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";

/** Money that no host, client or webhook input may create, destroy or stall, end to end through the API. */
const app = useTestApp();

let host: { userId: number; key: string };
let machineId: number;
let agentKey: string;
beforeAll(async () => {
  host = await createAccount("host", { credit: 0n });
  // Bandwidth at the highest price a listing may ask: $1/GB.
  machineId = await createListedMachine(host.userId, { listing: { inetDownPricePerGb: 1_000_000n, inetUpPricePerGb: 1_000_000n } });
  agentKey = (await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId })).token;
});

const USAGE = `mutation ($id: ID!, $rx: String!, $tx: String!) { reportUsage(instanceId: $id, rxBytes: $rx, txBytes: $tx) {
  __typename ... on MutationReportUsageSuccess { data { rxBytes txBytes charged } } ... on ValidationError { issues { path message } } } }`;
const balances = async () => Object.fromEntries((await prisma.user.findMany({ select: { id: true, balanceMicros: true } })).map((u) => [u.id, u.balanceMicros]));

async function rent(key: string): Promise<string> {
  const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, key)).data.createInstance);
  return created.instance.id;
}

const START = `mutation ($id: ID!) { startInstance(id: $id) { __typename ... on Error { code } ... on InsufficientBalanceError { balance } } }`;
const STOP = `mutation ($id: ID!) { stopInstance(id: $id) { __typename } }`;

describe("renting and starting need credit", () => {
  it("an account at $0 or below cannot create or start an instance; debit mode can", async () => {
    const broke = await createAccount("broke", { credit: 0n });
    const before = await databaseSnapshot();
    const refused = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, broke.key)).data.createInstance);
    expect(refused).toMatchObject({ __typename: "InsufficientBalanceError", code: "INSUFFICIENT_BALANCE" });
    expect(await databaseSnapshot()).toBe(before);

    const debtor = await createAccount("debtor", { credit: 0n });
    await prisma.user.update({ where: { id: debtor.userId }, data: { debitMode: true } });
    const allowed = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, debtor.key)).data.createInstance);
    expect(allowed.__typename).toBe("CreateInstancePayload");

    const funded = await createAccount("funded", { credit: 5_000_000n });
    const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, funded.key)).data.createInstance);
    const id = created.instance.id;
    expect((await app.gql(STOP, { id }, funded.key)).data.stopInstance.__typename).toBe("MutationStopInstanceSuccess");
    // Its credit is used up meanwhile.
    await prisma.user.update({ where: { id: funded.userId }, data: { balanceMicros: 0n } });
    const stopped = await databaseSnapshot();
    const start = unwrap((await app.gql(START, { id }, funded.key)).data.startInstance);
    expect(start).toEqual({ __typename: "InsufficientBalanceError", code: "INSUFFICIENT_BALANCE", balance: "0.00" });
    expect(await databaseSnapshot()).toBe(stopped);
    await prisma.user.update({ where: { id: funded.userId }, data: { balanceMicros: 1n } });
    expect((await app.gql(START, { id }, funded.key)).data.startInstance.__typename).toBe("MutationStartInstanceSuccess");
  });
});


describe("usage reports", () => {
  it("cannot grow faster than the machine's link: a counter of 2^63-1 bytes is refused and moves no money", async () => {
    const client = await createAccount("usage-client", { credit: 10_000_000n });
    const id = await rent(client.key);
    const before = await balances();
    for (const rx of ["9223372036854775807", "99999999999999999999", "100000000000"]) {
      const refused = (await app.gql(USAGE, { id, rx, tx: "0" }, agentKey)).data.reportUsage;
      expect(refused.__typename, rx).toBe("ValidationError");
      expect(refused.issues[0].path).toEqual(["rxBytes"]);
    }
    const upload = (await app.gql(USAGE, { id, rx: "0", tx: "9223372036854775807" }, agentKey)).data.reportUsage;
    expect(upload.issues.map((issue: { path: string[] }) => issue.path)).toEqual([["txBytes"]]);
    expect(await balances()).toEqual(before);
    expect(await prisma.bandwidthAccrual.count()).toBe(0);

    // What the 950 Mbps link carries since the instance started is charged: 1 GB at $1/GB.
    const ok = (await app.gql(USAGE, { id, rx: "1000000000", tx: "0" }, agentKey)).data.reportUsage;
    expect(ok.data).toEqual({ rxBytes: "1000000000", txBytes: "0", charged: "1.00" });
    // As time passes the link carries more: an hour later, 400 GB more is possible (not 600 GB).
    await prisma.bandwidthCounter.update({ where: { instanceId: Number(id.split(":")[1]) }, data: { updatedAt: new Date(Date.now() - 3_600_000) } });
    expect((await app.gql(USAGE, { id, rx: "601000000000", tx: "0" }, agentKey)).data.reportUsage.__typename).toBe("ValidationError");
    expect((await app.gql(USAGE, { id, rx: "401000000000", tx: "0" }, agentKey)).data.reportUsage.data.charged).toBe("400.00");
  });

  it("a report whose charge would take a balance past its bound is a typed error and moves nothing", async () => {
    const client = await createAccount("bound-client", { credit: 10_000_000n });
    const id = await rent(client.key);
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: -MAX_MONEY_MICROS + 500_000n } });
    const before = await balances();
    const refused = (await app.gql(USAGE, { id, rx: "1000000000", tx: "0" }, agentKey)).data.reportUsage;
    expect(refused.__typename).toBe("ValidationError");
    expect(refused.issues.map((issue: { path: string[] }) => issue.path)).toEqual([["rxBytes"]]);
    expect(await balances()).toEqual(before);
  });

  it("bandwidth prices are bounded at $1/GB", async () => {
    const LIST = `mutation ($input: ListMachineInput!) { listMachine(input: $input) { __typename ... on ValidationError { issues { path } } } }`;
    const listing = { machineId: `Machine:${machineId}`, pricePerGpuHour: "0.40", endDate: new Date(Date.now() + 86_400_000).toISOString() };
    for (const field of ["inetDownPricePerGb", "inetUpPricePerGb"]) {
      const refused = (await app.gql(LIST, { input: { ...listing, [field]: "1.000001" } }, host.key)).data.listMachine;
      expect(refused.issues.map((issue: { path: string[] }) => issue.path.join("."))).toEqual([field]);
    }
  });

  it("payouts hold back earnings the client's balance has not covered, until it does", async () => {
    const payee = await createAccount("payee-host", { credit: 0n });
    const machine = await createListedMachine(payee.userId, { listing: { inetDownPricePerGb: 1_000_000n } });
    const key = (await issueApiKey(prisma, { userId: payee.userId, name: "agent", scope: "MACHINE", machineId: machine })).token;
    const client = await createAccount("short-client", { credit: 1_000_000n });
    const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machine, 1) }, client.key)).data.createInstance);
    // Running for an hour: its link could have carried the 30 GB reported.
    await prisma.instance.update({ where: { id: Number(created.instance.id.split(":")[1]) }, data: { createdAt: new Date(Date.now() - 3_600_000) } });
    const usage = (await app.gql(USAGE, { id: created.instance.id, rx: "30000000000", tx: "0" }, key)).data.reportUsage;
    expect(usage.data.charged).toBe("30.00");
    expect((await balances())[client.userId]).toBe(-29_000_000n);
    expect((await balances())[payee.userId]).toBe(30_000_000n);

    // $30 earned, $29 of it not funded: $1 is payable, under the $20 minimum: carried over.
    const friday = new Date("2026-12-04T12:00:00Z");
    await runPayouts(friday);
    expect(await prisma.payout.count({ where: { hostId: payee.userId } })).toBe(0);

    // The client pays its debt: the next week pays all of it.
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 71_000_000n } });
    await runPayouts(new Date("2026-12-11T12:00:00Z"));
    expect(await prisma.payout.findMany({ where: { hostId: payee.userId } })).toMatchObject([{ amountMicros: 30_000_000n }]);
  });
});

describe("bounds the database enforces", () => {
  it("refuses balances, ledger amounts, payments and prices past their bounds", async () => {
    const { userId } = await createAccount("bounded", { credit: 0n });
    await expect(prisma.user.update({ where: { id: userId }, data: { balanceMicros: MAX_MONEY_MICROS + 1n } })).rejects.toThrow();
    await expect(prisma.user.update({ where: { id: userId }, data: { balanceMicros: -MAX_MONEY_MICROS - 1n } })).rejects.toThrow();
    await expect(prisma.ledgerEntry.create({ data: { userId, kind: "ADJUSTMENT", amountMicros: MAX_MONEY_MICROS + 1n, description: "x" } })).rejects.toThrow();
    await expect(prisma.payment.create({ data: { userId, kind: "CHECKOUT", amountMicros: -5_000_000n } })).rejects.toThrow();
    await expect(prisma.payment.create({ data: { userId, kind: "CHECKOUT", amountMicros: 0n } })).rejects.toThrow();
    expect((await prisma.user.findUniqueOrThrow({ where: { id: userId } })).balanceMicros).toBe(0n);
  });

  it("an account whose charge would cross a bound is put on hold and stopped; every other account is charged and every clock moves", async () => {
    await prisma.meteringClock.deleteMany();
    // A host at the very top of the range: any earning would take it past the bound.
    const rich = await createAccount("rich-host", { credit: 0n });
    await prisma.user.update({ where: { id: rich.userId }, data: { balanceMicros: MAX_MONEY_MICROS - 1n } });
    const richMachine = await createListedMachine(rich.userId);
    const richAgent = (await issueApiKey(prisma, { userId: rich.userId, name: "agent", scope: "MACHINE", machineId: richMachine })).token;
    const plainMachine = await createListedMachine(host.userId);
    const plainAgent = (await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId: plainMachine })).token;
    // Clients in every phase: eight on the rich host's machine, eight on the plain one.
    const clients = [];
    for (let i = 0; i < 16; i++) clients.push(await createAccount(`metered-${i}`, { credit: 100_000_000n }));
    const REPORT = `mutation ($id: ID!) { reportInstanceState(instanceId: $id, status: RUNNING) { __typename } }`;
    const instances: { clientId: number; id: number; rich: boolean }[] = [];
    for (const [i, client] of clients.entries()) {
      const rich = i % 2 === 0;
      const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(rich ? richMachine : plainMachine, 1) }, client.key)).data.createInstance);
      expect(created.instance, JSON.stringify(created)).toBeDefined();
      const id = Number(created.instance.id.split(":")[1]);
      await eventAt(id, "ALLOCATED", Math.floor(Date.now() / 1000));
      expect((await app.gql(REPORT, { id: created.instance.id }, rich ? richAgent : plainAgent)).data.reportInstanceState.__typename).toBe("MutationReportInstanceStateSuccess");
      instances.push({ clientId: client.userId, id, rich });
    }
    const before = await balances();
    // A minute of metering, every phase (each run takes the phase whose clock is oldest).
    const later = new Date(Date.now() + 60_000);
    for (let i = 0; i < METERING_PHASES; i++) await runMetering(later);

    const target = Math.floor(later.getTime() / 1000) - config().METERING_LAG_SECONDS;
    expect((await prisma.meteringClock.findMany()).map((clock) => clock.meteredUntil.getTime() / 1000)).toEqual(Array(METERING_PHASES).fill(target));
    const after = await balances();
    for (const instance of instances) {
      if (instance.rich) expect(after[instance.clientId], "left out with its host").toBe(before[instance.clientId]);
      else expect(after[instance.clientId]).toBeLessThan(before[instance.clientId]);
    }
    expect(after[rich.userId]).toBe(MAX_MONEY_MICROS - 1n);
    expect(await prisma.user.findUniqueOrThrow({ where: { id: rich.userId } })).toMatchObject({ meteringHoldReason: expect.stringContaining("bounds") });
    expect(await prisma.user.count({ where: { meteringHeldAt: { not: null } } })).toBe(1);
    const statuses = await prisma.instance.findMany({ where: { id: { in: instances.map((instance) => instance.id) } } });
    for (const instance of statuses) {
      const rich = instance.machineId === richMachine;
      expect(instance.status, `instance ${instance.id}`).toBe(rich ? "STOPPED" : "RUNNING");
      if (rich) expect(instance.statusMessage).toBe(METERING_HOLD_MESSAGE);
    }
    // Every charge made went to the ledger too (the rich host's balance was set directly above).
    const metered = new Set([...clients.map((client) => client.userId), host.userId]);
    expect((await ledgerMismatches(prisma)).filter((row) => metered.has(row.userId))).toEqual([]);
    // The next ticks run as usual.
    for (let i = 0; i < METERING_PHASES; i++) await runMetering(new Date(later.getTime() + 5_000));
    expect((await balances())[rich.userId]).toBe(MAX_MONEY_MICROS - 1n);
  });
});
