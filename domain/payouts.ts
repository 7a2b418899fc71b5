import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { logger } from "../infra/logger.ts";
import { publish } from "../infra/pubsub.ts";
import { postEntry } from "./billing/ledger.ts";
import { formatMoney } from "./money.ts";
import { isDefiniteRefusal, MICROS_PER_CENT, stripe, toCents } from "./payments/stripe.ts";
import { DAY_MS, HOUR_MS } from "./time.ts";

/*
 * Weekly host payouts (Fridays, UTC). What a host may be paid is its balance, but never more than
 * its earnings not yet paid out (sum of EARNING and PAYOUT entries): credit a host bought as a
 * client stays credit. Earnings its clients have not funded are held: every client of the host
 * (an accrual on its machines) whose balance is below zero holds back its debt, until the client's
 * balance covers it again (a debt to several hosts holds back at each of them). Whole cents of it are paid when they reach PAYOUT_MINIMUM_MICROS ($20);
 * less carries over to the next week. A host whose Stripe Connect account is missing or not onboarded
 * yet (startPayoutOnboarding; Stripe's account.updated reports payouts_enabled) is skipped and noted.
 *
 * Exactly once, whatever the retries: the payout row is unique per host and payout period and is
 * written with its PAYOUT ledger entry (debiting the balance) in one transaction; the Stripe
 * transfer is then made with the row's id as idempotency key, so a retry after a lost answer gets
 * the same transfer back. A transfer Stripe refuses marks the payout FAILED and credits the amount
 * back (a second PAYOUT entry, positive), so it is paid the next week.
 */

const FRIDAY = 5;

/** The payout period of `now`: the latest Friday 00:00 UTC at or before it. */
export function payoutPeriod(now: Date): Date {
  const day = Math.floor(now.getTime() / DAY_MS) * DAY_MS;
  const back = (new Date(day).getUTCDay() - FRIDAY + 7) % 7;
  return new Date(day - back * DAY_MS);
}

export interface PayoutRun {
  period: Date;
  paid: number;
  skipped: number;
  failed: number;
  /** Payouts whose transfer could not be made now (Stripe unreachable): the job's retry makes them. */
  pending: number;
}

/** Pays the hosts of the period of `now`, then finishes any transfer still pending. */
export async function runPayouts(now = new Date()): Promise<PayoutRun> {
  const period = payoutPeriod(now);
  const minimum = BigInt(config().PAYOUT_MINIMUM_MICROS);
  const run: PayoutRun = { period, paid: 0, skipped: 0, failed: 0, pending: 0 };

  const due = await prisma.$queryRaw<{ id: number }[]>`
    SELECT u.id FROM user_account u
     WHERE u.balance_micros >= ${minimum}
       AND EXISTS (SELECT 1 FROM ledger_entry e WHERE e.user_id = u.id AND e.kind = 'EARNING')
       AND NOT EXISTS (SELECT 1 FROM payout p WHERE p.host_id = u.id AND p.period_start = ${period})
     ORDER BY u.id`;
  for (const { id } of due) {
    const outcome = await openPayout(id, period, minimum);
    if (outcome === "SKIPPED") run.skipped++;
  }

  const pending = await prisma.payout.findMany({ where: { status: "PENDING" }, orderBy: { id: "asc" } });
  let lastError: unknown;
  for (const payout of pending) {
    try {
      const transfer = await stripe().transfers.create(
        {
          amount: toCents(payout.amountMicros),
          currency: "usd",
          destination: payout.destination!,
          description: `Host payout for the week of ${payout.periodStart.toISOString().slice(0, 10)}`,
          metadata: { payoutId: String(payout.id), hostId: String(payout.hostId) },
        },
        { idempotencyKey: `payout-${payout.id}` },
      );
      await prisma.payout.update({
        where: { id: payout.id },
        data: { status: "PAID", stripeTransferId: transfer.id, completedAt: new Date() },
      });
      run.paid++;
    } catch (err) {
      if (!isDefiniteRefusal(err)) {
        logger.warn({ err, payoutId: payout.id }, "payout transfer failed; retried");
        lastError = err;
        run.pending++;
        continue;
      }
      await reversePayout(payout.id, (err as Error).message);
      run.failed++;
    }
  }
  logger.info({ ...run, period: period.toISOString() }, "payout run");
  // Unfinished transfers fail the job so that BullMQ retries it (with backoff).
  if (lastError) throw lastError;
  return run;
}

