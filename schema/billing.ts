import { chargeLines, earningsDays, invoiceItems } from "../domain/billing/statements.ts";
import { type SpendLimitView, spendLimitOf } from "../domain/billing/spendLimit.ts";
import { createCardSetup, createCheckout } from "../domain/payments/checkout.ts";
import { billingSettings, updateBillingSettings } from "../domain/payments/settings.ts";
import { type PayoutOnboarding, startPayoutOnboarding } from "../domain/payouts.ts";
import { PaymentsUnavailableError } from "../domain/payments/stripe.ts";
import { prisma } from "../infra/db.ts";
import { ChargeCategory, PayoutStatus } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";

builder.objectType(PaymentsUnavailableError, {
  name: "PaymentsUnavailableError",
  interfaces: [ErrorInterface],
  description: "The server has no Stripe account configured.",
});

const CheckoutSessionRef = builder
  .objectRef<{ sessionId: string; url: string }>("CheckoutSession")
  .implement({
    description: "A Stripe Checkout Session: send the user to `url` (or redirect with Stripe.js and `sessionId`).",
    fields: (t) => ({
      sessionId: t.exposeString("sessionId"),
      url: t.exposeString("url"),
    }),
  });

builder.mutationField("addCredit", (t) =>
  t.withAuth({ permission: "BILLING" }).field({
    type: CheckoutSessionRef,
    description:
      "Starts a card payment of `amount` ($5 to $10,000, whole cents) on Stripe Checkout. The balance is credited when Stripe confirms the payment (a `balance` event follows at once). With `saveCard`, the card is kept for auto-billing.",
    errors: { types: [PaymentsUnavailableError] },
    args: { amount: t.arg({ type: "Money", required: true }), saveCard: t.arg.boolean({ defaultValue: false }) },
    resolve: (_root, args, ctx) => createCheckout(ctx.viewer.userId, { amount: args.amount, saveCard: args.saveCard ?? false }),
  }),
);

builder.mutationField("addCard", (t) =>
  t.withAuth({ permission: "BILLING" }).field({
    type: CheckoutSessionRef,
    description:
      "Starts Stripe Checkout in setup mode: the user enters a card without paying. When Stripe confirms it, the card is kept for auto-billing and debit settlement and counts as verified (see spendLimit); with a verified email the account then receives its free test credit, once per card and address.",
    errors: { types: [PaymentsUnavailableError] },
    resolve: (_root, _args, ctx) => createCardSetup(ctx.viewer.userId),
  }),
);

const SpendTierEnum = builder.enumType("SpendTier", {
  description:
    "Spend rate limit tiers. NEW: email not verified. EMAIL_VERIFIED. CARD_VERIFIED: email and a card verified. ESTABLISHED: verified, and an account old enough that has paid enough: no limit.",
  values: ["NEW", "EMAIL_VERIFIED", "CARD_VERIFIED", "ESTABLISHED"] as const,
});

const SpendTierStepRef = builder.objectRef<NonNullable<SpendLimitView["next"]>>("SpendTierStep").implement({
  description: "The next tier and what the account still lacks for it.",
  fields: (t) => ({
    tier: t.field({ type: SpendTierEnum, resolve: (step) => step.tier }),
    limitPerHour: t.field({ type: "Money", nullable: true, description: "Null: no limit.", resolve: (step) => step.limitMicrosPerHour }),
    requirements: t.exposeStringList("requirements"),
  }),
});

const SpendLimitRef = builder.objectRef<SpendLimitView>("SpendLimit").implement({
  description: "What the account's rentals may cost per hour in total (GPUs and disk of every instance that wants to run).",
  fields: (t) => ({
    tier: t.field({ type: SpendTierEnum, resolve: (view) => view.tier }),
    limitPerHour: t.field({ type: "Money", nullable: true, description: "Null: no limit.", resolve: (view) => view.limitMicrosPerHour }),
    currentPerHour: t.field({ type: "Money", description: "What the account's rentals cost now.", resolve: (view) => view.currentMicrosPerHour }),
    next: t.field({ type: SpendTierStepRef, nullable: true, description: "What raises the limit; null at the top tier.", resolve: (view) => view.next }),
  }),
});

builder.queryField("spendLimit", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: SpendLimitRef,
    description: "The account's spend rate limit: its tier, the limit, what its rentals cost now, and what raises it.",
    resolve: (_root, _args, ctx) => spendLimitOf(prisma, ctx.viewer.userId),
  }),
);

