import { createAccountApiKey, refusedKeysWhere, revokeApiKey } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { ApiKeyPermission, ApiKeyScope } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { describedValues } from "./enumValues.ts";
import { globalId, localId } from "./ids.ts";
import { selection } from "./selection.ts";

const ApiKeyScopeEnum = builder.enumType("ApiKeyScope", {
  description: "What a key acts for.",
  values: describedValues(ApiKeyScope, {
    ACCOUNT: "The account, with the permissions it was made with (createApiKey).",
    SESSION: "The account by a login: every permission; expires 30 days after its last use.",
    MACHINE: "One machine's agent: its assignments and reports, nothing of the account.",
    INSTANCE: "One instance's container: start, stop and destroy that instance only.",
  }),
});

export const ApiKeyPermissionEnum = builder.enumType("ApiKeyPermission", {
  description: "What an ACCOUNT key may do; every key holds READ.",
  values: describedValues(ApiKeyPermission, {
    READ: "See everything of the account, never changing it; alone it makes a read-only key.",
    INSTANCES: "Rent and control instances: create, start, stop, destroy, bid, label, templates.",
    BILLING: "Payments and billing settings.",
    MACHINES: "Register, list and manage the account's machines as a host.",
    KEYS: "API keys, SSH keys, registry credentials and the password.",
  }),
});

export const ApiKeyRef = builder.prismaNode("ApiKey", {
  id: { field: "id" },
  description: "An API key of the account (its secret is never shown again after it was issued). Its owner's keys only.",
  // Select mode: only selected and exposed columns are read, so the hash never leaves the database.
  select: { id: true, machineId: true, instanceId: true },
  fields: (t) => ({
    name: t.exposeString("name", { description: "What its owner called it (login keys: \"login\" or \"signup\")." }),
    prefix: t.exposeString("prefix", { description: "The key's first characters, to tell keys apart." }),
    scope: t.expose("scope", { type: ApiKeyScopeEnum, description: "What the key acts for." }),
    permissions: t.field({
      type: [ApiKeyPermissionEnum],
      select: { scope: true, permissions: true },
      description: "What an ACCOUNT or SESSION key may do; empty for MACHINE and INSTANCE keys, which act for one machine or instance.",
      resolve: (key) => (key.scope === "ACCOUNT" || key.scope === "SESSION" ? key.permissions : []),
    }),
    expiresAt: t.expose("expiresAt", {
      type: "DateTime",
      nullable: true,
      description: "The key is refused from then on (and its WebSocket connections closed); a SESSION key's moves forward as it is used.",
    }),
    machineId: t.id({
      nullable: true,
      description: "The machine a MACHINE key belongs to.",
      resolve: (key) => (key.machineId === null ? null : globalId("Machine", key.machineId)),
    }),
    instanceId: t.id({
      nullable: true,
      description: "The instance an INSTANCE key belongs to.",
      resolve: (key) => (key.instanceId === null ? null : globalId("Instance", key.instanceId)),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was issued." }),
    lastUsedAt: t.expose("lastUsedAt", {
      type: "DateTime",
      nullable: true,
      description: "When the key last authenticated a request, to the minute.",
    }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true, description: "When it was revoked; null while it is not." }),
  }),
});

/** A key just issued: the only time its secret is shown. */
export const IssuedApiKeyRef = builder.objectRef<{ id: number; token: string }>("IssuedApiKey").implement({
  description: "A key just issued, with its secret: the only time the secret is shown.",
  fields: (t) => ({
    token: t.exposeString("token", {
      description: "The secret, shown only now: send it as `Authorization: Bearer <token>`. Only its hash is stored.",
    }),
    apiKey: t.prismaField({
      type: "ApiKey",
      description: "The key itself, as apiKeys lists it.",
      resolve: (query, issued) => prisma.apiKey.findUniqueOrThrow({ ...query, where: { id: issued.id } }),
    }),
  }),
});

builder.queryField("apiKeys", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "ApiKey",
      cursor: "id",
      description: "The account's API keys of every scope, revoked and expired ones included, newest first. Its owner's keys only.",
      resolve: (query, _root, _args, ctx) => prisma.apiKey.findMany({ ...query, where: { userId: ctx.viewer.userId }, orderBy: { id: "desc" } }),
      totalCount: (_root, _args, ctx) => prisma.apiKey.count({ where: { userId: ctx.viewer.userId } }),
    },
    { name: "ApiKeyConnection", description: "A page of API keys." },
    { name: "ApiKeyEdge" },
  ),
);

builder.queryField("sessions", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "ApiKey",
      cursor: "id",
      description:
        "The account's live SESSION keys (one per login), most recently used first; `revokeApiKey` ends one. Its owner's keys only.",
      resolve: (query, _root, _args, ctx) =>
        prisma.apiKey.findMany({
          ...query,
          where: sessionsWhere(ctx.viewer.userId),
          orderBy: [{ lastUsedAt: { sort: "desc", nulls: "last" } }, { id: "desc" }],
        }),
      totalCount: (_root, _args, ctx) => prisma.apiKey.count({ where: sessionsWhere(ctx.viewer.userId) }),
    },
    { name: "SessionConnection", description: "A page of SESSION keys." },
    { name: "SessionEdge" },
  ),
);

function sessionsWhere(userId: number) {
  return { userId, scope: "SESSION" as const, NOT: refusedKeysWhere(new Date()) };
}

builder.mutationField("createApiKey", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: IssuedApiKeyRef,
    description: "Issues an ACCOUNT key with the permissions named (all of them when none are; READ always), optionally expiring.",
    args: {
      name: t.arg.string({ required: true, description: "What to call it, to tell keys apart." }),
      permissions: t.arg({ type: [ApiKeyPermissionEnum], description: "Such as [READ] for a read-only key; all when omitted." }),
      expiresAt: t.arg({ type: "DateTime", description: "When the key stops working; never when omitted." }),
    },
    errors: {},
    resolve: (_root, args, ctx) => createAccountApiKey(prisma, ctx.viewer.userId, args),
  }),
);

builder.mutationField("revokeApiKey", (t) =>
  t.withAuth({ permission: "KEYS" }).prismaField({
    type: "ApiKey",
    description:
      "Revokes one of the account's keys (a session too): requests with it fail at once, and WebSocket connections it opened are closed (4403) within seconds.",
    args: { id: t.arg.globalID({ required: true, description: 'The key, such as "ApiKey:12".' }) },
    errors: {},
    resolve: async (query, _root, { id }, ctx) => {
      const keyId = localId(id, "ApiKey");
      await revokeApiKey(prisma, ctx.viewer.userId, keyId);
      return prisma.apiKey.findUniqueOrThrow({ ...selection(query), where: { id: keyId } });
    },
  }),
);