/** The host's payout row of the period, with its debit, in one transaction. */
async function openPayout(hostId: number, period: Date, minimum: bigint): Promise<"OPENED" | "SKIPPED" | "CARRIED" | "EXISTS"> {
  const outcome = await prisma.$transaction(async (tx) => {
    const [host] = await tx.$queryRaw<{ balance: bigint; unpaid: bigint; unfunded: bigint; destination: string | null }[]>`
      SELECT u.balance_micros AS balance, CASE WHEN u.payouts_enabled THEN u.stripe_connect_account_id END AS destination,
             (SELECT coalesce(sum(amount_micros), 0) FROM ledger_entry
               WHERE user_id = u.id AND kind IN ('EARNING', 'PAYOUT'))::bigint AS unpaid,
             (SELECT coalesce(sum(-c.balance_micros), 0) FROM user_account c
               WHERE c.balance_micros < 0 AND c.id <> u.id
                 AND (EXISTS (SELECT 1 FROM time_accrual a WHERE a.client_id = c.id AND a.host_id = u.id)
                      OR EXISTS (SELECT 1 FROM bandwidth_accrual b WHERE b.client_id = c.id AND b.host_id = u.id)))::bigint AS unfunded
        FROM user_account u WHERE u.id = ${hostId} FOR UPDATE`;
    const earned = host.balance < host.unpaid ? host.balance : host.unpaid;
    const payable = earned - host.unfunded;
    const amount = (payable / MICROS_PER_CENT) * MICROS_PER_CENT;
    if (amount < minimum) return "CARRIED" as const;
    const status = host.destination ? ("PENDING" as const) : ("SKIPPED" as const);
    const created = await tx.payout.createMany({
      data: [
        {
          hostId,
          periodStart: period,
          amountMicros: amount,
          status,
          destination: host.destination,
          note: host.destination ? null : "payouts are not set up: finish Stripe onboarding (startPayoutOnboarding); the balance carries over",
        },
      ],
      skipDuplicates: true,
    });
    // Another run of the period got here first.
    if (created.count === 0) return "EXISTS" as const;
    if (status === "SKIPPED") return status;
    await postEntry(tx, {
      userId: hostId,
      kind: "PAYOUT",
      amountMicros: -amount,
      description: `Payout of $${formatMoney(amount)} to ${host.destination} (week of ${period.toISOString().slice(0, 10)})`,
    });
    return "OPENED" as const;
  });
  if (outcome === "SKIPPED") logger.warn({ hostId }, "payout skipped: no onboarded Stripe Connect account");
  if (outcome === "OPENED") publish("balance", hostId, { immediate: true });
  return outcome;
}

/** A transfer Stripe refused: the payout fails and its amount is credited back, once. */
async function reversePayout(payoutId: number, reason: string): Promise<void> {
  const hostId = await prisma.$transaction(async (tx) => {
    const [payout] = await tx.$queryRaw<{ hostId: number; amount: bigint }[]>`
      UPDATE payout SET status = 'FAILED', note = ${reason}, completed_at = now()
       WHERE id = ${payoutId} AND status = 'PENDING'
      RETURNING host_id AS "hostId", amount_micros AS amount`;
    if (!payout) return null;
    await postEntry(tx, {
      userId: payout.hostId,
      kind: "PAYOUT",
      amountMicros: payout.amount,
      description: `Payout of $${formatMoney(payout.amount)} returned: ${reason}`,
    });
    return payout.hostId;
  });
  if (hostId !== null) publish("balance", hostId, { immediate: true });
}

/** Where Stripe's onboarding sends the host back: done (return) or the link expired (refresh, for a new one). */
const ONBOARDING_PATH = "/account";

export interface PayoutOnboarding {
  accountId: string;
  url: string;
  expiresAt: Date;
}

/**
 * Starts (or resumes) the host's Stripe Connect onboarding: creates its Express connected account
 * on first use (idempotent per account, so concurrent calls get the same one) and returns a fresh
 * one-time account link to Stripe's hosted onboarding. Payouts go to the account once Stripe reports
 * it can receive them (connectedAccountUpdated).
 */
export async function startPayoutOnboarding(userId: number): Promise<PayoutOnboarding> {
  const user = await prisma.user.findUniqueOrThrow({ where: { id: userId }, select: { email: true, stripeConnectAccountId: true } });
  let accountId = user.stripeConnectAccountId;
  if (!accountId) {
    const account = await stripe().accounts.create(
      {
        type: "express",
        email: user.email,
        capabilities: { transfers: { requested: true } },
        metadata: { userId: String(userId) },
      },
      { idempotencyKey: `connect-account-${userId}` },
    );
    await prisma.user.updateMany({ where: { id: userId, stripeConnectAccountId: null }, data: { stripeConnectAccountId: account.id } });
    accountId = account.id;
  }
  const back = `${config().APP_URL}${ONBOARDING_PATH}`;
  const link = await stripe().accountLinks.create({
    account: accountId,
    type: "account_onboarding",
    refresh_url: `${back}?payouts=refresh`,
    return_url: `${back}?payouts=return`,
  });
  return { accountId, url: link.url, expiresAt: link.expires_at ? new Date(link.expires_at * 1000) : new Date(Date.now() + HOUR_MS) };
}

/** Stripe's account.updated: the connected account's host is paid from now on when it can receive payouts, and not while it cannot. An account not ours is ignored. */
export async function connectedAccountUpdated(account: { id: string; payouts_enabled?: boolean | null }): Promise<void> {
  const { count } = await prisma.user.updateMany({ where: { stripeConnectAccountId: account.id }, data: { payoutsEnabled: account.payouts_enabled === true } });
  if (count === 0) logger.warn({ accountId: account.id }, "account.updated for an account that is no host's: ignored");
}
