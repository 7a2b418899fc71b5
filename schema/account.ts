import { completeSignup, login, type Session, signup, type SignupStarted } from "../domain/accounts.ts";
import { ConflictError, ForbiddenError, InvalidCredentialsError, InvalidTokenError, RateLimitedError } from "../domain/errors.ts";
import { changePassword, requestPasswordReset, resetPassword } from "../domain/passwords.ts";
import { requestEmailVerification, type TestCreditStatus, testCreditStatus, verifyEmail } from "../domain/trust.ts";
import { readsAccount } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import { balanceStream, refetchSubscribedUser } from "../infra/balanceStream.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";

const TestCreditStatusEnum = builder.enumType("TestCreditStatus", {
  description: "Where the account's free test credit stands.",
  values: {
    GRANTED: { description: "Credited to the balance." },
    WAITING: { description: "Granted once the email and a card are verified." },
    REFUSED: { description: "The card or mailbox had one already: none for this account." },
  } as const,
});

const TestCreditRef = builder.objectRef<TestCreditStatus>("TestCredit").implement({
  description: "The account's free test credit: granted once per account, card and mailbox, after both are verified.",
  fields: (t) => ({
    status: t.field({ type: TestCreditStatusEnum, description: "Granted, waiting, or refused.", resolve: (credit) => credit.status }),
    amount: t.field({ type: "Money", nullable: true, description: "Dollars granted, or to be granted.", resolve: (credit) => credit.amountMicros }),
    message: t.exposeString("message", { description: "What it means and what is still needed, for people." }),
  }),
});

const AccountSettingsRef = builder.objectRef<{ debitMode: boolean }>("AccountSettings").implement({
  description: "Settings of the account that only the platform changes.",
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
    email: t.exposeString("email", { description: "The login address, where statements and alerts go." }),
    emailVerified: t.exposeBoolean("emailVerified", { description: "The address was confirmed through an emailed link (verifyEmail)." }),
    operator: t.exposeBoolean("operator", {
      description: "The account is an operator: its account and session keys verify, deverify and vet any host's machines. Granted only by the administrators' tool.",
    }),
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
    balance: t.field({
      type: "Money",
      description: "Prepaid credit, dollars: payments and earnings add to it, rentals are charged from it per second.",
      select: { balanceMicros: true },
      resolve: (user) => user.balanceMicros,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the account signed up." }),
    settings: t.field({
      type: AccountSettingsRef,
      description: "Settings only the platform changes.",
      select: { debitMode: true },
      resolve: (user) => ({ debitMode: user.debitMode }),
    }),
    sshKeys: t.relatedConnection("sshKeys", {
      cursor: "id",
      totalCount: true,
      description: "The account's SSH public keys, oldest first (as Query.sshKeys).",
      query: { orderBy: { id: "asc" } },
    }),
    apiKeys: t.relatedConnection("apiKeys", {
      cursor: "id",
      totalCount: true,
      description: "Keys of every scope, revoked ones included, newest first (as Query.apiKeys).",
      query: { orderBy: { id: "desc" } },
    }),
  }),
});

const AuthPayloadRef = builder.objectRef<Session>("AuthPayload").implement({
  description: "An account just authenticated, with a new key for it.",
  fields: (t) => ({
    user: t.prismaField({
      type: "User",
      description: "The account.",
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

const SignupStartedRef = builder.objectRef<SignupStarted>("SignupStarted").implement({
  description:
    "A signup on its way: the address was mailed a link that completes it (completeSignup). The answer is the same whether or not the address has an account (its owner is told by email instead), so it does not tell which addresses have one.",
  fields: (t) => ({ email: t.exposeString("email", { description: "Where the link went." }) }),
});

builder.mutationField("signup", (t) =>
  t.field({
    type: SignupStartedRef,
    description: `Starts an account (email, password of 8 to 256 characters): mails the address a one-time link (token for completeSignup, valid EMAIL_VERIFICATION_TTL_HOURS, 24). The account and its first API key exist once the link is opened. Rate-limited per client address; at most 3 signup emails an hour reach one address.`,
    args: {
      email: t.arg.string({ required: true, description: "The new account's address; the link goes there." }),
      password: t.arg.string({ required: true, description: "The new account's password, 8 to 256 characters." }),
    },
    errors: { types: [RateLimitedError] },
    resolve: (_root, args, ctx) => signup(args, ctx.clientIp),
  }),
);

builder.mutationField("completeSignup", (t) =>
  t.field({
    type: AuthPayloadRef,
    description:
      "Creates the account a signup link was mailed for, its email verified, with the password chosen at signup, and returns its first full-account API key. Once per link, before it expires; an address that has an account by then is a ConflictError.",
    args: { token: t.arg.string({ required: true, description: "The token of the emailed signup link." }) },
    errors: { types: [InvalidTokenError, ConflictError] },
    resolve: (_root, args, ctx) => completeSignup(args, ctx.clientIp),
  }),
);

builder.mutationField("login", (t) =>
  t.field({
    type: AuthPayloadRef,
    description: "Checks the password and returns a new full-account API key. Rate-limited per email and per client address.",
    args: {
      email: t.arg.string({ required: true, description: "The account's login address." }),
      password: t.arg.string({ required: true, description: "The account's password." }),
    },
    errors: { types: [InvalidCredentialsError, RateLimitedError] },
    resolve: (_root, args, ctx) => login(args, ctx.clientIp),
  }),
);

const EmailVerificationSentRef = builder.objectRef<{ email: string }>("EmailVerificationSent").implement({
  description: "A verification link was mailed.",
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
  description: "An address just verified.",
  fields: (t) => ({
    email: t.exposeString("email", { description: "The address verified." }),
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
    args: { token: t.arg.string({ required: true, description: "The token from the emailed link." }) },
    errors: { types: [InvalidTokenError] },
    resolve: (_root, { token }, ctx) => verifyEmail(token, ctx.viewer?.userId ?? null),
  }),
);

builder.mutationField("changePassword", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: AuthPayloadRef,
    description: "Sets a new password (8 to 256 characters) after checking the current one. Every session key is revoked; a new one is returned.",
    args: {
      currentPassword: t.arg.string({ required: true, description: "The password now." }),
      newPassword: t.arg.string({ required: true, description: "8 to 256 characters." }),
    },
    errors: { types: [InvalidCredentialsError] },
    resolve: (_root, args, ctx) => changePassword(ctx.viewer.userId, args),
  }),
);

builder.mutationField("requestPasswordReset", (t) =>
  t.boolean({
    description:
      "Mails a one-time password reset link (token for resetPassword, valid PASSWORD_RESET_TTL_MINUTES, 60) when the address is an account's. Answers true either way.",
    args: { email: t.arg.string({ required: true, description: "The account's login address." }) },
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
    args: {
      token: t.arg.string({ required: true, description: "The token from the emailed reset link." }),
      newPassword: t.arg.string({ required: true, description: "8 to 256 characters." }),
    },
    errors: { types: [InvalidTokenError] },
    resolve: (_root, args) => resetPassword(args),
  }),
);

builder.subscriptionField("balance", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: UserRef,
    description:
      "The caller's account (select `balance`) as it is now, then after every change of its balance: once per metered second while metering runs (changes in between come with the next one), at once on payments.",
    subscribe: (_root, _args, ctx) => balanceStream(ctx.viewer.userId),
    // The account exists: its key was just authenticated.
    resolve: async (_event, _args, ctx, info) => (await refetchSubscribedUser(ctx, info, ctx.viewer.userId))!,
  }),
);
