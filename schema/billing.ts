import { chargeLines, earningsDays, invoiceItems } from "../domain/billing/statements.ts";
import { type SpendLimitView, spendLimitOf } from "../domain/billing/spendLimit.ts";
import { createCardSetup, createCheckout } from "../domain/payments/checkout.ts";
import { billingSettings, updateBillingSettings } from "../domain/payments/settings.ts";
import { type PayoutOnboarding, startPayoutOnboarding } from "../domain/payouts.ts";
import { PaymentsUnavailableError } from "../domain/payments/stripe.ts";
import { prisma } from "../infra/db.ts";
import { ChargeCategory, PayoutStatus } from "../prisma/generated/client/client.ts";
import { resolveArrayConnection } from "@pothos/plugin-relay";
import { builder } from "./builder.ts";
import { describedValues } from "./enumValues.ts";
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
      sessionId: t.exposeString("sessionId", { description: "The Checkout Session's id, for Stripe.js." }),
      url: t.exposeString("url", { description: "The Stripe-hosted page where the user pays or enters the card." }),
    }),
  });

builder.mutationField("addCredit", (t) =>
  t.withAuth({ permission: "BILLING" }).field({
    type: CheckoutSessionRef,
    description:
      "Starts a card payment of `amount` ($5 to $10,000, whole cents) on Stripe Checkout. The balance is credited when Stripe confirms the payment (a `balance` event follows at once). With `saveCard`, the card is kept for auto-billing.",
    errors: { types: [PaymentsUnavailableError] },
    args: {
      amount: t.arg({ type: "Money", required: true, description: "Dollars to add: $5 to $10,000, whole cents." }),
      saveCard: t.arg.boolean({ defaultValue: false, description: "Keep the card for auto-billing." }),
    },
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
  description: "Spend rate limit tiers: what the account's rentals may cost per hour grows with trust.",
  values: {
    NEW: { description: "The email is not verified yet: the lowest limit." },
    EMAIL_VERIFIED: { description: "The email is verified." },
    CARD_VERIFIED: { description: "The email and a card are verified." },
    ESTABLISHED: { description: "Verified, and an account old enough that has paid enough: no limit." },
  } as const,
});

const SpendTierStepRef = builder.objectRef<NonNullable<SpendLimitView["next"]>>("SpendTierStep").implement({
  description: "The next tier and what the account still lacks for it.",
  fields: (t) => ({
    tier: t.field({ type: SpendTierEnum, description: "The next tier.", resolve: (step) => step.tier }),
    limitPerHour: t.field({ type: "Money", nullable: true, description: "Its limit, dollars per hour; null: no limit.", resolve: (step) => step.limitMicrosPerHour }),
    requirements: t.exposeStringList("requirements", { description: "What the account still lacks for it, for people." }),
  }),
});

const SpendLimitRef = builder.objectRef<SpendLimitView>("SpendLimit").implement({
  description: "What the account's rentals may cost per hour in total (GPUs and disk of every instance that wants to run).",
  fields: (t) => ({
    tier: t.field({ type: SpendTierEnum, description: "The account's tier now.", resolve: (view) => view.tier }),
    limitPerHour: t.field({ type: "Money", nullable: true, description: "The limit, dollars per hour; null: no limit.", resolve: (view) => view.limitMicrosPerHour }),
    currentPerHour: t.field({ type: "Money", description: "What the account's rentals cost now, dollars per hour.", resolve: (view) => view.currentMicrosPerHour }),
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
  description: "How the account pays and is paid: the saved card, auto-billing, the low balance alert, the payout account. Its owner's keys only.",
  fields: (t) => ({
    savedCard: t.exposeString("savedCard", { nullable: true, description: 'The card kept for auto-billing, like "visa •••• 4242".' }),
    autoBillThreshold: t.field({
      type: "Money",
      nullable: true,
      description: "When the balance falls below it, the saved card is charged `autoBillAmount`, once per crossing.",
      resolve: (s) => s.autoBillThresholdMicros,
    }),
    autoBillAmount: t.field({
      type: "Money",
      nullable: true,
      description: "Dollars charged to the saved card when the balance falls below autoBillThreshold; null: auto-billing off.",
      resolve: (s) => s.autoBillAmountMicros,
    }),
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
    description: "The account's billing settings. Its owner's keys only.",
    resolve: (_root, _args, ctx) => billingSettings(ctx.viewer.userId),
  }),
);

const BillingSettingsInput = builder.inputType("BillingSettingsInput", {
  description: "Fields left out are unchanged; null turns a threshold off.",
  fields: (t) => ({
    autoBillThreshold: t.field({ type: "Money", description: "Dollars: below it, the saved card is charged autoBillAmount; null turns auto-billing off." }),
    autoBillAmount: t.field({ type: "Money", description: "Dollars to charge: $5 to $10,000, whole cents." }),
    balanceAlertThreshold: t.field({ type: "Money", description: "Dollars: below it, an email is sent; null turns the alert off." }),
    removeSavedCard: t.boolean({ description: "Forgets the saved card, which turns auto-billing off." }),
  }),
});

builder.mutationField("updateBillingSettings", (t) =>
  t.withAuth({ permission: "BILLING" }).field({
    type: BillingSettingsRef,
    description: "Changes the auto-billing and alert settings, or forgets the saved card.",
    errors: {},
    args: { input: t.arg({ type: BillingSettingsInput, required: true, description: "The settings to change." }) },
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

const ChargeCategoryEnum = builder.enumType("ChargeCategory", {
  description: "What a charge is for.",
  values: describedValues(ChargeCategory, {
    GPU: "The rented GPUs, per GPU-hour while the instance runs.",
    STORAGE: "The instance's disk, per GB-month while it exists.",
    BANDWIDTH_UP: "Data the instance sent, per GB.",
    BANDWIDTH_DOWN: "Data the instance received, per GB.",
  }),
});

const ChargeLineRef = builder.objectRef<Awaited<ReturnType<typeof chargeLines>>[number]>("ChargeLine").implement({
  description: "What one instance was charged for one category on one day (UTC) at one rate.",
  fields: (t) => ({
    instanceId: t.globalID({ description: "The instance charged.", resolve: (line) => ({ type: "Instance", id: line.instanceId }) }),
    day: t.field({ type: "DateTime", description: "The day (UTC), at its midnight.", resolve: (line) => line.day }),
    category: t.field({ type: ChargeCategoryEnum, description: "What the charge is for.", resolve: (line) => line.category }),
    quantity: t.exposeString("quantity", { description: "In `unit`s, three decimals." }),
    unit: t.exposeString("unit", { description: "GPU-hour, GB-month (30 days) or GB (10^9 bytes)." }),
    rate: t.field({ type: "Money", description: "Per unit.", resolve: (line) => line.rateMicros }),
    amount: t.field({ type: "Money", description: "Dollars charged.", resolve: (line) => line.amountMicros }),
    description: t.exposeString("description", { description: 'Like "96.000 GPU-hours at $0.389/GPU-hour".' }),
  }),
});

builder.queryField("charges", (t) =>
  t.withAuth({ permission: "READ" }).connection(
    {
      type: ChargeLineRef,
      description:
        "The caller's charges on the days from `from` to `to`, per instance, day (UTC) and category, itemized; oldest day first. Its owner's keys only.",
      args: {
        from: t.arg({ type: "DateTime", required: true, description: "The first day (UTC) included." }),
        to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }),
        instanceId: t.arg.globalID({ description: "Only this instance's charges, such as \"Instance:7\"." }),
      },
      resolve: async (_root, args, ctx) =>
        resolveArrayConnection(
          { args },
          await chargeLines(ctx.viewer.userId, { from: args.from, to: args.to }, args.instanceId ? localId(args.instanceId, "Instance", "instanceId") : null),
        ),
    },
    { name: "ChargeLineConnection", description: "A page of charge lines.", fields: (c) => ({ totalCount: c.exposeInt("totalCount") }) },
    { name: "ChargeLineEdge" },
  ),
);

const EarningsRef = builder.objectRef<Awaited<ReturnType<typeof earningsDays>>[number]>("MachineEarnings").implement({
  description: "What one of the caller's machines earned on one day (UTC).",
  fields: (t) => ({
    machineId: t.globalID({ description: "The machine.", resolve: (day) => ({ type: "Machine", id: day.machineId }) }),
    day: t.field({ type: "DateTime", description: "The day (UTC), at its midnight.", resolve: (day) => day.day }),
    gpu: t.field({ type: "Money", description: "Dollars earned for GPU time (the host's share).", resolve: (day) => day.gpuMicros }),
    storage: t.field({ type: "Money", description: "Dollars earned for disk (the host's share).", resolve: (day) => day.storageMicros }),
    bandwidth: t.field({ type: "Money", description: "Dollars earned for data sent and received (the host's share).", resolve: (day) => day.bandwidthMicros }),
    total: t.field({ type: "Money", description: "All of the day's earnings, dollars.", resolve: (day) => day.totalMicros }),
  }),
});

builder.queryField("earnings", (t) =>
  t.withAuth({ permission: "READ" }).connection(
    {
      type: EarningsRef,
      description: "The caller's host earnings on the days from `from` to `to`, per machine and day (UTC); oldest day first. Its owner's keys only.",
      args: {
        from: t.arg({ type: "DateTime", required: true, description: "The first day (UTC) included." }),
        to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }),
        machineId: t.arg.globalID({ description: "Only this machine's earnings, such as \"Machine:12\"." }),
      },
      resolve: async (_root, args, ctx) =>
        resolveArrayConnection(
          { args },
          await earningsDays(ctx.viewer.userId, { from: args.from, to: args.to }, args.machineId ? localId(args.machineId, "Machine", "machineId") : null),
        ),
    },
    { name: "MachineEarningsConnection", description: "A page of machine earnings days.", fields: (c) => ({ totalCount: c.exposeInt("totalCount") }) },
    { name: "MachineEarningsEdge" },
  ),
);

const InvoiceKindEnum = builder.enumType("InvoiceKind", {
  description: "What moved money in or out of the balance, besides usage charges.",
  values: {
    PAYMENT: { description: "A card payment (addCredit, or auto-billing)." },
    ADJUSTMENT: { description: "A credit or correction by the platform, such as the free test credit." },
    REFUND: { description: "Money returned to the card." },
    PAYOUT: { description: "Host earnings paid out to the Stripe Connect account." },
  } as const,
});
const InvoiceStatusEnum = builder.enumType("InvoiceStatus", {
  description: "Whether the money moved.",
  values: {
    COMPLETED: { description: "Done: the balance shows it." },
    PENDING: { description: "Started, not yet confirmed." },
    FAILED: { description: "Refused or abandoned: the balance does not show it." },
  } as const,
});

const InvoiceItemRef = builder.objectRef<Awaited<ReturnType<typeof invoiceItems>>[number]>("InvoiceItem").implement({
  description: "One payment, credit, refund or payout of the account.",
  fields: (t) => ({
    at: t.field({ type: "DateTime", description: "When it was made.", resolve: (item) => item.at }),
    kind: t.field({ type: InvoiceKindEnum, description: "What kind of money movement.", resolve: (item) => item.kind }),
    status: t.field({ type: InvoiceStatusEnum, description: "Whether it went through.", resolve: (item) => item.status }),
    amount: t.field({ type: "Money", description: "Dollars, signed as on the balance (payouts negative).", resolve: (item) => item.amountMicros }),
    description: t.exposeString("description", { description: "What it was, for people." }),
  }),
});

builder.queryField("invoices", (t) =>
  t.withAuth({ permission: "READ" }).connection(
    {
      type: InvoiceItemRef,
      description:
        "The caller's payments (pending and failed ones too), credits and adjustments, refunds and payouts from `from` to `to`, newest first. Its owner's keys only.",
      args: {
        from: t.arg({ type: "DateTime", required: true, description: "The first instant included." }),
        to: t.arg({ type: "DateTime", required: true, description: "Exclusive." }),
      },
      resolve: async (_root, args, ctx) => resolveArrayConnection({ args }, await invoiceItems(ctx.viewer.userId, { from: args.from, to: args.to })),
    },
    { name: "InvoiceItemConnection", description: "A page of invoice items.", fields: (c) => ({ totalCount: c.exposeInt("totalCount") }) },
    { name: "InvoiceItemEdge" },
  ),
);

const PayoutStatusEnum = builder.enumType("PayoutStatus", {
  description: "Where a payout stands.",
  values: describedValues(PayoutStatus, {
    PENDING: "Debited from the balance; the Stripe transfer is being made (retried until it is).",
    PAID: "Transferred to the host's Stripe Connect account.",
    FAILED: "Stripe refused the transfer: the amount was credited back.",
    SKIPPED: "Enough to pay, but no Stripe Connect account: nothing moved.",
  }),
});

builder.prismaObject("Payout", {
  description: "A weekly host payout (Fridays) through Stripe Connect: the host's unpaid earnings, once they reach the minimum ($20).",
  fields: (t) => ({
    periodStart: t.expose("periodStart", { type: "DateTime", description: "The Friday (00:00 UTC) of the payout run." }),
    amount: t.field({ type: "Money", description: "Dollars paid out.", resolve: (payout) => payout.amountMicros }),
    status: t.expose("status", { type: PayoutStatusEnum, description: "Where it stands." }),
    destination: t.exposeString("destination", { nullable: true, description: "The Stripe Connect account it went to." }),
    note: t.exposeString("note", { nullable: true, description: "Why it was skipped or failed." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the payout run made it." }),
  }),
});

builder.queryField("payouts", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "Payout",
      cursor: "id",
      description: "The caller's host payouts, newest first. Its owner's keys only.",
      resolve: (query, _root, _args, ctx) => prisma.payout.findMany({ ...query, where: { hostId: ctx.viewer.userId }, orderBy: { id: "desc" } }),
      totalCount: (_root, _args, ctx) => prisma.payout.count({ where: { hostId: ctx.viewer.userId } }),
    },
    { name: "PayoutConnection", description: "A page of payouts." },
    { name: "PayoutEdge" },
  ),
);
