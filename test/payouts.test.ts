import { deliver, fakeStripe, signedEvent } from "./support/fake-stripe.ts";
import { beforeEach, describe, expect, it } from "vitest";
import { Queue, QueueEvents, Worker } from "bullmq";
import { ledgerMismatches, postEntry } from "../domain/billing/ledger.ts";
import { payoutPeriod, runPayouts } from "../domain/payouts.ts";
import { prisma } from "../infra/db.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
import { queuePrefix } from "../infra/queues.ts";
import { startWorkers } from "../workers/index.ts";
import { payoutsJob } from "../workers/payouts.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";

const app = useTestApp();

/** A host that earned `earned` µ$ (an EARNING entry, as metering writes them) and has an onboarded Connect account (acct_1TestHost<id>) unless told otherwise. */
async function host(earned: bigint, account?: string | null): Promise<number> {
  const { userId } = await createAccount("host", { credit: 0n });
  const accountId = account === undefined ? `acct_1TestHost${userId}` : account;
  await prisma.user.update({ where: { id: userId }, data: { stripeConnectAccountId: accountId, payoutsEnabled: accountId !== null } });
  await earn(userId, earned);
  return userId;
}

/** `earned` µ$ of earnings on the account's balance, as metering writes them. */
async function earn(userId: number, earned: bigint): Promise<void> {
  await prisma.$transaction(async (tx) => {
    await tx.ledgerEntry.create({
      data: { userId, kind: "EARNING", category: "GPU", periodStart: new Date("2026-01-01T00:00:00Z"), amountMicros: earned, description: "GPU earnings" },
    });
    await tx.user.update({ where: { id: userId }, data: { balanceMicros: { increment: earned } } });
  });
}

const balanceOf = async (userId: number) => (await prisma.user.findUniqueOrThrow({ where: { id: userId } })).balanceMicros;
const payoutsOf = (hostId: number) => prisma.payout.findMany({ where: { hostId }, orderBy: { id: "asc" } });
const FRIDAY = new Date("2026-03-06T00:00:10Z");

beforeEach(async () => {
  fakeStripe.reset();
  // Each test pays its own hosts: earlier tests' hosts are emptied.
  await prisma.$executeRawUnsafe(`TRUNCATE payout, ledger_entry`);
  await prisma.user.updateMany({ data: { balanceMicros: 0n } });
});

describe("payout periods", () => {
  it("are the latest Friday 00:00 UTC", () => {
    expect(payoutPeriod(new Date("2026-03-06T00:00:00Z")).toISOString()).toBe("2026-03-06T00:00:00.000Z");
    expect(payoutPeriod(new Date("2026-03-12T23:59:59Z")).toISOString()).toBe("2026-03-06T00:00:00.000Z");
    expect(payoutPeriod(new Date("2026-03-13T00:00:00Z")).toISOString()).toBe("2026-03-13T00:00:00.000Z");
  });
});

