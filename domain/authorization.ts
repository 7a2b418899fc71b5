import { ApiKeyPermission } from "../prisma/generated/client/client.ts";
import { NotFoundError } from "./errors.ts";
import type { Viewer } from "./viewer.ts";

/**
 * Which key may do what. Every operation of the API names what it needs through the schema's auth
 * scopes (schema/builder.ts), and those scopes are answered here and nowhere else:
 *
 * - ACCOUNT keys act for their account with the permissions they were made with: READ (everything of
 *   the account, never changing it), INSTANCES (rent, start, stop, destroy, bid, label), BILLING
 *   (payments and billing settings), MACHINES (register and list machines), KEYS (API keys, SSH keys,
 *   password). A read-only key holds READ alone; every key holds READ.
 * - SESSION keys (from login) hold every permission and expire unless used.
 * - MACHINE keys act for one machine's agent: its assignments and reports, nothing of the account.
 * - INSTANCE keys start, stop and destroy their own instance, nothing else.
 * - Operators (an account flag set by the admin tool, api/admin.ts) verify, deverify and vet any
 *   host's machines and read what they need for it, through their ACCOUNT and SESSION keys holding
 *   the permission the operation names (READ to look, MACHINES to decide); never through MACHINE or
 *   INSTANCE keys, and never with another account's rights beyond that.
 */
export const ALL_PERMISSIONS: readonly ApiKeyPermission[] = Object.values(ApiKeyPermission);

/** What the schema's auth scopes ask of a caller. */
export interface AuthScopeAnswers {
  /** Any valid key. */
  authenticated: boolean;
  /** An account or session key holding the permission. */
  permission: (permission: ApiKeyPermission) => boolean;
  /** A machine's agent (its MACHINE key); what it may touch is then limited to its own machine. */
  agent: boolean;
  /** The given instance's own key. */
  instanceKey: (instanceId: number) => boolean;
  /** An operator's account or session key holding the permission. */
  operator: (permission: ApiKeyPermission) => boolean;
}

export function hasPermission(viewer: Viewer | null, permission: ApiKeyPermission): viewer is Viewer {
  return (viewer?.scope === "ACCOUNT" || viewer?.scope === "SESSION") && viewer.permissions.includes(permission);
}

/** An operator's account or session key holding the permission. */
export function operates(viewer: Viewer | null, permission: ApiKeyPermission): viewer is Viewer {
  return hasPermission(viewer, permission) && viewer.operator;
}

export function authScopeAnswers(viewer: Viewer | null): AuthScopeAnswers {
  return {
    authenticated: viewer !== null,
    permission: (permission) => hasPermission(viewer, permission),
    agent: viewer?.scope === "MACHINE" && viewer.machineId !== null,
    instanceKey: (instanceId) => viewer?.scope === "INSTANCE" && viewer.instanceId === instanceId,
    operator: (permission) => operates(viewer, permission),
  };
}

/** `machineId` when it is the agent's own machine; any other is NotFound, as another account's would be. */
export function agentMachine(viewer: { machineId: number }, machineId: number): number {
  if (viewer.machineId !== machineId) throw new NotFoundError("Machine");
  return machineId;
}

/** The account's own data (its User, statements, keys) is read with READ on one of its keys. */
export function readsAccount(viewer: Viewer | null, userId: number): boolean {
  return hasPermission(viewer, "READ") && viewer.userId === userId;
}

/** A machine is seen by its host's readers and by its own agent (and so are the rentals on it). */
export function seesMachine(viewer: Viewer | null, machine: { id: number; hostId: number }): boolean {
  return readsAccount(viewer, machine.hostId) || (viewer?.scope === "MACHINE" && viewer.machineId === machine.id);
}

/**
 * Every field of a machine is read by whoever sees it and by operators, who vet every machine; the
 * rentals on it stay its host's and their clients'.
 */
export function readsMachine(viewer: Viewer | null, machine: { id: number; hostId: number }): boolean {
  return seesMachine(viewer, machine) || operates(viewer, "READ");
}

/** An instance's client's readers and its own key (which controls it): who may read what only its owner wrote, such as its label. */
export function ownsInstance(viewer: Viewer | null, instance: { id: number; clientId: number }): boolean {
  return readsAccount(viewer, instance.clientId) || (viewer?.scope === "INSTANCE" && viewer.instanceId === instance.id);
}

/** An instance is seen by its owner (ownsInstance) and by the agent of its machine, which runs it. */
export function seesInstance(viewer: Viewer | null, instance: { id: number; clientId: number; machineId: number }): boolean {
  return ownsInstance(viewer, instance) || (viewer?.scope === "MACHINE" && viewer.machineId === instance.machineId);
}

/** The permissions an account key is made with: READ always, and all of them when none are named. */
export function keyPermissions(requested: readonly ApiKeyPermission[] | null | undefined): ApiKeyPermission[] {
  if (!requested?.length) return [...ALL_PERMISSIONS];
  return ALL_PERMISSIONS.filter((permission) => permission === "READ" || requested.includes(permission));
}
