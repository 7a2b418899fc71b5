import { config } from "../../infra/config.ts";
import type { Tx } from "../../infra/db.ts";
import { Prisma } from "../../prisma/generated/client/client.ts";
import { AppError, NotFoundError } from "../errors.ts";
import { formatMoney } from "../money.ts";
import { DAY_MS } from "../time.ts";

/*
 * Spend rate limit: what an account's rentals may cost per hour in total, counting every instance
 * that wants to run (SCHEDULING, LOADING, RUNNING, PAUSED) at its GPU rate (on-demand price or bid,
 * times GPUs) plus its storage rate (GB-month price × GB / 720 hours). It rises by tiers:
 *
 * - NEW, email not verified: SPEND_LIMIT_MICROS_PER_HOUR (default $5/hr);
 * - EMAIL_VERIFIED: 4 times that ($20/hr);
 * - CARD_VERIFIED, email and a card verified: SPEND_LIMIT_CARD_MICROS_PER_HOUR ($100/hr);
 * - ESTABLISHED, verified email and card, an account SPEND_LIMIT_ESTABLISHED_DAYS (30) old that has
 *   paid SPEND_LIMIT_ESTABLISHED_PAID_MICROS ($50) in total: no limit.
 */

export type SpendTier = "NEW" | "EMAIL_VERIFIED" | "CARD_VERIFIED" | "ESTABLISHED";

/** What the tiers look at. */
export interface TrustFacts {
  emailVerified: boolean;
  cardVerified: boolean;
  createdAt: Date;
  /** Card payments credited so far, in µ$. */
  paidMicros: bigint;
}

export class SpendRateLimitError extends AppError {
  constructor(
    readonly limitMicrosPerHour: bigint,
    readonly currentMicrosPerHour: bigint,
    readonly requestedMicrosPerHour: bigint,
  ) {
    super(
      `This rental ($${formatMoney(requestedMicrosPerHour)}/hr) would take the account's rentals over its limit of $${formatMoney(limitMicrosPerHour)}/hr ` +
        `($${formatMoney(currentMicrosPerHour)}/hr already); verifying the email and a card, account age and payments raise it (see spendLimit)`,
      "SPEND_RATE_LIMIT",
    );
  }
}

const VERIFIED_FACTOR = 4n;

function ageDays(facts: TrustFacts, now: Date): number {
  return Math.floor((now.getTime() - facts.createdAt.getTime()) / DAY_MS);
}

export function spendTier(facts: TrustFacts, now = new Date()): SpendTier {
  const { SPEND_LIMIT_ESTABLISHED_DAYS, SPEND_LIMIT_ESTABLISHED_PAID_MICROS } = config();
  if (!facts.emailVerified) return "NEW";
  if (!facts.cardVerified) return "EMAIL_VERIFIED";
  if (ageDays(facts, now) >= SPEND_LIMIT_ESTABLISHED_DAYS && facts.paidMicros >= BigInt(SPEND_LIMIT_ESTABLISHED_PAID_MICROS)) return "ESTABLISHED";
  return "CARD_VERIFIED";
}

/** The tier's limit in µ$ per hour, or null for none. */
export function tierLimitMicrosPerHour(tier: SpendTier): bigint | null {
  const base = BigInt(config().SPEND_LIMIT_MICROS_PER_HOUR);
  switch (tier) {
    case "NEW":
      return base;
    case "EMAIL_VERIFIED":
      return base * VERIFIED_FACTOR;
    case "CARD_VERIFIED":
      return BigInt(config().SPEND_LIMIT_CARD_MICROS_PER_HOUR);
    case "ESTABLISHED":
      return null;
  }
}

/** The account's limit in µ$ per hour, or null when it has none. */
export function spendLimitMicrosPerHour(facts: TrustFacts, now = new Date()): bigint | null {
  return tierLimitMicrosPerHour(spendTier(facts, now));
}

