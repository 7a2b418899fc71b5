import type { ApiKeyScope } from "../prisma/generated/client/client.ts";

/** Who is calling: the account behind an API key and what that key is limited to. */
export interface Viewer {
  userId: number;
  keyId: number;
  scope: ApiKeyScope;
  /** Set for MACHINE keys: the one machine whose agent holds the key. */
  machineId: number | null;
  /** Set for INSTANCE keys: the one instance whose container holds the key. */
  instanceId: number | null;
}
