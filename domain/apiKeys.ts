import { createHash, randomBytes } from "node:crypto";
import type { ApiKeyScope } from "../prisma/generated/client/client.ts";
import type { Tx } from "../infra/db.ts";
import type { Viewer } from "./viewer.ts";

const KEY_PREFIX = "gmk_";

export function hashApiKey(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export interface IssuedKey {
  id: number;
  /** The secret itself: returned once, only its hash is stored. */
  token: string;
}

export async function issueApiKey(
  db: Tx,
  input: { userId: number; name: string; scope: ApiKeyScope; machineId?: number; instanceId?: number },
): Promise<IssuedKey> {
  const token = KEY_PREFIX + randomBytes(32).toString("base64url");
  const key = await db.apiKey.create({
    data: {
      userId: input.userId,
      name: input.name,
      scope: input.scope,
      machineId: input.machineId ?? null,
      instanceId: input.instanceId ?? null,
      prefix: token.slice(0, KEY_PREFIX.length + 6),
      hash: hashApiKey(token),
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
    select: { id: true, userId: true, scope: true, machineId: true, instanceId: true, revokedAt: true },
  });
  if (!key || key.revokedAt) return null;
  return { userId: key.userId, keyId: key.id, scope: key.scope, machineId: key.machineId, instanceId: key.instanceId };
}
