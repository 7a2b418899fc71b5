import { login, type Session, signup } from "../domain/accounts.ts";
import { ConflictError, ForbiddenError, InvalidCredentialsError, RateLimitedError } from "../domain/errors.ts";
import { prisma } from "../infra/db.ts";
import { eventStream } from "../infra/pubsub.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";

const AccountSettingsRef = builder.objectRef<{ debitMode: boolean }>("AccountSettings").implement({
  fields: (t) => ({
    debitMode: t.exposeBoolean("debitMode", {
      description: "The balance may go negative without instances stopping. Enabled on request.",
    }),
  }),
});

/** Granted by the mutations that return the account they just authenticated, to a caller without a key. */
const OWN_ACCOUNT = "ownAccount";

export const UserRef = builder.prismaNode("User", {
  id: { field: "id" },
  description: "An account. Every account can both rent machines (client) and list its own (host).",
  // Select mode: only what the query asks for is read, never the password hash.
  select: { id: true },
  // Private to its owner's full-account key, wherever a User appears in the graph.
  authScopes: (user, ctx) =>
    (ctx.viewer?.scope === "ACCOUNT" && ctx.viewer.userId === user.id) || { $granted: OWN_ACCOUNT },
  fields: (t) => ({
    email: t.exposeString("email"),
    emailVerified: t.exposeBoolean("emailVerified"),
    balance: t.field({ type: "Money", select: { balanceMicros: true }, resolve: (user) => user.balanceMicros }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    settings: t.field({
      type: AccountSettingsRef,
      select: { debitMode: true },
      resolve: (user) => ({ debitMode: user.debitMode }),
    }),
    sshKeys: t.relation("sshKeys", { query: { orderBy: { id: "asc" } } }),
    apiKeys: t.relation("apiKeys", {
      description: "Keys of every scope, revoked ones included, newest first.",
      query: { orderBy: { id: "desc" } },
    }),
  }),
});

const AuthPayloadRef = builder.objectRef<Session>("AuthPayload").implement({
  fields: (t) => ({
    user: t.prismaField({
      type: "User",
      grantScopes: [OWN_ACCOUNT],
      resolve: (query, session) => prisma.user.findUniqueOrThrow({ ...query, where: { id: session.userId } }),
    }),
    apiKey: t.field({
      type: IssuedApiKeyRef,
      description: "A new full-account key for this session.",
      resolve: (session) => session.key,
    }),
  }),
});

builder.queryField("me", (t) =>
  t.prismaField({
    type: "User",
    nullable: true,
    description:
      "The account behind a full-account key; null for anonymous callers. Machine and instance keys get a FORBIDDEN error: they act for one machine or instance, never for the account.",
    authScopes: { account: true },
    unauthorizedResolver: (_root, _args, ctx) => {
      if (ctx.viewer) throw new ForbiddenError("Machine and instance keys cannot read the account");
      return null;
    },
    resolve: (query, _root, _args, ctx) => prisma.user.findUnique({ ...query, where: { id: ctx.viewer!.userId } }),
  }),
);

builder.mutationField("signup", (t) =>
  t.field({
    type: AuthPayloadRef,
    description: "Creates an account (email, password of 8 to 256 characters) and returns its first API key.",
    args: { email: t.arg.string({ required: true }), password: t.arg.string({ required: true }) },
    errors: { types: [ConflictError] },
    resolve: (_root, args) => signup(args),
  }),
);

builder.mutationField("login", (t) =>
  t.field({
    type: AuthPayloadRef,
    description: "Checks the password and returns a new full-account API key. Rate-limited per email and per client address.",
    args: { email: t.arg.string({ required: true }), password: t.arg.string({ required: true }) },
    errors: { types: [InvalidCredentialsError, RateLimitedError] },
    resolve: (_root, args, ctx) => login(args, ctx.clientIp),
  }),
);

/**
 * While metering runs, an account's balance moves every second: the metering job publishes one
 * event per account per tick (once a second), and each subscriber merges anything closer than this
 * to the previous event (bursts of usage reports), leaving 10% for the tick's jitter so that a tick
 * arriving a little early is not held back for the rest of the second.
 */
const BALANCE_MIN_GAP_MS = 900;

builder.subscriptionField("balance", (t) =>
  t.prismaField({
    type: "User",
    authScopes: { account: true },
    description:
      "The caller's account (select `balance`) as it is now, then after every change of its balance: at most one a second while metering runs, at once on payments.",
    subscribe: (_root, _args, ctx) =>
      eventStream("balance", ctx.viewer!.userId, {
        merge: (a, b) => ({ immediate: a.immediate || b.immediate }),
        throttle: { minGapMs: BALANCE_MIN_GAP_MS, bypass: (event) => event.immediate },
      }),
    // findUnique (not …OrThrow): Prisma batches the reads of the many subscribers one metering
    // tick wakes into one query. The account exists: its key was just authenticated.
    resolve: async (query, _event, _args, ctx) => (await prisma.user.findUnique({ ...query, where: { id: ctx.viewer!.userId } }))!,
  }),
);
