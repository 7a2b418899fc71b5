import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { ApiKeyPermission, type ApiKeyScope } from "../prisma/generated/client/client.ts";
import type { Tx } from "../infra/db.ts";
import { keyPermissions } from "./authorization.ts";
import { NotFoundError } from "./errors.ts";
import { MAX_INT4, parseInput } from "./validation.ts";
import type { Viewer } from "./viewer.ts";
import { DAY_MS } from "./time.ts";

const KEY_PREFIX = "gmk_";
/** lastUsedAt (and a session's expiry) is refreshed at most this often, so authenticating stays a read on most requests. */
const LAST_USED_PRECISION_MS = 60_000;
/** A session key expires this long after its last use. */
export const SESSION_TTL_MS = 30 * DAY_MS;

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
  input: {
    userId: number;
    name: string;
    scope: ApiKeyScope;
    machineId?: number;
    instanceId?: number;
    permissions?: ApiKeyPermission[];
    expiresAt?: Date | null;
  },
): Promise<IssuedKey> {
  const { token, prefix, hash } = newApiKeySecret();
  const key = await db.apiKey.create({
    data: {
      userId: input.userId,
      name: input.name,
      scope: input.scope,
      machineId: input.machineId ?? null,
      instanceId: input.instanceId ?? null,
      permissions: input.permissions ?? keyPermissions(null),
      expiresAt: input.expiresAt ?? null,
      prefix,
      hash,
    },
    select: { id: true },
  });
  return { id: key.id, token };
}

/** A new session key for a password just checked: every permission, expiring unless used. */
export function issueSessionKey(db: Tx, userId: number, name: string, now = new Date()): Promise<IssuedKey> {
  return issueApiKey(db, { userId, name, scope: "SESSION", expiresAt: new Date(now.getTime() + SESSION_TTL_MS) });
}

/** The keys that no longer authenticate anything at `now`. */
export function refusedKeysWhere(now: Date) {
  return { OR: [{ revokedAt: { not: null } }, { expiresAt: { lte: now } }] };
}

type AuthenticatedKey = Omit<Viewer, "keyId"> & { id: number; revokedAt: Date | null; expiresAt: Date | null; lastUsedAt: Date | null };

/**
 * The viewer for a bearer token, or null when the key is unknown, revoked or expired. Using a
 * session key moves its expiry forward (to the minute).
 */
export async function authenticateApiKey(db: Tx, token: string, now = new Date()): Promise<Viewer | null> {
  if (!token.startsWith(KEY_PREFIX) || token.length > 128) return null;
  // One statement with the owner's operator flag: this runs on every authenticated request.
  const [key] = await db.$queryRaw<AuthenticatedKey[]>`
    SELECT k.id, k.user_id AS "userId", k.scope::text AS scope, k.machine_id AS "machineId", k.instance_id AS "instanceId",
           k.permissions::text[] AS permissions, k.revoked_at AS "revokedAt", k.expires_at AS "expiresAt",
           k.last_used_at AS "lastUsedAt", u.operator
      FROM api_key k JOIN user_account u ON u.id = k.user_id
     WHERE k.hash = ${hashApiKey(token)}`;
  if (!key || key.revokedAt || (key.expiresAt && key.expiresAt <= now)) return null;
  if (!key.lastUsedAt || now.getTime() - key.lastUsedAt.getTime() > LAST_USED_PRECISION_MS) {
    const expiresAt = key.scope === "SESSION" ? new Date(now.getTime() + SESSION_TTL_MS) : undefined;
    await db.apiKey.update({ where: { id: key.id }, data: { lastUsedAt: now, expiresAt }, select: { id: true } });
  }
  return {
    userId: key.userId,
    keyId: key.id,
    scope: key.scope,
    machineId: key.machineId,
    instanceId: key.instanceId,
    permissions: key.permissions,
    operator: key.operator,
  };
}

const createInput = z.object({
  name: z.string().trim().min(1).max(100),
  permissions: z.array(z.enum(ApiKeyPermission)).max(10).nullish(),
  expiresAt: z
    .date()
    .refine((date) => date.getTime() > Date.now(), "must be in the future")
    .nullish(),
});

/**
 * A new account key for the user, with the permissions named (all of them when none are; READ
 * always) and an optional expiry. Machine, instance and session keys are issued by their own services.
 */
export async function createAccountApiKey(
  db: Tx,
  userId: number,
  input: { name: string; permissions?: ApiKeyPermission[] | null; expiresAt?: Date | null },
): Promise<IssuedKey> {
  const { name, permissions, expiresAt } = parseInput(createInput, input);
  return issueApiKey(db, { userId, name, scope: "ACCOUNT", permissions: keyPermissions(permissions), expiresAt });
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
