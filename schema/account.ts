import { queryFromInfo } from "@pothos/plugin-prisma";
import DataLoader from "dataloader";
import type { GraphQLResolveInfo } from "graphql";
import { login, type Session, signup } from "../domain/accounts.ts";
import { ConflictError, ForbiddenError, InvalidCredentialsError, InvalidTokenError, RateLimitedError } from "../domain/errors.ts";
import { changePassword, requestPasswordReset, resetPassword } from "../domain/passwords.ts";
import { requestEmailVerification, type TestCreditStatus, testCreditStatus, verifyEmail } from "../domain/trust.ts";
import { readsAccount } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import type { Prisma, User } from "../prisma/generated/client/client.ts";
import { eventStream } from "../infra/pubsub.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";

const TestCreditStatusEnum = builder.enumType("TestCreditStatus", {
  description: "GRANTED; WAITING for the email or a card to be verified; REFUSED: the card or mailbox had one already.",
  values: ["GRANTED", "WAITING", "REFUSED"] as const,
});

const TestCreditRef = builder.objectRef<TestCreditStatus>("TestCredit").implement({
  fields: (t) => ({
    status: t.field({ type: TestCreditStatusEnum, resolve: (credit) => credit.status }),
    amount: t.field({ type: "Money", nullable: true, description: "Granted, or to be granted.", resolve: (credit) => credit.amountMicros }),
    message: t.exposeString("message"),
  }),
});

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
  // Private to its owner's keys that may read the account, wherever a User appears in the graph.
  authScopes: (user, ctx) => readsAccount(ctx.viewer, user.id) || { $granted: OWN_ACCOUNT },
  fields: (t) => ({
    email: t.exposeString("email"),
    emailVerified: t.exposeBoolean("emailVerified"),
    testCredit: t.field({
      type: TestCreditRef,
      description: "The free test credit of a verified email and card: granted once per account, card and mailbox.",
      resolve: (user) => testCreditStatus(user.id),
    }),
    cardVerified: t.boolean({
      description: "Stripe confirmed a card of the account's (addCard, or addCredit with saveCard).",
      select: { cardVerifiedAt: true },
      resolve: (user) => user.cardVerifiedAt !== null,
    }),
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
  t.withAuth({ permission: "READ" }).prismaField({
    type: "User",
    nullable: true,
    description:
      "The account behind an account or session key; null for anonymous callers. Machine and instance keys get a FORBIDDEN error: they act for one machine or instance, never for the account.",
    unauthorizedResolver: (_root, _args, ctx) => {
      if (ctx.viewer) throw new ForbiddenError("Machine and instance keys cannot read the account");
      return null;
    },
    resolve: (query, _root, _args, ctx) => prisma.user.findUnique({ ...query, where: { id: ctx.viewer.userId } }),
  }),
);

builder.mutationField("signup", (t) =>
  t.field({
    type: AuthPayloadRef,
    description: "Creates an account (email, password of 8 to 256 characters) and returns its first API key. Rate-limited per client address.",
    args: { email: t.arg.string({ required: true }), password: t.arg.string({ required: true }) },
    errors: { types: [ConflictError, RateLimitedError] },
    resolve: (_root, args, ctx) => signup(args, ctx.clientIp),
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

const EmailVerificationSentRef = builder.objectRef<{ email: string }>("EmailVerificationSent").implement({
  fields: (t) => ({ email: t.exposeString("email", { description: "Where the link went." }) }),
});

builder.mutationField("requestEmailVerification", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: EmailVerificationSentRef,
    description: `Mails the account's address a one-time link (token) that verifyEmail accepts, for EMAIL_VERIFICATION_TTL_HOURS (24) hours. At most 5 an hour; an address already verified is a ConflictError.`,
    errors: { types: [ConflictError, RateLimitedError] },
    resolve: (_root, _args, ctx) => requestEmailVerification(ctx.viewer.userId),
  }),
);

const EmailVerifiedRef = builder.objectRef<{ email: string; testCreditMicros: bigint | null }>("EmailVerified").implement({
  fields: (t) => ({
    email: t.exposeString("email"),
    testCredit: t.field({
      type: "Money",
      nullable: true,
      description: "The free test credit this verification granted (the card was verified already), if any.",
      resolve: (verified) => verified.testCreditMicros,
    }),
  }),
});

builder.mutationField("verifyEmail", (t) =>
  t.field({
    type: EmailVerifiedRef,
    description:
      "Verifies the address an emailed token was sent to: once, before it expires. Works without a key (the token proves the mailbox); with a key, only for that key's account. Once the email and a card are verified the account receives its free test credit, once.",
    args: { token: t.arg.string({ required: true }) },
    errors: { types: [InvalidTokenError] },
    resolve: (_root, { token }, ctx) => verifyEmail(token, ctx.viewer?.userId ?? null),
  }),
);

builder.mutationField("changePassword", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: AuthPayloadRef,
    description: "Sets a new password (8 to 256 characters) after checking the current one. Every session key is revoked; a new one is returned.",
    args: { currentPassword: t.arg.string({ required: true }), newPassword: t.arg.string({ required: true }) },
    errors: { types: [InvalidCredentialsError] },
    resolve: (_root, args, ctx) => changePassword(ctx.viewer.userId, args),
  }),
);

