import { randomBytes } from "node:crypto";
import { z } from "zod";
import { isUniqueViolation, prisma } from "../infra/db.ts";
import { type IssuedKey, issueApiKey, issueSessionKey } from "./apiKeys.ts";
import { ConflictError, InvalidCredentialsError } from "./errors.ts";
import { consumeLoginAttempt, consumeSignup, recordLoginOutcome, rememberAddress } from "./rateLimit.ts";
import { hashPassword, inHashingSlot } from "./passwordHashing.ts";
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

/** Creates an account and its first key. Rate-limited per client address, after validation. */
export async function signup(input: { email: string; password: string }, clientIp: string): Promise<Session> {
  const account = parseInput(signupInput, input);
  await consumeSignup(clientIp);
  const session = await createAccount(account);
  await rememberAddress(account.email, clientIp);
  return session;
}

/** An account and its first key from valid input, without the rate limit (the demo accounts). */
export async function createAccount({ email, password }: { email: string; password: string }): Promise<Session> {
  // Checked before hashing so that duplicates cost no hashing work; the unique index settles races.
  if (await prisma.user.findUnique({ where: { email }, select: { id: true } })) throw duplicateEmail();
  const passwordHash = await hashPassword(password);
  try {
    return await prisma.$transaction(async (tx) => {
      const user = await tx.user.create({ data: { email, passwordHash }, select: { id: true } });
      const key = await issueApiKey(tx, { userId: user.id, name: "signup", scope: "ACCOUNT" });
      return { userId: user.id, key };
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
