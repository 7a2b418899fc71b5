import { fakeStripe } from "./support/fake-stripe.ts";
import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import { Queue } from "bullmq";
import { ledgerMismatches, postEntry } from "../domain/billing/ledger.ts";
import { invoiceItems } from "../domain/billing/statements.ts";
import { sendPendingNotifications } from "../domain/notifications.ts";
import { attemptAutoBill } from "../domain/payments/autoBilling.ts";
import { watchBalances } from "../domain/payments/balanceWatch.ts";
import { prisma } from "../infra/db.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
import { AUTO_BILL_QUEUE, enqueueAutoBills, startAutoBillingWorker } from "../workers/auto-billing.ts";
import { useTestApp } from "./support/app.ts";
import { sendMailNow, startSmtpServer } from "./support/smtp.ts";
import { createAccount } from "./support/rentals.ts";

vi.hoisted(() => {
  // Retries in milliseconds rather than minutes.
  process.env.AUTO_BILL_RETRY_DELAY_MS = "20";
  process.env.AUTO_BILL_ATTEMPTS = "3";
});

const app = useTestApp();

const UPDATE_SETTINGS = /* GraphQL */ `
  mutation ($input: BillingSettingsInput!) {
    updateBillingSettings(input: $input) {
      __typename
      ... on MutationUpdateBillingSettingsSuccess { data { savedCard autoBillThreshold autoBillAmount balanceAlertThreshold } }
      ... on ValidationError { issues { path message } }
    }
  }
`;

/** An account with a saved card and a balance of `balance` µ$. */
async function cardHolder(balance: bigint): Promise<{ userId: number; key: string }> {
  const account = await createAccount("autobill", { credit: 0n });
  await prisma.user.update({
    where: { id: account.userId },
    data: { stripeCustomerId: `cus_${account.userId}`, stripePaymentMethodId: "pm_card_visa", savedCardLabel: "visa •••• 4242" },
  });
  await setBalance(account.userId, balance);
  return account;
}

/** Moves the balance to `target` with an ADJUSTMENT entry, as any balance change goes. */
async function setBalance(userId: number, target: bigint): Promise<void> {
  await prisma.$transaction(async (tx) => {
    const { balanceMicros } = await tx.user.findUniqueOrThrow({ where: { id: userId } });
    if (balanceMicros !== target) await postEntry(tx, { userId, kind: "ADJUSTMENT", amountMicros: target - balanceMicros, description: "test" });
  });
}

const balanceOf = async (userId: number) => (await prisma.user.findUniqueOrThrow({ where: { id: userId } })).balanceMicros;
const autoBills = (userId: number) => prisma.payment.findMany({ where: { userId, kind: "AUTO_BILL" }, orderBy: { id: "asc" } });
const outbox = (userId: number) => prisma.notificationOutbox.findMany({ where: { userId }, orderBy: { id: "asc" } });

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  // On time-out the last value is returned, for the caller's assertion to show.
  return vi
    .waitFor(
      async () => {
        const value = await read();
        if (!done(value)) throw new Error("not yet");
        return value;
      },
      { timeout: timeoutMs, interval: 50 },
    )
    .catch(read);
}

beforeEach(async () => {
  fakeStripe.reset();
  // Each test watches its own accounts: earlier tests' accounts are left without thresholds.
  await prisma.user.updateMany({ data: { autoBillThresholdMicros: null, balanceAlertThresholdMicros: null } });
});

afterAll(async () => {
  const connection = redisConnection();
  const queue = new Queue(AUTO_BILL_QUEUE, { connection, prefix: redisKey("bull") });
  await queue.obliterate({ force: true });
  await queue.close();
  await connection.quit();
});

