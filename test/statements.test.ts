import { beforeAll, describe, expect, it } from "vitest";
import { postEntry } from "../domain/billing/ledger.ts";
import { meterUpTo } from "../domain/billing/metering.ts";
import { PERIOD_SECONDS, periodStart } from "../domain/billing/rates.ts";
import { recordUsage } from "../domain/billing/usage.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { at, eventAt, instanceAt } from "./support/metering.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const app = useTestApp();

const CHARGES = /* GraphQL */ `
  query ($from: DateTime!, $to: DateTime!, $instanceId: ID) {
    charges(from: $from, to: $to, instanceId: $instanceId, first: 100) { totalCount nodes { instanceId day category quantity unit rate amount description } }
  }
`;
const EARNINGS = /* GraphQL */ `
  query ($from: DateTime!, $to: DateTime!, $machineId: ID) {
    earnings(from: $from, to: $to, machineId: $machineId, first: 100) { totalCount nodes { machineId day gpu storage bandwidth total } }
  }
`;
const INVOICES = /* GraphQL */ `
  query ($from: DateTime!, $to: DateTime!) { invoices(from: $from, to: $to, first: 100) { totalCount nodes { kind status amount description } } }
`;

// Day 1 (D): instance A (4 GPUs at $0.389, 100 GB at $0.10/GB-month) runs all day and moves bytes.
// Day 2: A runs one more hour and is destroyed; B (1 GPU at $0.40, 10 GB) starts at midnight and
// is still running at the end: its rows are open, charged up to the metering clock (2 hours).
const D = periodStart(Math.floor(Date.now() / 1000)) - 10 * PERIOD_SECONDS;
const END = D + PERIOD_SECONDS + 7200;
const range = { from: at(D).toISOString(), to: at(D + 2 * PERIOD_SECONDS).toISOString() };

let client: { userId: number; key: string };
let host: { userId: number; key: string };
let other: { userId: number; key: string };
let machineId: number;
let a: number;
let b: number;
let otherInstance: number;

beforeAll(async () => {
  [client, host, other] = [await createAccount("client", { credit: 0n }), await createAccount("host", { credit: 0n }), await createAccount("other", { credit: 0n })];
  machineId = await createListedMachine(host.userId);
  a = await instanceAt(client.userId, machineId, D, { numGpus: 4, diskGb: 100, price: 389_000n, storagePrice: 100_000n });
  await eventAt(a, "ALLOCATED", D);
  await eventAt(a, "AGENT_RUNNING", D);
  // Received 5 GB at $0.002/GB, sent 2.5 GB at $0.005/GB (instanceAt's contract).
  await recordUsage(prisma, a, 5_000_000_000n, 2_500_000_000n, at(D + 100));
  b = await instanceAt(client.userId, machineId, D + PERIOD_SECONDS, { numGpus: 1, diskGb: 10, price: 400_000n, storagePrice: 100_000n });
  await eventAt(b, "ALLOCATED", D + PERIOD_SECONDS);
  await eventAt(b, "AGENT_RUNNING", D + PERIOD_SECONDS);
  await eventAt(a, "DESTROY_REQUESTED", D + PERIOD_SECONDS + 3600);
  // The other account rents on its own machine.
  const otherMachine = await createListedMachine(other.userId);
  otherInstance = await instanceAt(other.userId, otherMachine, D, { numGpus: 1 });
  await eventAt(otherInstance, "ALLOCATED", D);
  await eventAt(otherInstance, "AGENT_RUNNING", D);
  await meterUpTo(at(END + config().METERING_LAG_SECONDS));
});

const sumMoney = (values: string[]) => values.reduce((sum, v) => sum + BigInt(Math.round(Number(v) * 1e6)), 0n);

