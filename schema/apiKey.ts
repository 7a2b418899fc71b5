import { createAccountApiKey, revokeApiKey } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { ApiKeyScope } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { globalId, localId } from "./ids.ts";
import { selection } from "./selection.ts";

const ApiKeyScopeEnum = builder.enumType(ApiKeyScope, {
  name: "ApiKeyScope",
  description: "What a key may do: the whole account, one machine's agent, or one instance's container.",
});

export const ApiKeyRef = builder.prismaNode("ApiKey", {
  id: { field: "id" },
  // Select mode: only selected and exposed columns are read, so the hash never leaves the database.
  select: { id: true, machineId: true, instanceId: true },
  fields: (t) => ({
    name: t.exposeString("name"),
    prefix: t.exposeString("prefix", { description: "The key's first characters, to tell keys apart." }),
    scope: t.expose("scope", { type: ApiKeyScopeEnum }),
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
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    lastUsedAt: t.expose("lastUsedAt", {
      type: "DateTime",
      nullable: true,
      description: "When the key last authenticated a request, to the minute.",
    }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
  }),
});

/** A key just issued: the only time its secret is shown. */
export const IssuedApiKeyRef = builder.objectRef<{ id: number; token: string }>("IssuedApiKey").implement({
  fields: (t) => ({
    token: t.exposeString("token", {
      description: "The secret, shown only now: send it as `Authorization: Bearer <token>`. Only its hash is stored.",
    }),
    apiKey: t.prismaField({
      type: "ApiKey",
      resolve: (query, issued) => prisma.apiKey.findUniqueOrThrow({ ...query, where: { id: issued.id } }),
    }),
  }),
});

builder.queryField("apiKeys", (t) =>
  t.prismaField({
    type: ["ApiKey"],
    authScopes: { account: true },
    description: "The account's API keys of every scope, revoked ones included, newest first.",
    resolve: (query, _root, _args, ctx) =>
      prisma.apiKey.findMany({ ...query, where: { userId: ctx.viewer!.userId }, orderBy: { id: "desc" } }),
  }),
);

builder.mutationField("createApiKey", (t) =>
  t.field({
    type: IssuedApiKeyRef,
    authScopes: { account: true },
    description: "Issues a full-account key.",
    args: { name: t.arg.string({ required: true }) },
    errors: {},
    resolve: (_root, { name }, ctx) => createAccountApiKey(prisma, ctx.viewer!.userId, { name }),
  }),
);

builder.mutationField("revokeApiKey", (t) =>
  t.prismaField({
    type: "ApiKey",
    authScopes: { account: true },
    description: "Revokes one of the account's keys: requests with it fail at once, and WebSocket connections it opened are closed (4403) within seconds.",
    args: { id: t.arg.globalID({ required: true }) },
    errors: {},
    resolve: async (query, _root, { id }, ctx) => {
      const keyId = localId(id, "ApiKey");
      await revokeApiKey(prisma, ctx.viewer!.userId, keyId);
      return prisma.apiKey.findUniqueOrThrow({ ...selection(query), where: { id: keyId } });
    },
  }),
);
