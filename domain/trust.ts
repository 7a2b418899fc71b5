import { config } from "../infra/config.ts";
import { prisma, type Tx } from "../infra/db.ts";
import { publish } from "../infra/pubsub.ts";
import { consumeAccountToken, issueAccountToken } from "./accountTokens.ts";
import { postEntry } from "./billing/ledger.ts";
import { ConflictError, InvalidTokenError, NotFoundError, RateLimitedError } from "./errors.ts";
import { formatMoney } from "./money.ts";
import { queueNotification } from "./notifications.ts";
import { HOUR_MS } from "./time.ts";

/*
 * What makes an account trusted, as the reference does it: a verified email and a verified card.
 * Once both are, the account receives a small free test credit, once: never twice for one account,
 * one card (its Stripe fingerprint) or one mailbox. The spend rate limit rises with them
 * (domain/billing/spendLimit.ts).
 */

/** Verification emails one account may ask for per hour. */
const VERIFICATION_EMAILS_PER_HOUR = 5;

/**
 * Mails a one-time link to the account's address (through the notification outbox, so it goes out
 * by the SMTP settings of every other email). An address already verified gets none (ConflictError).
 */
export async function requestEmailVerification(userId: number, now = new Date()): Promise<{ email: string }> {
  return prisma.$transaction(async (tx) => {
    // The account row is locked so that concurrent requests count against the hourly budget in turn.
    const [user] = await tx.$queryRaw<{ email: string; emailVerified: boolean }[]>`
      SELECT email, email_verified AS "emailVerified" FROM user_account WHERE id = ${userId} FOR UPDATE`;
    if (!user) throw new NotFoundError("User");
    if (user.emailVerified) throw new ConflictError("The email address is already verified");
    const recent = await tx.accountToken.count({
      where: { userId, kind: "EMAIL_VERIFICATION", createdAt: { gt: new Date(now.getTime() - HOUR_MS) } },
    });
    if (recent >= VERIFICATION_EMAILS_PER_HOUR) throw new RateLimitedError(3600);
    const ttlMs = config().EMAIL_VERIFICATION_TTL_HOURS * HOUR_MS;
    const token = await issueAccountToken(tx, { userId, kind: "EMAIL_VERIFICATION", email: user.email, ttlMs }, now);
    await queueNotification(tx, {
      userId,
      kind: "EMAIL_VERIFICATION",
      subject: "Verify your email address",
      body:
        `Open ${config().APP_URL}/verify-email?token=${token} to verify ${user.email}, ` +
        `or send the mutation verifyEmail(token: "${token}"). The link works once, for ${config().EMAIL_VERIFICATION_TTL_HOURS} hours.`,
    });
    return { email: user.email };
  });
}

/**
 * Marks the address the token was mailed to as verified. The token alone proves the mailbox; a
 * caller presenting another account's key gets InvalidTokenError, as for a token of an address the
 * account no longer has. May grant the test credit.
 */
export async function verifyEmail(
  token: string,
  callerUserId: number | null,
  now = new Date(),
): Promise<{ email: string; testCreditMicros: bigint | null }> {
  const { userId, email, credited } = await prisma.$transaction(async (tx) => {
    const owner = await consumeAccountToken(tx, "EMAIL_VERIFICATION", token, callerUserId, now);
    const { count } = await tx.user.updateMany({ where: { id: owner.userId, email: owner.email }, data: { emailVerified: true } });
    if (count === 0) throw new InvalidTokenError("UNKNOWN");
    return { ...owner, credited: await grantTestCredit(tx, owner.userId) };
  });
  if (credited) publish("balance", userId, { immediate: true });
  return { email, testCreditMicros: credited };
}

export interface VerifiedCard {
  paymentMethodId: string;
  label: string;
  fingerprint: string;
}

/**
 * Stripe confirmed a card of the account's (a set-up or paid Checkout Session): it is kept for
 * off-session charges and counts as verified. In the caller's transaction; returns the test credit
 * it granted, if any (the caller publishes the balance after commit).
 */
export async function recordVerifiedCard(tx: Tx, userId: number, card: VerifiedCard, now = new Date()): Promise<bigint | null> {
  await tx.user.update({
    where: { id: userId },
    data: { stripePaymentMethodId: card.paymentMethodId, savedCardLabel: card.label, cardFingerprint: card.fingerprint, cardVerifiedAt: now },
    select: { id: true },
  });
  return grantTestCredit(tx, userId);
}

/** The mailbox behind an address: "Ann.Lee+gpu@x.com" and "ann.lee@x.com" are one person's. */
export function mailboxOf(email: string): string {
  const [local, domain] = email.toLowerCase().split("@");
  return `${local.split("+")[0]}@${domain}`;
}

/**
 * The free test credit, when the account's email and card are both verified and neither the
 * account, its card nor its mailbox had one: the unique indexes of test_credit decide, so
 * concurrent verifications grant it once. Returns the amount credited, or null.
 */
async function grantTestCredit(tx: Tx, userId: number): Promise<bigint | null> {
  const amount = BigInt(config().TEST_CREDIT_MICROS);
  if (amount === 0n) return null;
  const user = await tx.user.findUniqueOrThrow({ where: { id: userId }, select: { email: true, emailVerified: true, cardFingerprint: true } });
  if (!user.emailVerified || !user.cardFingerprint) return null;
  const granted = await tx.$queryRaw<{ id: number }[]>`
    INSERT INTO test_credit (user_id, card_fingerprint, mailbox, amount_micros)
    VALUES (${userId}, ${user.cardFingerprint}, ${mailboxOf(user.email)}, ${amount})
    ON CONFLICT DO NOTHING RETURNING id`;
  if (granted.length === 0) return null;
  await postEntry(tx, { userId, kind: "ADJUSTMENT", amountMicros: amount, description: `Free test credit of $${formatMoney(amount)} (email and card verified)` });
  return amount;
}

export interface TestCreditStatus {
  /** GRANTED; WAITING for the email or card to be verified; REFUSED: the card or mailbox had one already (or it is off). */
  status: "GRANTED" | "WAITING" | "REFUSED";
  amountMicros: bigint | null;
  message: string;
}

/** Where the account stands with its free test credit. */
export async function testCreditStatus(userId: number): Promise<TestCreditStatus> {
  const user = await prisma.user.findUniqueOrThrow({
    where: { id: userId },
    select: { emailVerified: true, cardVerifiedAt: true, testCredit: { select: { amountMicros: true } } },
  });
  if (user.testCredit) return { status: "GRANTED", amountMicros: user.testCredit.amountMicros, message: "Granted" };
  const amount = BigInt(config().TEST_CREDIT_MICROS);
  if (amount === 0n) return { status: "REFUSED", amountMicros: null, message: "This server gives no test credit" };
  const missing = [user.emailVerified ? null : "the email", user.cardVerifiedAt ? null : "a card"].filter(Boolean);
  if (missing.length) return { status: "WAITING", amountMicros: amount, message: `Verify ${missing.join(" and ")} to receive it` };
  return { status: "REFUSED", amountMicros: null, message: "The card or the email address received a test credit already" };
}
