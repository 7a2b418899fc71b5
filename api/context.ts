import { authenticateApiKey } from "../domain/apiKeys.ts";
import type { Viewer } from "../domain/viewer.ts";
import { prisma } from "../infra/db.ts";

export interface Context {
  viewer: Viewer | null;
  /** Client address, for rate limits. */
  clientIp: string;
  /** The API's origin as the client reached it ("http://host:port"): links to the API's own routes. */
  origin: string;
}

export function bearerToken(authorization: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization?.trim() ?? "");
  return match ? match[1] : null;
}

/**
 * One auth function for both transports: HTTP passes the Authorization header, graphql-ws the
 * `authorization` connection parameter. A present but unknown key is an error, not anonymity.
 */
export async function resolveViewer(authorization: string | null | undefined): Promise<Viewer | null | "invalid"> {
  if (!authorization) return null;
  const token = bearerToken(authorization);
  if (!token) return "invalid";
  return (await authenticateApiKey(prisma, token)) ?? "invalid";
}

