import { randomBytes } from "node:crypto";
import { z } from "zod";
import { config } from "../infra/config.ts";
import { isUniqueViolation, prisma, type Tx } from "../infra/db.ts";
import { consumeSignupToken, issueAccountToken } from "./accountTokens.ts";
import { type IssuedKey, issueApiKey, issueSessionKey } from "./apiKeys.ts";
import { ConflictError, InvalidCredentialsError } from "./errors.ts";
import { consumeLoginAttempt, consumeSignup, recordLoginOutcome, rememberAddress } from "./rateLimit.ts";
import { hashPassword, inHashingSlot } from "./passwordHashing.ts";
import { queueEmailTo } from "./notifications.ts";
import { HOUR_MS } from "./time.ts";
import { parseInput } from "./validation.ts";

export const email = z.string().trim().toLowerCase().max(254).pipe(z.email());
/** What signup, a password change and a reset accept as a new password. */
export const newPassword = z.string().min(8).max(256);
const signupInput = z.object({ email, password: newPassword });
// Every stored password met the signup rules; login only bounds the hashing work one attempt can cause.
const loginInput = z.object({ email, password: z.string().min(1).max(256) });

/** A signed-up account with its first full-account key, or a logged-in one with its session key. */
export interface Session {
  userId: number;
  key: IssuedKey;
}

/** What signup answers, whether or not the address has an account: the email on its way there. */
export interface SignupStarted {
  email: string;
}

/** Signup emails (links, or notices to an existing account) one address is sent per hour; beyond, signup answers the same and mails nothing. */
const SIGNUP_MAILS_PER_HOUR = 3;

/**
 * Starts a signup: mails the address a link (token) that completeSignup turns into the account and
 * its first key; when the address has an account already, mails its owner a notice instead. The
 * answer is the same either way and costs the same work (the password is hashed in both), so signup
 * does not tell which addresses have accounts; the account exists only once its mailbox is proven.
 * Rate-limited per client address, after validation.
 */
export async function signup(input: { email: string; password: string }, clientIp: string, now = new Date()): Promise<SignupStarted> {
  const { email, password } = parseInput(signupInput, input);
  await consumeSignup(clientIp);
  const passwordHash = await hashPassword(password);
  const { APP_URL, EMAIL_VERIFICATION_TTL_HOURS } = config();
  await prisma.$transaction(async (tx) => {
    const owner = await tx.user.findUnique({ where: { email }, select: { id: true } });
    const mailed = await tx.notificationOutbox.count({
      where: { recipient: email, kind: { in: ["SIGNUP_LINK", "SIGNUP_ATTEMPT"] }, createdAt: { gt: new Date(now.getTime() - HOUR_MS) } },
    });
    if (mailed >= SIGNUP_MAILS_PER_HOUR) return;
    if (owner) {
      await queueEmailTo(tx, email, {
        userId: owner.id,
        kind: "SIGNUP_ATTEMPT",
        subject: "Someone tried to sign up with your address",
        body:
          `Someone tried to create an account with this address, which has one already. If it was you, log in at ${APP_URL}/login, ` +
          `or choose a new password at ${APP_URL}/reset-password. If it was not you, ignore this email: nothing changed.`,
      });
      return;
    }
    const token = await issueAccountToken(tx, { kind: "SIGNUP", email, passwordHash, ttlMs: EMAIL_VERIFICATION_TTL_HOURS * HOUR_MS }, now);
    await queueEmailTo(tx, email, {
      kind: "SIGNUP_LINK",
      subject: "Finish creating your account",
      body:
        `Open ${APP_URL}/complete-signup?token=${token} to create your account, or send the mutation completeSignup(token: "${token}"). ` +
        `The link works once, for ${EMAIL_VERIFICATION_TTL_HOURS} hours. If you did not sign up, ignore this email: no account is created.`,
    });
  });
  return { email };
}

/**
 * Creates the account a signup link was mailed for (its address verified: the link proves the
 * mailbox) with the password chosen at signup, and returns its first key. The address the link was
 * opened from becomes one the account is known at (rateLimit.ts).
 */
export async function completeSignup(input: { token: string }, clientIp: string, now = new Date()): Promise<Session> {
  const { token } = parseInput(z.object({ token: z.string().min(1).max(200) }), input);
  const { session, email } = await insertAccount(async (tx) => ({ ...(await consumeSignupToken(tx, token, now)), emailVerified: true }));
  await rememberAddress(email, clientIp);
  return session;
}

/** An account and its first key from valid input, without the rate limit or the mailed link (the demo accounts). */
export async function createAccount({ email, password }: { email: string; password: string }): Promise<Session> {
  // Checked before hashing so that duplicates cost no hashing work; the unique index settles races.
  if (await prisma.user.findUnique({ where: { email }, select: { id: true } })) throw duplicateEmail();
  const passwordHash = await hashPassword(password);
  return (await insertAccount(async () => ({ email, passwordHash, emailVerified: false }))).session;
}

/** Creates the account `account` gives, in one transaction with it, and its first full-account key. */
async function insertAccount(account: (tx: Tx) => Promise<{ email: string; passwordHash: string; emailVerified: boolean }>): Promise<{ session: Session; email: string }> {
  try {
    return await prisma.$transaction(async (tx) => {
      const data = await account(tx);
      const user = await tx.user.create({ data, select: { id: true } });
      const key = await issueApiKey(tx, { userId: user.id, name: "signup", scope: "ACCOUNT" });
      return { session: { userId: user.id, key }, email: data.email };
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw duplicateEmail();
    throw error;
  }
}

function duplicateEmail(): ConflictError {
  return new ConflictError("An account with this email already exists");
}

let dummyHash: Promise<string> | undefined;

/**
 * Checks the password and issues a session key (every permission, expiring 30 days after its last use). The whole check runs in
 * one hashing slot (passwordHashing.ts): while the line is full a login is refused at once, counted against nobody. Rate-limited
 * per client address, and per email for addresses the account has not used, before any hashing (rateLimit.ts). An unknown email
 * costs the same argon2 verification as a known one (against a hash of a random secret), so response times do not reveal which
 * accounts exist.
 */
export async function login(input: { email: string; password: string }, clientIp: string): Promise<Session> {
  const { email, password } = parseInput(loginInput, input);
  const user = await inHashingSlot(async (argon2) => {
    await consumeLoginAttempt(email, clientIp);
    const found = await prisma.user.findUnique({ where: { email }, select: { id: true, passwordHash: true } });
    dummyHash ??= argon2.hash(randomBytes(32).toString("base64"));
    const valid = await argon2.verify(found?.passwordHash ?? (await dummyHash), password);
    await recordLoginOutcome(email, clientIp, Boolean(found && valid));
    return valid ? found : null;
  });
  if (!user) throw new InvalidCredentialsError();
  const key = await issueSessionKey(prisma, user.id, "login");
  return { userId: user.id, key };
}
