import { createHash, randomBytes } from "node:crypto";
import type { Tx } from "../infra/db.ts";
import type { AccountTokenKind } from "../prisma/generated/client/client.ts";
import { InvalidTokenError } from "./errors.ts";

/*
 * One-time tokens mailed to an address: an account's (email verification, password reset), or one
 * that has no account yet (a signup link, carrying the chosen password's hash). The token
 * is 256 random bits shown only in the email; the database keeps its SHA-256, the address it was
 * mailed to and its expiry. Using one marks it used in the transaction of what it allows.
 */

const TOKEN_PREFIX = "gmt_";

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A new token of `kind` for the account's current address (or, for SIGNUP, for an address and password hash), in the caller's transaction. */
export async function issueAccountToken(
  tx: Tx,
  input: { kind: AccountTokenKind; email: string; ttlMs: number } & ({ userId: number } | { passwordHash: string }),
  now = new Date(),
): Promise<string> {
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const owner = "userId" in input ? { userId: input.userId } : { passwordHash: input.passwordHash };
  await tx.accountToken.create({
    data: { ...owner, kind: input.kind, email: input.email, hash: hashToken(token), expiresAt: new Date(now.getTime() + input.ttlMs) },
    select: { id: true },
  });
  return token;
}

/**
 * Marks the token used and returns the row; InvalidTokenError when it is unknown (or of another
 * kind, or not `userId`'s when one is given), used or expired. The conditional UPDATE lets only one
 * of concurrent uses through.
 */
async function consumeToken(tx: Tx, kind: AccountTokenKind, token: string, userId: number | null, now: Date) {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 128) throw new InvalidTokenError("UNKNOWN");
  const row = await tx.accountToken.findUnique({ where: { hash: hashToken(token) } });
  if (!row || row.kind !== kind || (userId !== null && row.userId !== userId)) throw new InvalidTokenError("UNKNOWN");
  if (row.usedAt) throw new InvalidTokenError("USED");
  if (row.expiresAt <= now) throw new InvalidTokenError("EXPIRED");
  const { count } = await tx.accountToken.updateMany({ where: { id: row.id, usedAt: null }, data: { usedAt: now } });
  if (count === 0) throw new InvalidTokenError("USED");
  return row;
}

/** Uses an account's token (see consumeToken) and returns its account and address. */
export async function consumeAccountToken(
  tx: Tx,
  kind: Exclude<AccountTokenKind, "SIGNUP">,
  token: string,
  userId: number | null,
  now = new Date(),
): Promise<{ userId: number; email: string }> {
  const row = await consumeToken(tx, kind, token, userId, now);
  // The database holds every token but a signup link to an account.
  if (row.userId === null) throw new InvalidTokenError("UNKNOWN");
  return { userId: row.userId, email: row.email };
}

/** Uses a signup link (see consumeToken) and returns the address it was mailed to and the password hash chosen. */
export async function consumeSignupToken(tx: Tx, token: string, now = new Date()): Promise<{ email: string; passwordHash: string }> {
  const row = await consumeToken(tx, "SIGNUP", token, null, now);
  if (row.passwordHash === null) throw new InvalidTokenError("UNKNOWN");
  return { email: row.email, passwordHash: row.passwordHash };
}