const BillingSettingsRef = builder.objectRef<Awaited<ReturnType<typeof billingSettings>>>("BillingSettings").implement({
  fields: (t) => ({
    savedCard: t.exposeString("savedCard", { nullable: true, description: 'The card kept for auto-billing, like "visa •••• 4242".' }),
    autoBillThreshold: t.field({
      type: "Money",
      nullable: true,
      description: "When the balance falls below it, the saved card is charged `autoBillAmount`, once per crossing.",
      resolve: (s) => s.autoBillThresholdMicros,
    }),
    autoBillAmount: t.field({ type: "Money", nullable: true, resolve: (s) => s.autoBillAmountMicros }),
    balanceAlertThreshold: t.field({
      type: "Money",
      nullable: true,
      description: "When the balance falls below it, an email is sent, once per crossing.",
      resolve: (s) => s.balanceAlertThresholdMicros,
    }),
    payoutAccountId: t.exposeString("payoutAccountId", {
      nullable: true,
      description: "The host's Stripe Connect account (startPayoutOnboarding creates it), where weekly payouts go once it is onboarded.",
    }),
    payoutsEnabled: t.exposeBoolean("payoutsEnabled", {
      description: "Stripe reported that the Connect account finished onboarding and can receive payouts; until then payouts are skipped and the balance carries over.",
    }),
  }),
});

builder.queryField("billingSettings", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: BillingSettingsRef,
    resolve: (_root, _args, ctx) => billingSettings(ctx.viewer.userId),
  }),
);

const BillingSettingsInput = builder.inputType("BillingSettingsInput", {
  description: "Fields left out are unchanged; null turns a threshold off.",
  fields: (t) => ({
    autoBillThreshold: t.field({ type: "Money" }),
    autoBillAmount: t.field({ type: "Money", description: "$5 to $10,000, whole cents." }),
    balanceAlertThreshold: t.field({ type: "Money" }),
    removeSavedCard: t.boolean({ description: "Forgets the saved card, which turns auto-billing off." }),
  }),
});

builder.mutationField("updateBillingSettings", (t) =>
  t.withAuth({ permission: "BILLING" }).field({
    type: BillingSettingsRef,
    errors: {},
    args: { input: t.arg({ type: BillingSettingsInput, required: true }) },
    resolve: (_root, { input }, ctx) => updateBillingSettings(ctx.viewer.userId, input),
  }),
);

const PayoutOnboardingRef = builder.objectRef<PayoutOnboarding>("PayoutOnboarding").implement({
  description: "A one-time link to Stripe's hosted onboarding of the host's Connect account (identity and bank details), where weekly payouts go.",
  fields: (t) => ({
    accountId: t.exposeString("accountId", { description: 'The Stripe Connect account ("acct_...") being onboarded.' }),
    url: t.exposeString("url", { description: "Open it to onboard at Stripe; Stripe sends the browser back to the console's account page." }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", description: "The link works once, until then; ask for a new one after." }),
  }),
});

builder.mutationField("startPayoutOnboarding", (t) =>
  t.withAuth({ permission: "BILLING" }).field({
    type: PayoutOnboardingRef,
    description:
      "Creates the host's Stripe Connect (Express) account on first use and returns a fresh onboarding link. Payouts go to the account once Stripe reports it can receive them (billingSettings.payoutsEnabled).",
    errors: { types: [PaymentsUnavailableError] },
    resolve: (_root, _args, ctx) => startPayoutOnboarding(ctx.viewer.userId),
  }),
);

const ChargeCategoryEnum = builder.enumType(ChargeCategory, {
  name: "ChargeCategory",
});

const ChargeLineRef = builder.objectRef<Awaited<ReturnType<typeof chargeLines>>[number]>("ChargeLine").implement({
  description: "What one instance was charged for one category on one day (UTC) at one rate.",
  fields: (t) => ({
    instanceId: t.globalID({ resolve: (line) => ({ type: "Instance", id: line.instanceId }) }),
    day: t.field({ type: "DateTime", resolve: (line) => line.day }),
    category: t.field({ type: ChargeCategoryEnum, resolve: (line) => line.category }),
    quantity: t.exposeString("quantity", { description: "In `unit`s, three decimals." }),
    unit: t.exposeString("unit", { description: "GPU-hour, GB-month (30 days) or GB (10^9 bytes)." }),
    rate: t.field({ type: "Money", description: "Per unit.", resolve: (line) => line.rateMicros }),
    amount: t.field({ type: "Money", resolve: (line) => line.amountMicros }),
    description: t.exposeString("description", { description: 'Like "96.000 GPU-hours at $0.389/GPU-hour".' }),
  }),
});

builder.queryField("charges", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: [ChargeLineRef],
    description: "The caller's charges on the days from `from` to `to`, per instance, day and category, itemized.",
    args: { from: t.arg({ type: "DateTime", required: true }), to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }), instanceId: t.arg.globalID() },
    resolve: (_root, args, ctx) =>
      chargeLines(ctx.viewer.userId, { from: args.from, to: args.to }, args.instanceId ? localId(args.instanceId, "Instance", "instanceId") : null),
  }),
);

