import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import type { ApiKeyScope } from "../prisma/generated/client/client.ts";
import type { Tx } from "../infra/db.ts";
import { NotFoundError } from "./errors.ts";
import { MAX_INT4, parseInput } from "./validation.ts";
import type { Viewer } from "./viewer.ts";

const KEY_PREFIX = "gmk_";
/** lastUsedAt is refreshed at most this often, so authenticating stays a read on most requests. */
const LAST_USED_PRECISION_MS = 60_000;

/** A database id as the API takes it: a positive 32-bit integer. */
export const recordId = z.number().int().positive().max(MAX_INT4);

export function hashApiKey(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export interface IssuedKey {
  id: number;
  /** The secret itself: returned once, only its hash is stored. */
  token: string;
}

/** A fresh secret and the columns stored for it, for callers that insert the key row themselves. */
export function newApiKeySecret(): { token: string; prefix: string; hash: string } {
  const token = KEY_PREFIX + randomBytes(32).toString("base64url");
  return { token, prefix: token.slice(0, KEY_PREFIX.length + 6), hash: hashApiKey(token) };
}

export async function issueApiKey(
  db: Tx,
  input: { userId: number; name: string; scope: ApiKeyScope; machineId?: number; instanceId?: number },
): Promise<IssuedKey> {
  const { token, prefix, hash } = newApiKeySecret();
  const key = await db.apiKey.create({
    data: {
      userId: input.userId,
      name: input.name,
      scope: input.scope,
      machineId: input.machineId ?? null,
      instanceId: input.instanceId ?? null,
      prefix,
      hash,
    },
    select: { id: true },
  });
  return { id: key.id, token };
}

/** The viewer for a bearer token, or null when the key is unknown or revoked. */
export async function authenticateApiKey(db: Tx, token: string): Promise<Viewer | null> {
  if (!token.startsWith(KEY_PREFIX) || token.length > 128) return null;
  const key = await db.apiKey.findUnique({
    where: { hash: hashApiKey(token) },
    select: { id: true, userId: true, scope: true, machineId: true, instanceId: true, revokedAt: true, lastUsedAt: true },
  });
  if (!key || key.revokedAt) return null;
  const now = new Date();
  if (!key.lastUsedAt || now.getTime() - key.lastUsedAt.getTime() > LAST_USED_PRECISION_MS) {
    await db.apiKey.update({ where: { id: key.id }, data: { lastUsedAt: now }, select: { id: true } });
  }
  return { userId: key.userId, keyId: key.id, scope: key.scope, machineId: key.machineId, instanceId: key.instanceId };
}

const createInput = z.object({ name: z.string().trim().min(1).max(100) });

/** A new full-account key for the user; machine and instance keys are issued by their own services. */
export async function createAccountApiKey(db: Tx, userId: number, input: { name: string }): Promise<IssuedKey> {
  const { name } = parseInput(createInput, input);
  return issueApiKey(db, { userId, name, scope: "ACCOUNT" });
}

/**
 * Revokes one of the user's keys (any scope); it stops authenticating on the next request.
 * Revoking an already revoked key keeps its first revocation time. Another account's key is NotFound.
 */
export async function revokeApiKey(db: Tx, userId: number, id: number): Promise<void> {
  parseInput(z.object({ id: recordId }), { id });
  const { count } = await db.apiKey.updateMany({
    where: { id, userId, revokedAt: null },
    data: { revokedAt: new Date() },
  });
  if (count === 0 && (await db.apiKey.count({ where: { id, userId } })) === 0) throw new NotFoundError("ApiKey");
}
