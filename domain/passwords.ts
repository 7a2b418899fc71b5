import { z } from "zod";
import { config } from "../infra/config.ts";
import { prisma, type Tx } from "../infra/db.ts";
import { email as emailSchema, newPassword, type Session } from "./accounts.ts";
import { hashPassword, verifyPassword } from "./passwordHashing.ts";
import { consumeAccountToken, issueAccountToken } from "./accountTokens.ts";
import { issueSessionKey } from "./apiKeys.ts";
import { InvalidCredentialsError, InvalidTokenError } from "./errors.ts";
import { queueNotification } from "./notifications.ts";
import { parseInput } from "./validation.ts";
import { MINUTE_MS, HOUR_MS } from "./time.ts";

/*
 * Changing and resetting a password. Either one ends every session (login) key of the account, so
 * whoever knew the old password is logged out everywhere, and returns a fresh session for the
 * caller. Account keys made by their owner stay: they are revoked one by one (revokeApiKey).
 */

const changeInput = z.object({ currentPassword: z.string().min(1).max(256), newPassword });
const resetInput = z.object({ token: z.string().min(1).max(200), newPassword });
/** Reset emails one account may be sent per hour. */
const RESETS_PER_HOUR = 5;

async function replacePassword(tx: Tx, userId: number, password: string, now: Date): Promise<Session> {
  await tx.user.update({ where: { id: userId }, data: { passwordHash: await hashPassword(password) }, select: { id: true } });
  await tx.apiKey.updateMany({ where: { userId, scope: "SESSION", revokedAt: null }, data: { revokedAt: now } });
  return { userId, key: await issueSessionKey(tx, userId, "password change", now) };
}

export async function changePassword(userId: number, input: { currentPassword: string; newPassword: string }, now = new Date()): Promise<Session> {
  const { currentPassword, newPassword: password } = parseInput(changeInput, input);
  const user = await prisma.user.findUniqueOrThrow({ where: { id: userId }, select: { passwordHash: true } });
  if (!(await verifyPassword(user.passwordHash, currentPassword))) throw new InvalidCredentialsError();
  return prisma.$transaction((tx) => replacePassword(tx, userId, password, now));
}

/**
 * Mails a reset link to the address when it is an account's; answers the same either way, so the
 * answer does not tell which addresses have accounts.
 */
export async function requestPasswordReset(input: { email: string }, now = new Date()): Promise<void> {
  const { email } = parseInput(z.object({ email: emailSchema }), input);
  await prisma.$transaction(async (tx) => {
    const [user] = await tx.$queryRaw<{ id: number }[]>`SELECT id FROM user_account WHERE email = ${email} FOR UPDATE`;
    if (!user) return;
    const recent = await tx.accountToken.count({ where: { userId: user.id, kind: "PASSWORD_RESET", createdAt: { gt: new Date(now.getTime() - HOUR_MS) } } });
    if (recent >= RESETS_PER_HOUR) return;
    const minutes = config().PASSWORD_RESET_TTL_MINUTES;
    const token = await issueAccountToken(tx, { userId: user.id, kind: "PASSWORD_RESET", email, ttlMs: minutes * MINUTE_MS }, now);
    await queueNotification(tx, {
      userId: user.id,
      kind: "PASSWORD_RESET",
      subject: "Reset your password",
      body:
        `Open ${config().APP_URL}/reset-password?token=${token} to choose a new password, or send the mutation ` +
        `resetPassword(token: "${token}", newPassword: "..."). The link works once, for ${minutes} minutes. ` +
        "If you did not ask for it, ignore this email: your password stays as it is.",
    });
  });
}

/** Sets a new password with an emailed token (once, before it expires). */
export async function resetPassword(input: { token: string; newPassword: string }, now = new Date()): Promise<Session> {
  const { token, newPassword: password } = parseInput(resetInput, input);
  return prisma.$transaction(async (tx) => {
    const owner = await consumeAccountToken(tx, "PASSWORD_RESET", token, null, now);
    // A link mailed to an address the account no longer has resets nothing.
    if ((await tx.user.count({ where: { id: owner.userId, email: owner.email } })) === 0) throw new InvalidTokenError("UNKNOWN");
    return replacePassword(tx, owner.userId, password, now);
  });
}