builder.mutationField("requestPasswordReset", (t) =>
  t.boolean({
    description:
      "Mails a one-time password reset link (token for resetPassword, valid PASSWORD_RESET_TTL_MINUTES, 60) when the address is an account's. Answers true either way.",
    args: { email: t.arg.string({ required: true }) },
    errors: {},
    resolve: async (_root, args) => {
      await requestPasswordReset(args);
      return true;
    },
  }),
);

builder.mutationField("resetPassword", (t) =>
  t.field({
    type: AuthPayloadRef,
    description: "Sets a new password with an emailed reset token (once, before it expires). Every session key is revoked; a new one is returned.",
    args: { token: t.arg.string({ required: true }), newPassword: t.arg.string({ required: true }) },
    errors: { types: [InvalidTokenError] },
    resolve: (_root, args) => resetPassword(args),
  }),
);

/**
 * While metering runs, an account's balance moves every second: the metering job publishes one
 * event per account per tick, and a subscriber receives one event per metered second, at once
 * (comparing the seconds the ticks metered rather than arrival times, so that a tick's jitter never
 * holds one back). Anything else in between (usage reports) waits for the next tick or for this
 * long after the previous event, merged with whatever comes meanwhile; payments go out at once.
 */
const BALANCE_MIN_GAP_MS = 1000;

type UserQuery = { select?: Prisma.UserSelect | null; include?: Prisma.UserInclude | null };
/** A planned query and its JSON, the key of the refetch batch it joins. */
type PlannedQuery = { query: UserQuery; shape: string };

/**
 * Pending refetches by selection. A metering tick wakes every balance subscriber of the process at
 * once; Prisma batches their findUnique calls itself but then matches each result to its call in
 * a loop over the batch (quadratic: 2,500 reads took ~0.3 s, 5,000 ~1.2 s, measured), so the
 * reads of one wake-up are instead one findMany per selection, matched by id.
 */
const pendingRefetches = new Map<string, DataLoader<number, User | undefined>>();

function refetchUser({ query, shape }: PlannedQuery, id: number): Promise<User | undefined> {
  let loader = pendingRefetches.get(shape);
  if (!loader) {
    const batch = new DataLoader<number, User | undefined>(
      async (ids) => {
        pendingRefetches.delete(shape); // later reads start a new batch: never a cached balance
        const select = query.select ? { ...query.select, id: true } : undefined;
        const users = (await prisma.user.findMany({ ...query, select, where: { id: { in: [...ids] } } })) as User[];
        const byId = new Map(users.map((user) => [user.id, user]));
        return ids.map((userId) => byId.get(userId));
      },
      // Every subscriber one Redis message wakes reads in this batch.
      { cache: false, batchScheduleFn: (dispatch) => setImmediate(dispatch) },
    );
    pendingRefetches.set(shape, (loader = batch));
  }
  return loader.load(id);
}

/**
 * A subscription's selection is the same for every event (one operation, fixed variables): its
 * query is planned on the first event and kept with the subscription's context. Planning it for
 * each event was ~15% of the API's CPU in a metering burst (bench/RESULTS.md).
 */
const plannedQueries = new WeakMap<object, PlannedQuery>();

function plannedQuery(context: object, info: GraphQLResolveInfo): PlannedQuery {
  let planned = plannedQueries.get(context);
  if (!planned) {
    const query = queryFromInfo({ context, info }) as UserQuery;
    plannedQueries.set(context, (planned = { query, shape: JSON.stringify(query) }));
  }
  return planned;
}

builder.subscriptionField("balance", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: UserRef,
    description:
      "The caller's account (select `balance`) as it is now, then after every change of its balance: once per metered second while metering runs (changes in between come with the next one), at once on payments.",
    subscribe: (_root, _args, ctx) =>
      eventStream("balance", ctx.viewer.userId, {
        merge: (a, b) => ({ immediate: a.immediate || b.immediate, meteredUntil: Math.max(a.meteredUntil ?? 0, b.meteredUntil ?? 0) || undefined }),
        throttle: {
          minGapMs: BALANCE_MIN_GAP_MS,
          passes: (event, previous) => event.immediate || (event.meteredUntil !== undefined && event.meteredUntil !== previous?.meteredUntil),
        },
      }),
    // The account exists: its key was just authenticated.
    resolve: async (_event, _args, ctx, info) => (await refetchUser(plannedQuery(ctx, info), ctx.viewer.userId))!,
  }),
);