describe("billing settings", () => {
  it("sets the thresholds through GraphQL; auto-billing needs a saved card and an amount", async () => {
    const bare = await createAccount("nocard", { credit: 0n });
    const refused = await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10", autoBillAmount: "25" } }, bare.key);
    expect(refused.data.updateBillingSettings).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["autoBillThreshold"] }] });

    const { key } = await cardHolder(0n);
    const noAmount = await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10" } }, key);
    expect(noAmount.data.updateBillingSettings.issues[0].path).toEqual(["autoBillAmount"]);
    const tooSmall = await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10", autoBillAmount: "1" } }, key);
    expect(tooSmall.data.updateBillingSettings.issues[0].path).toEqual(["autoBillAmount"]);

    const set = await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10", autoBillAmount: "25", balanceAlertThreshold: "15" } }, key);
    expect(set.data.updateBillingSettings.data).toEqual({
      savedCard: "visa •••• 4242",
      autoBillThreshold: "10.00",
      autoBillAmount: "25.00",
      balanceAlertThreshold: "15.00",
    });
    // Left out: unchanged; null: off.
    const off = await app.gql(UPDATE_SETTINGS, { input: { balanceAlertThreshold: null } }, key);
    expect(off.data.updateBillingSettings.data).toMatchObject({ autoBillThreshold: "10.00", balanceAlertThreshold: null });
    const removed = await app.gql(UPDATE_SETTINGS, { input: { removeSavedCard: true } }, key);
    expect(removed.data.updateBillingSettings.data).toMatchObject({ savedCard: null, autoBillThreshold: null });
  });
});