const EarningsRef = builder.objectRef<Awaited<ReturnType<typeof earningsDays>>[number]>("MachineEarnings").implement({
  description: "What one of the caller's machines earned on one day (UTC).",
  fields: (t) => ({
    machineId: t.globalID({ resolve: (day) => ({ type: "Machine", id: day.machineId }) }),
    day: t.field({ type: "DateTime", resolve: (day) => day.day }),
    gpu: t.field({ type: "Money", resolve: (day) => day.gpuMicros }),
    storage: t.field({ type: "Money", resolve: (day) => day.storageMicros }),
    bandwidth: t.field({ type: "Money", description: "Up and down.", resolve: (day) => day.bandwidthMicros }),
    total: t.field({ type: "Money", resolve: (day) => day.totalMicros }),
  }),
});

builder.queryField("earnings", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: [EarningsRef],
    description: "The caller's host earnings on the days from `from` to `to`, per machine and day.",
    args: { from: t.arg({ type: "DateTime", required: true }), to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }), machineId: t.arg.globalID() },
    resolve: (_root, args, ctx) =>
      earningsDays(ctx.viewer.userId, { from: args.from, to: args.to }, args.machineId ? localId(args.machineId, "Machine", "machineId") : null),
  }),
);

const InvoiceKindEnum = builder.enumType("InvoiceKind", { values: ["PAYMENT", "ADJUSTMENT", "REFUND", "PAYOUT"] as const });
const InvoiceStatusEnum = builder.enumType("InvoiceStatus", { values: ["COMPLETED", "PENDING", "FAILED"] as const });

const InvoiceItemRef = builder.objectRef<Awaited<ReturnType<typeof invoiceItems>>[number]>("InvoiceItem").implement({
  fields: (t) => ({
    at: t.field({ type: "DateTime", resolve: (item) => item.at }),
    kind: t.field({ type: InvoiceKindEnum, resolve: (item) => item.kind }),
    status: t.field({ type: InvoiceStatusEnum, resolve: (item) => item.status }),
    amount: t.field({ type: "Money", description: "Signed as on the balance.", resolve: (item) => item.amountMicros }),
    description: t.exposeString("description"),
  }),
});

builder.queryField("invoices", (t) =>
  t.withAuth({ permission: "READ" }).field({
    type: [InvoiceItemRef],
    description:
      "The caller's payments (pending and failed ones too), credits and adjustments, refunds and payouts from `from` to `to`, newest first.",
    args: { from: t.arg({ type: "DateTime", required: true }), to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }) },
    resolve: (_root, args, ctx) => invoiceItems(ctx.viewer.userId, { from: args.from, to: args.to }),
  }),
);

const PayoutStatusEnum = builder.enumType(PayoutStatus, {
  name: "PayoutStatus",
});

builder.prismaObject("Payout", {
  description: "A weekly host payout (Fridays) through Stripe Connect: the host's unpaid earnings, once they reach the minimum ($20).",
  fields: (t) => ({
    periodStart: t.expose("periodStart", { type: "DateTime" }),
    amount: t.field({ type: "Money", resolve: (payout) => payout.amountMicros }),
    status: t.expose("status", { type: PayoutStatusEnum }),
    destination: t.exposeString("destination", { nullable: true }),
    note: t.exposeString("note", { nullable: true, description: "Why it was skipped or failed." }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.queryField("payouts", (t) =>
  t.withAuth({ permission: "READ" }).prismaField({
    type: ["Payout"],
    description: "The caller's last 100 payouts, newest first.",
    resolve: (query, _root, _args, ctx) =>
      prisma.payout.findMany({ ...query, where: { hostId: ctx.viewer.userId }, orderBy: { id: "desc" }, take: 100 }),
  }),
);