describe("charges", () => {
  it("itemizes each instance's day per category with quantity, rate and exact amount", async () => {
    const result = await app.gql(CHARGES, range, client.key);
    expect(result.errors).toBeUndefined();
    const day1 = at(D).toISOString();
    const day2 = at(D + PERIOD_SECONDS).toISOString();
    expect(result.data.charges.nodes).toEqual([
      { instanceId: `Instance:${a}`, day: day1, category: "GPU", quantity: "96.000", unit: "GPU-hour", rate: "0.389", amount: "37.344", description: "96.000 GPU-hours at $0.389/GPU-hour" },
      // 100 GB for 1/30 month: 333,333.3 µ$, charged down to the µ$.
      { instanceId: `Instance:${a}`, day: day1, category: "STORAGE", quantity: "3.333", unit: "GB-month", rate: "0.10", amount: "0.333333", description: "3.333 GB-months at $0.10/GB-month" },
      { instanceId: `Instance:${a}`, day: day1, category: "BANDWIDTH_UP", quantity: "2.500", unit: "GB", rate: "0.005", amount: "0.0125", description: "2.500 GB at $0.005/GB" },
      { instanceId: `Instance:${a}`, day: day1, category: "BANDWIDTH_DOWN", quantity: "5.000", unit: "GB", rate: "0.002", amount: "0.01", description: "5.000 GB at $0.002/GB" },
      { instanceId: `Instance:${a}`, day: day2, category: "GPU", quantity: "4.000", unit: "GPU-hour", rate: "0.389", amount: "1.556", description: "4.000 GPU-hours at $0.389/GPU-hour" },
      { instanceId: `Instance:${a}`, day: day2, category: "STORAGE", quantity: "0.139", unit: "GB-month", rate: "0.10", amount: "0.013888", description: "0.139 GB-months at $0.10/GB-month" },
      { instanceId: `Instance:${b}`, day: day2, category: "GPU", quantity: "2.000", unit: "GPU-hour", rate: "0.40", amount: "0.80", description: "2.000 GPU-hours at $0.40/GPU-hour" },
      { instanceId: `Instance:${b}`, day: day2, category: "STORAGE", quantity: "0.028", unit: "GB-month", rate: "0.10", amount: "0.002777", description: "0.028 GB-months at $0.10/GB-month" },
    ]);
    // The lines add up to what the ledger charged, to the micro-dollar.
    const charged = await prisma.ledgerEntry.aggregate({ where: { userId: client.userId, kind: "CHARGE" }, _sum: { amountMicros: true } });
    expect(sumMoney(result.data.charges.nodes.map((line: { amount: string }) => line.amount))).toBe(-charged._sum.amountMicros!);

    const onlyB = await app.gql(CHARGES, { ...range, instanceId: `Instance:${b}` }, client.key);
    expect(onlyB.data.charges.nodes.map((line: { instanceId: string; category: string }) => `${line.instanceId} ${line.category}`)).toEqual([
      `Instance:${b} GPU`,
      `Instance:${b} STORAGE`,
    ]);
    // A range from the second day on.
    const day2Only = await app.gql(CHARGES, { from: at(D + PERIOD_SECONDS + 5).toISOString(), to: range.to }, client.key);
    expect(day2Only.data.charges.nodes).toHaveLength(4);
  });

  it("shows only the caller's instances: another account's id is NOT_FOUND", async () => {
    const foreign = await app.gql(CHARGES, { ...range, instanceId: `Instance:${otherInstance}` }, client.key);
    expect(foreign.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    const missing = await app.gql(CHARGES, { ...range, instanceId: "Instance:999999" }, client.key);
    expect(missing.errors?.[0]).toMatchObject({ message: foreign.errors?.[0].message, extensions: { code: "NOT_FOUND" } });
    const theirs = await app.gql(CHARGES, range, other.key);
    expect(new Set(theirs.data.charges.nodes.map((line: { instanceId: string }) => line.instanceId))).toEqual(new Set([`Instance:${otherInstance}`]));
    // The host sees no charges of its clients.
    expect((await app.gql(CHARGES, range, host.key)).data.charges.nodes).toEqual([]);
    expect((await app.gql(CHARGES, range)).errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
  });

  it("refuses a range that ends before it starts", async () => {
    const result = await app.gql(CHARGES, { from: range.to, to: range.from }, client.key);
    expect(result.errors?.[0].extensions?.code).toBe("VALIDATION");
  });
});

describe("earnings", () => {
  it("splits each machine's day into GPU, storage and bandwidth, adding up to the host's earnings", async () => {
    const result = await app.gql(EARNINGS, range, host.key);
    expect(result.data.earnings.nodes).toEqual([
      { machineId: `Machine:${machineId}`, day: at(D).toISOString(), gpu: "37.344", storage: "0.333333", bandwidth: "0.0225", total: "37.699833" },
      { machineId: `Machine:${machineId}`, day: at(D + PERIOD_SECONDS).toISOString(), gpu: "2.356", storage: "0.016665", bandwidth: "0.00", total: "2.372665" },
    ]);
    const earned = await prisma.ledgerEntry.aggregate({ where: { userId: host.userId, kind: "EARNING" }, _sum: { amountMicros: true } });
    expect(sumMoney(result.data.earnings.nodes.map((day: { total: string }) => day.total))).toBe(earned._sum.amountMicros);
  });

  it("shows only the caller's machines: another account's machine is NOT_FOUND", async () => {
    const foreign = await app.gql(EARNINGS, { ...range, machineId: `Machine:${machineId}` }, other.key);
    expect(foreign.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    expect((await app.gql(EARNINGS, range, client.key)).data.earnings.nodes).toEqual([]);
  });
});

const CONTRACTS = /* GraphQL */ `
  query ($includeEnded: Boolean) {
    myMachines { nodes { id contracts(includeEnded: $includeEnded) { totalCount edges { node { instanceId kind numGpus pricePerGpuHour status since endedAt earnings { gpu storage bandwidth total } } } } } }
  }
`;

describe("contract earnings", () => {
  it("shows each contract on the host's machine with what it has earned so far, adding up to the machine's earnings", async () => {
    const result = await app.gql(CONTRACTS, { includeEnded: true }, host.key);
    expect(result.errors).toBeUndefined();
    const machine = result.data.myMachines.nodes.find((m: { id: string }) => m.id === `Machine:${machineId}`);
    expect(machine.contracts.totalCount).toBe(2);
    expect(machine.contracts.edges.map((edge: { node: unknown }) => edge.node)).toEqual([
      {
        instanceId: `Instance:${a}`, kind: "ON_DEMAND", numGpus: 4, pricePerGpuHour: "0.389", status: "DESTROYED", since: at(D).toISOString(),
        endedAt: expect.any(String),
        // Day 1 and day 2's lines of A above.
        earnings: { gpu: "38.90", storage: "0.347221", bandwidth: "0.0225", total: "39.269721" },
      },
      {
        instanceId: `Instance:${b}`, kind: "ON_DEMAND", numGpus: 1, pricePerGpuHour: "0.40", status: "RUNNING", since: at(D + PERIOD_SECONDS).toISOString(),
        endedAt: null,
        earnings: { gpu: "0.80", storage: "0.002777", bandwidth: "0.00", total: "0.802777" },
      },
    ]);
    const earned = await prisma.ledgerEntry.aggregate({ where: { userId: host.userId, kind: "EARNING" }, _sum: { amountMicros: true } });
    expect(sumMoney(machine.contracts.edges.map((edge: { node: { earnings: { total: string } } }) => edge.node.earnings.total))).toBe(earned._sum.amountMicros);
    // Without includeEnded, the live contract alone.
    const live = await app.gql(CONTRACTS, {}, host.key);
    const liveMachine = live.data.myMachines.nodes.find((m: { id: string }) => m.id === `Machine:${machineId}`);
    expect(liveMachine.contracts.edges.map((edge: { node: { instanceId: string } }) => edge.node.instanceId)).toEqual([`Instance:${b}`]);
  });

  it("grows as metering charges the live contract", async () => {
    const total = async () => {
      const result = await app.gql(CONTRACTS, {}, host.key);
      const machine = result.data.myMachines.nodes.find((m: { id: string }) => m.id === `Machine:${machineId}`);
      return machine.contracts.edges[0].node.earnings.total as string;
    };
    const before = await total();
    await meterUpTo(at(END + 3600 + config().METERING_LAG_SECONDS));
    // One more hour of B: 1 GPU at $0.40 and 10 GB of storage.
    expect(Number(await total()) - Number(before)).toBeCloseTo(0.4 + 0.001388, 5);
  });
});

describe("invoices", () => {
  it("lists payments (failed and pending ones too), credits, refunds and payouts of the caller only", async () => {
    await prisma.$transaction(async (tx) => {
      await postEntry(tx, { userId: client.userId, kind: "PAYMENT", amountMicros: 50_000_000n, description: "Card payment of $50.00 (Stripe pi_1)" });
      await postEntry(tx, { userId: client.userId, kind: "ADJUSTMENT", amountMicros: 2_000_000n, description: "Goodwill credit" });
      await postEntry(tx, { userId: client.userId, kind: "REFUND", amountMicros: -10_000_000n, description: "Refund of pi_1" });
      await postEntry(tx, { userId: other.userId, kind: "PAYMENT", amountMicros: 7_000_000n, description: "Someone else's" });
      await postEntry(tx, { userId: host.userId, kind: "PAYOUT", amountMicros: -20_000_000n, description: "Payout of $20.00 to acct_1" });
    });
    await prisma.payment.createMany({
      data: [
        { userId: client.userId, kind: "AUTO_BILL", status: "FAILED", amountMicros: 25_000_000n, failureMessage: "Your card was declined." },
        { userId: client.userId, kind: "CHECKOUT", status: "PENDING", amountMicros: 5_000_000n, stripeCheckoutSessionId: "cs_pending" },
        { userId: client.userId, kind: "CHECKOUT", status: "EXPIRED", amountMicros: 5_000_000n, stripeCheckoutSessionId: "cs_expired" },
      ],
    });
    const window = { from: new Date(Date.now() - 60_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() };
    const result = await app.gql(INVOICES, window, client.key);
    const items = result.data.invoices.nodes.map((i: { kind: string; status: string; amount: string }) => `${i.kind} ${i.status} ${i.amount}`);
    expect(items.sort()).toEqual(
      ["ADJUSTMENT COMPLETED 2.00", "PAYMENT COMPLETED 50.00", "PAYMENT FAILED 25.00", "PAYMENT PENDING 5.00", "REFUND COMPLETED -10.00"].sort(),
    );
    expect(result.data.invoices.nodes.find((i: { status: string }) => i.status === "FAILED").description).toBe(
      "Auto-billing charge of $25.00 failed: Your card was declined.",
    );
    const hostItems = await app.gql(INVOICES, window, host.key);
    expect(hostItems.data.invoices.nodes).toMatchObject([{ kind: "PAYOUT", status: "COMPLETED", amount: "-20.00" }]);
  });
});