describe("balance crossings", () => {
  it("alerts and auto-bills once per crossing, and re-arms when the balance is back above", async () => {
    const { userId, key } = await cardHolder(20_000_000n);
    await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10", autoBillAmount: "25", balanceAlertThreshold: "15" } }, key);

    await watchBalances();
    expect(await outbox(userId)).toHaveLength(0);
    expect(await autoBills(userId)).toHaveLength(0);

    // Below the alert threshold only: one alert, however many watches.
    await setBalance(userId, 12_000_000n);
    await watchBalances();
    await watchBalances();
    expect(await outbox(userId)).toMatchObject([{ kind: "BALANCE_ALERT", subject: "Your balance is below $15.00", sentAt: null }]);
    expect(await autoBills(userId)).toHaveLength(0);

    // Below the auto-billing threshold: one payment, however many watches; no second alert.
    await setBalance(userId, 5_000_000n);
    const [first, second] = [await watchBalances(), await watchBalances()];
    const bills = await autoBills(userId);
    expect(bills).toMatchObject([{ status: "PENDING", amountMicros: 25_000_000n }]);
    expect(first.autoBills).toContain(bills[0].id);
    expect(second.autoBills).toContain(bills[0].id);
    expect(await outbox(userId)).toHaveLength(1);

    // The charge: off-session, confirmed at once, the saved card of the customer.
    expect(await attemptAutoBill(bills[0].id, false)).toBe("SUCCEEDED");
    const [intent] = fakeStripe.requestsTo("POST", "/v1/payment_intents");
    expect(intent.body).toMatchObject({
      amount: "2500",
      currency: "usd",
      customer: `cus_${userId}`,
      payment_method: "pm_card_visa",
      off_session: "true",
      confirm: "true",
      "metadata[paymentId]": String(bills[0].id),
    });
    expect(intent.idempotencyKey).toBe(`auto-bill-${bills[0].id}-0`);
    expect(await balanceOf(userId)).toBe(30_000_000n);
    // Repeating the attempt (a retried job) charges nothing more.
    expect(await attemptAutoBill(bills[0].id, false)).toBe("DONE");
    expect(await balanceOf(userId)).toBe(30_000_000n);

    // Back above both thresholds: re-armed; the next fall is a new crossing.
    await watchBalances();
    await setBalance(userId, 9_000_000n);
    await watchBalances();
    expect(await autoBills(userId)).toHaveLength(2);
    expect((await outbox(userId)).map((n) => n.kind)).toEqual(["BALANCE_ALERT", "BALANCE_ALERT"]);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("retries a declined charge through BullMQ with backoff and a new idempotency key, and credits once", async () => {
    const { userId, key } = await cardHolder(20_000_000n);
    await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10", autoBillAmount: "25" } }, key);
    await setBalance(userId, 1_000_000n);
    const { autoBills: pending } = await watchBalances();
    const [payment] = await autoBills(userId);
    expect(pending).toContain(payment.id);
    // Only this test's payment (earlier tests leave theirs pending).
    const ids = [payment.id];
    fakeStripe.intentOutcomes = ["declined", "succeeded"];

    const worker = await startAutoBillingWorker();
    try {
      await enqueueAutoBills(ids);
      await enqueueAutoBills(ids); // the next watch enqueues it again: the same job
      const done = await waitFor(() => prisma.payment.findUniqueOrThrow({ where: { id: payment.id } }), (p) => p.status !== "PENDING");
      expect(done).toMatchObject({ status: "SUCCEEDED", attempts: 1 });
    } finally {
      await worker.close();
    }
    expect(fakeStripe.requestsTo("POST", "/v1/payment_intents").map((r) => r.idempotencyKey)).toEqual([
      `auto-bill-${payment.id}-0`,
      `auto-bill-${payment.id}-1`,
    ]);
    expect(await balanceOf(userId)).toBe(26_000_000n);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("records a charge declined on every attempt as a failed payment, in invoices and the outbox", async () => {
    const { userId, key } = await cardHolder(20_000_000n);
    await app.gql(UPDATE_SETTINGS, { input: { autoBillThreshold: "10", autoBillAmount: "25" } }, key);
    await setBalance(userId, 1_000_000n);
    const { autoBills: pending } = await watchBalances();
    const [payment] = await autoBills(userId);
    expect(pending).toContain(payment.id);
    // Only this test's payment (earlier tests leave theirs pending).
    const ids = [payment.id];
    fakeStripe.intentOutcomes = ["declined", "declined", "declined", "succeeded"];

    const worker = await startAutoBillingWorker();
    try {
      await enqueueAutoBills(ids);
      const done = await waitFor(() => prisma.payment.findUniqueOrThrow({ where: { id: payment.id } }), (p) => p.status !== "PENDING");
      expect(done).toMatchObject({ status: "FAILED", attempts: 3, failureMessage: "Your card has insufficient funds." });
    } finally {
      await worker.close();
    }
    expect(fakeStripe.requestsTo("POST", "/v1/payment_intents")).toHaveLength(3);
    expect(await balanceOf(userId)).toBe(1_000_000n);
    expect(await outbox(userId)).toMatchObject([{ kind: "AUTO_BILL_FAILED", subject: "Auto-billing failed" }]);
    const invoices = await invoiceItems(userId, { from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000) });
    expect(invoices).toContainEqual(
      expect.objectContaining({ kind: "PAYMENT", status: "FAILED", amountMicros: 25_000_000n, description: expect.stringContaining("insufficient funds") }),
    );
    // Still below the threshold: the crossing was charged (and failed) once; nothing more until it re-arms.
    expect((await watchBalances()).autoBills).not.toContain(payment.id);
    expect(await autoBills(userId)).toHaveLength(1);
  });
});

describe("the notification outbox", () => {
  it("sends each notification once, and keeps those that could not be sent for later", async () => {
    const { userId } = await cardHolder(20_000_000n);
    await prisma.user.update({ where: { id: userId }, data: { balanceAlertThresholdMicros: 30_000_000n } });
    await watchBalances();
    const sent: string[] = [];
    const failing = async () => {
      throw new Error("smtp down");
    };
    expect(await sendPendingNotifications(failing)).toBe(0);
    expect(await outbox(userId)).toMatchObject([{ sentAt: null, attempts: 1, lastError: "smtp down" }]);

    const ok = async (email: { to: string; subject: string }) => void sent.push(`${email.to}: ${email.subject}`);
    expect(await sendPendingNotifications(ok)).toBeGreaterThanOrEqual(1);
    expect(await sendPendingNotifications(ok)).toBe(0);
    const { email } = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    expect(sent.filter((s) => s.startsWith(email))).toEqual([`${email}: Your balance is below $30.00`]);
    expect((await outbox(userId))[0].sentAt).not.toBeNull();
  });

  it("mails through SMTP when SMTP_URL is set", async () => {
    const server = await startSmtpServer();
    try {
      const { userId } = await cardHolder(20_000_000n);
      await prisma.user.update({ where: { id: userId }, data: { balanceAlertThresholdMicros: 30_000_000n } });
      await watchBalances();
      const { email } = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
      expect(await sendMailNow(server.url)).toBeGreaterThanOrEqual(1);
      const mail = server.received.find((m) => m.to.includes(email));
      expect(mail?.data).toContain("Subject: Your balance is below $30.00");
      expect((await outbox(userId))[0].sentAt).not.toBeNull();
    } finally {
      await server.close();
    }
  });
});
