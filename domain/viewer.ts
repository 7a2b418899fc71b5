import type { ApiKeyPermission, ApiKeyScope } from "../prisma/generated/client/client.ts";

/** Who is calling: the account behind an API key and what that key is limited to. */
export interface Viewer {
  userId: number;
  keyId: number;
  scope: ApiKeyScope;
  /** Set for MACHINE keys: the one machine whose agent holds the key. */
  machineId: number | null;
  /** Set for INSTANCE keys: the one instance whose container holds the key. */
  instanceId: number | null;
  /** What an ACCOUNT or SESSION key may do for the account (domain/authorization.ts). */
  permissions: ApiKeyPermission[];
  /** The account is an operator; only its ACCOUNT and SESSION keys act as one (domain/authorization.ts). */
  operator: boolean;
}