describe("weekly payouts", () => {
  it("pays balances of $20 and more through Stripe Connect, carries smaller ones over, skips hosts without an account", async () => {
    const rich = await host(50_123_456n);
    const small = await host(19_990_000n);
    const noAccount = await host(30_000_000n, null);
    // Earned $30 but spent $5 renting: $25 is paid.
    const spender = await host(30_000_000n);
    await prisma.$transaction((tx) => postEntry(tx, { userId: spender, kind: "ADJUSTMENT", amountMicros: -5_000_000n, description: "rentals" }));
    // Bought credit is not earnings: never paid out.
    const { userId: client } = await createAccount("client", { credit: 0n });
    await prisma.$transaction((tx) => postEntry(tx, { userId: client, kind: "PAYMENT", amountMicros: 100_000_000n, description: "card" }));

    const run = await runPayouts(FRIDAY);
    expect(run).toMatchObject({ paid: 2, skipped: 1, failed: 0, pending: 0 });

    // Whole cents are paid; the rest stays.
    expect(await payoutsOf(rich)).toMatchObject([{ status: "PAID", amountMicros: 50_120_000n, destination: `acct_1TestHost${rich}`, stripeTransferId: expect.stringMatching(/^tr_/) }]);
    expect(await balanceOf(rich)).toBe(3_456n);
    expect(await payoutsOf(spender)).toMatchObject([{ status: "PAID", amountMicros: 25_000_000n }]);
    expect(await balanceOf(spender)).toBe(0n);
    expect(await payoutsOf(small)).toEqual([]);
    expect(await balanceOf(small)).toBe(19_990_000n);
    expect(await payoutsOf(noAccount)).toMatchObject([{ status: "SKIPPED", note: expect.stringContaining("payouts are not set up") }]);
    expect(await balanceOf(noAccount)).toBe(30_000_000n);
    expect(await balanceOf(client)).toBe(100_000_000n);

    const transfers = fakeStripe.requestsTo("POST", "/v1/transfers");
    expect(transfers.map((t) => t.body)).toEqual([
      expect.objectContaining({ amount: "5012", currency: "usd", destination: `acct_1TestHost${rich}` }),
      expect.objectContaining({ amount: "2500", currency: "usd", destination: `acct_1TestHost${spender}` }),
    ]);
    expect(await prisma.ledgerEntry.findMany({ where: { userId: rich, kind: "PAYOUT" } })).toMatchObject([{ amountMicros: -50_120_000n }]);

    // The same week again (a retried or duplicated job): nobody is paid twice.
    expect(await runPayouts(new Date(FRIDAY.getTime() + 3_600_000))).toMatchObject({ paid: 0, skipped: 0 });
    expect(fakeStripe.requestsTo("POST", "/v1/transfers")).toHaveLength(2);

    // Next week the small balance, having grown, is paid.
    await prisma.$transaction(async (tx) => {
      await tx.ledgerEntry.create({ data: { userId: small, kind: "EARNING", category: "GPU", periodStart: new Date("2026-03-07T00:00:00Z"), amountMicros: 10_000n, description: "GPU earnings" } });
      await tx.user.update({ where: { id: small }, data: { balanceMicros: { increment: 10_000n } } });
    });
    expect(await runPayouts(new Date(FRIDAY.getTime() + 7 * 86_400_000))).toMatchObject({ paid: 1 });
    expect(await balanceOf(small)).toBe(0n);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("pays once when the transfer fails and the job is retried by BullMQ (same idempotency key)", async () => {
    const paid = await host(40_000_000n);
    fakeStripe.transferOutcomes = ["unavailable", "unavailable"];
    const connection = redisConnection();
    const prefix = redisKey("bull");
    const queue = new Queue("payouts-test", { connection, prefix });
    const events = new QueueEvents("payouts-test", { connection: redisConnection(), prefix });
    const worker = new Worker("payouts-test", () => runPayouts(FRIDAY), { connection, prefix });
    try {
      await events.waitUntilReady();
      const job = await queue.add("payouts", {}, { attempts: 5, backoff: { type: "exponential", delay: 20 } });
      await job.waitUntilFinished(events, 10_000);
      expect((await queue.getJob(job.id!))?.attemptsMade).toBe(3);
    } finally {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
      await events.close();
      await connection.quit();
    }
    const [payout] = await payoutsOf(paid);
    expect(payout).toMatchObject({ status: "PAID", amountMicros: 40_000_000n });
    const transfers = fakeStripe.requestsTo("POST", "/v1/transfers");
    expect(transfers).toHaveLength(3);
    expect(new Set(transfers.map((t) => t.idempotencyKey))).toEqual(new Set([`payout-${payout.id}`]));
    expect(await prisma.ledgerEntry.count({ where: { userId: paid, kind: "PAYOUT" } })).toBe(1);
    expect(await balanceOf(paid)).toBe(0n);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("credits a payout back when Stripe refuses the transfer", async () => {
    const refused = await host(25_000_000n, "acct_1Closed");
    fakeStripe.transferOutcomes = ["refused"];
    expect(await runPayouts(FRIDAY)).toMatchObject({ paid: 0, failed: 1 });
    expect(await payoutsOf(refused)).toMatchObject([{ status: "FAILED", note: "No such destination: 'acct_1Closed'" }]);
    expect(await balanceOf(refused)).toBe(25_000_000n);
    expect((await prisma.ledgerEntry.findMany({ where: { userId: refused, kind: "PAYOUT" }, orderBy: { id: "asc" } })).map((e) => e.amountMicros)).toEqual([
      -25_000_000n,
      25_000_000n,
    ]);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("is scheduled on Fridays at 00:00 UTC, with retries", async () => {
    const workers = await startWorkers([payoutsJob]);
    const connection = redisConnection();
    const queue = new Queue(payoutsJob.name, { connection, prefix: queuePrefix() });
    try {
      const scheduler = await queue.getJobScheduler(payoutsJob.name);
      expect(scheduler).toMatchObject({ pattern: "0 0 * * 5", tz: "UTC", template: { opts: { attempts: payoutsJob.retry!.attempts } } });
      const next = new Date(scheduler!.next!);
      expect([next.getUTCDay(), next.getUTCHours(), next.getUTCMinutes()]).toEqual([5, 0, 0]);
    } finally {
      await workers.close();
      await queue.obliterate({ force: true });
      await queue.close();
      await connection.quit();
    }
  });
});

describe("payout onboarding and history", () => {
  const START = /* GraphQL */ `
    mutation {
      startPayoutOnboarding {
        __typename
        ... on MutationStartPayoutOnboardingSuccess { data { accountId url expiresAt } }
        ... on Error { code message }
      }
    }
  `;
  const SETTINGS = `{ billingSettings { payoutAccountId payoutsEnabled } }`;
  const accountUpdated = (id: string, payoutsEnabled: boolean) =>
    deliver(app.baseUrl, signedEvent("account.updated", { id, object: "account", type: "express", payouts_enabled: payoutsEnabled, charges_enabled: payoutsEnabled }));

  it("creates an Express account and an onboarding link; pays it only once Stripe reports it can receive payouts", async () => {
    const me = await createAccount("host", { credit: 0n });
    const started = (await app.gql(START, {}, me.key)).data.startPayoutOnboarding;
    expect(started.__typename).toBe("MutationStartPayoutOnboardingSuccess");
    const { accountId, url, expiresAt } = started.data;
    expect(accountId).toMatch(/^acct_/);
    expect(url).toBe(`https://connect.stripe.test/setup/e/${accountId}/${url.split("/").pop()}`);
    expect(new Date(expiresAt).getTime()).toBeGreaterThan(Date.now());
    const [created] = fakeStripe.requestsTo("POST", "/v1/accounts");
    expect(created.body).toMatchObject({ type: "express", "capabilities[transfers][requested]": "true", "metadata[userId]": String(me.userId) });
    expect(created.body.email).toMatch(/^host-/);
    expect(fakeStripe.requestsTo("POST", "/v1/account_links").at(-1)!.body).toMatchObject({
      account: accountId,
      type: "account_onboarding",
      return_url: "http://localhost:4000/account?payouts=return",
      refresh_url: "http://localhost:4000/account?payouts=refresh",
    });
    // Asking again resumes the same account with a new link.
    const again = (await app.gql(START, {}, me.key)).data.startPayoutOnboarding.data;
    expect(again.accountId).toBe(accountId);
    expect(again.url).not.toBe(url);
    expect(fakeStripe.requestsTo("POST", "/v1/accounts")).toHaveLength(1);
    expect((await app.gql(SETTINGS, {}, me.key)).data.billingSettings).toEqual({ payoutAccountId: accountId, payoutsEnabled: false });

    // Earnings of $30 are not paid while onboarding is unfinished.
    await earn(me.userId, 30_000_000n);
    expect(await runPayouts(FRIDAY)).toMatchObject({ paid: 0, skipped: 1 });
    expect(await payoutsOf(me.userId)).toMatchObject([{ status: "SKIPPED", destination: null, note: expect.stringContaining("startPayoutOnboarding") }]);
    expect(fakeStripe.requestsTo("POST", "/v1/transfers")).toEqual([]);

    // An account that is no host's changes nothing; this host's onboarding done, the next Friday pays it.
    expect((await accountUpdated("acct_someone_else", true)).status).toBe(200);
    expect((await app.gql(SETTINGS, {}, me.key)).data.billingSettings.payoutsEnabled).toBe(false);
    expect((await accountUpdated(accountId, true)).status).toBe(200);
    expect((await app.gql(SETTINGS, {}, me.key)).data.billingSettings).toEqual({ payoutAccountId: accountId, payoutsEnabled: true });
    const nextFriday = new Date(FRIDAY.getTime() + 7 * 86_400_000);
    expect(await runPayouts(nextFriday)).toMatchObject({ paid: 1 });
    expect(fakeStripe.requestsTo("POST", "/v1/transfers").map((request) => request.body)).toMatchObject([{ destination: accountId, amount: "3000" }]);
    expect(await balanceOf(me.userId)).toBe(0n);

    // Stripe disables payouts (a verification came due): the host is skipped again.
    expect((await accountUpdated(accountId, false)).status).toBe(200);
    expect((await app.gql(SETTINGS, {}, me.key)).data.billingSettings.payoutsEnabled).toBe(false);
  });

  it("shows each host only its own payouts", async () => {
    const me = await createAccount("host", { credit: 0n });
    const someoneElse = await host(30_000_000n);
    await runPayouts(FRIDAY);
    const mine = await app.gql(`{ payouts { totalCount nodes { amount status } } }`, {}, me.key);
    expect(mine.data.payouts).toEqual({ totalCount: 0, nodes: [] });
    expect(await payoutsOf(someoneElse)).toHaveLength(1);
  });
});