/** The next tier up and what the account still lacks for it; null at the top. */
export function nextTier(facts: TrustFacts, now = new Date()): { tier: SpendTier; requirements: string[] } | null {
  const { SPEND_LIMIT_ESTABLISHED_DAYS, SPEND_LIMIT_ESTABLISHED_PAID_MICROS } = config();
  switch (spendTier(facts, now)) {
    case "NEW":
      return { tier: "EMAIL_VERIFIED", requirements: ["verify the email address (requestEmailVerification, then verifyEmail)"] };
    case "EMAIL_VERIFIED":
      return { tier: "CARD_VERIFIED", requirements: ["verify a card (addCard, or addCredit with saveCard)"] };
    case "CARD_VERIFIED": {
      const requirements: string[] = [];
      const days = ageDays(facts, now);
      if (days < SPEND_LIMIT_ESTABLISHED_DAYS) requirements.push(`an account ${SPEND_LIMIT_ESTABLISHED_DAYS} days old (${SPEND_LIMIT_ESTABLISHED_DAYS - days} to go)`);
      const paid = BigInt(SPEND_LIMIT_ESTABLISHED_PAID_MICROS);
      if (facts.paidMicros < paid) requirements.push(`$${formatMoney(paid)} paid in total ($${formatMoney(paid - facts.paidMicros)} to go)`);
      return { tier: "ESTABLISHED", requirements };
    }
    case "ESTABLISHED":
      return null;
  }
}

/** The columns of TrustFacts, over the user_account row aliased `u`. */
export const TRUST_FACTS_COLUMNS = Prisma.sql`email_verified AS "emailVerified", card_verified_at IS NOT NULL AS "cardVerified", u.created_at AS "createdAt",
  (SELECT coalesce(sum(amount_micros), 0) FROM payment WHERE user_id = u.id AND status = 'SUCCEEDED')::bigint AS "paidMicros"`;

async function trustFacts(db: Tx, userId: number): Promise<TrustFacts | undefined> {
  const [facts] = await db.$queryRaw<TrustFacts[]>`SELECT ${TRUST_FACTS_COLUMNS} FROM user_account u WHERE id = ${userId}`;
  return facts;
}

/** What the account's rentals that want to run cost per hour now, in µ$. */
async function currentSpendMicrosPerHour(tx: Tx, userId: number): Promise<bigint> {
  const [{ current }] = await tx.$queryRaw<{ current: bigint }[]>`
    SELECT coalesce(sum(CASE WHEN kind = 'ON_DEMAND' THEN price_per_gpu_hour_micros ELSE bid_per_gpu_hour_micros END * num_gpus
                        + storage_price_per_gb_month_micros * disk_gb / 720), 0)::bigint AS current
      FROM instance WHERE client_id = ${userId} AND intended_status = 'RUNNING'`;
  return current;
}

export interface SpendLimitView {
  tier: SpendTier;
  limitMicrosPerHour: bigint | null;
  currentMicrosPerHour: bigint;
  next: { tier: SpendTier; limitMicrosPerHour: bigint | null; requirements: string[] } | null;
}

/** The account's tier, its limit, what its rentals cost now, and what raises the limit. */
export async function spendLimitOf(db: Tx, userId: number, now = new Date()): Promise<SpendLimitView> {
  const facts = await trustFacts(db, userId);
  if (!facts) throw new NotFoundError("User");
  const tier = spendTier(facts, now);
  const next = nextTier(facts, now);
  return {
    tier,
    limitMicrosPerHour: tierLimitMicrosPerHour(tier),
    currentMicrosPerHour: await currentSpendMicrosPerHour(db, userId),
    next: next && { ...next, limitMicrosPerHour: tierLimitMicrosPerHour(next.tier) },
  };
}

/** µ$ per hour of one rental: GPUs at its price or bid, plus its disk. */
export function rentalMicrosPerHour(rental: { numGpus: number; gpuPriceMicros: bigint; diskGb: number; storagePricePerGbMonthMicros: bigint }): bigint {
  return rental.gpuPriceMicros * BigInt(rental.numGpus) + (rental.storagePricePerGbMonthMicros * BigInt(rental.diskGb)) / 720n;
}

/**
 * Throws SpendRateLimitError when a new rental of `requested` µ$/hr would take the account over its
 * limit. Call it in the transaction that creates the rental, with the account row locked and its
 * facts read under the lock (TRUST_FACTS_COLUMNS), so that concurrent rentals of one account are
 * counted one after the other.
 */
export async function checkSpendRate(tx: Tx, userId: number, facts: TrustFacts, requested: bigint, now = new Date()): Promise<void> {
  const limit = spendLimitMicrosPerHour(facts, now);
  if (limit === null) return;
  const current = await currentSpendMicrosPerHour(tx, userId);
  if (current + requested > limit) throw new SpendRateLimitError(limit, current, requested);
}
