import { z } from "zod";
import { prisma } from "../../infra/db.ts";
import type { Prisma } from "../../prisma/generated/client/client.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { parseInput } from "../validation.ts";
import { creditAmount } from "./checkout.ts";

export interface BillingSettings {
  /** "visa •••• 4242": the card kept at Stripe for off-session charges, if any. */
  savedCard: string | null;
  autoBillThresholdMicros: bigint | null;
  autoBillAmountMicros: bigint | null;
  balanceAlertThresholdMicros: bigint | null;
  payoutAccountId: string | null;
  payoutsEnabled: boolean;
}

const SELECT = {
  savedCardLabel: true,
  stripePaymentMethodId: true,
  autoBillThresholdMicros: true,
  autoBillAmountMicros: true,
  balanceAlertThresholdMicros: true,
  stripeConnectAccountId: true,
  payoutsEnabled: true,
} as const;

type Row = Prisma.UserGetPayload<{ select: typeof SELECT }>;

function toSettings(row: Row): BillingSettings {
  return {
    savedCard: row.stripePaymentMethodId ? (row.savedCardLabel ?? "card") : null,
    autoBillThresholdMicros: row.autoBillThresholdMicros,
    autoBillAmountMicros: row.autoBillAmountMicros,
    balanceAlertThresholdMicros: row.balanceAlertThresholdMicros,
    payoutAccountId: row.stripeConnectAccountId,
    payoutsEnabled: row.payoutsEnabled,
  };
}

export async function billingSettings(userId: number): Promise<BillingSettings> {
  const row = await prisma.user.findUnique({ where: { id: userId }, select: SELECT });
  if (!row) throw new NotFoundError("User");
  return toSettings(row);
}

const threshold = z.bigint().min(0n, "must not be negative").max(100_000_000_000n, "must be at most $100,000");

const settingsSchema = z.object({
  // Absent: unchanged; null: off.
  autoBillThreshold: threshold.nullish(),
  autoBillAmount: creditAmount.nullish(),
  balanceAlertThreshold: threshold.nullish(),
  removeSavedCard: z.boolean().nullish(),
});

export type BillingSettingsInput = z.input<typeof settingsSchema>;

/**
 * Updates the auto-billing and alert settings. A changed threshold starts with a fresh crossing
 * record, so a balance already below it is charged (or alerted) on the next watch. Auto-billing
 * needs a saved card and an amount; removing the card turns it off.
 */
export async function updateBillingSettings(userId: number, input: BillingSettingsInput): Promise<BillingSettings> {
  const parsed = parseInput(settingsSchema, input);
  return prisma.$transaction(async (tx) => {
    const current = await tx.user.findUnique({ where: { id: userId }, select: SELECT });
    if (!current) throw new NotFoundError("User");
    const removeCard = parsed.removeSavedCard === true;
    const next = {
      autoBillThresholdMicros: removeCard ? null : parsed.autoBillThreshold === undefined ? current.autoBillThresholdMicros : parsed.autoBillThreshold,
      autoBillAmountMicros: parsed.autoBillAmount === undefined ? current.autoBillAmountMicros : parsed.autoBillAmount,
      balanceAlertThresholdMicros:
        parsed.balanceAlertThreshold === undefined ? current.balanceAlertThresholdMicros : parsed.balanceAlertThreshold,
    };
    if (next.autoBillThresholdMicros !== null) {
      if (!current.stripePaymentMethodId) {
        throw new ValidationError([{ path: ["autoBillThreshold"], message: "needs a saved card: pay once with addCredit(saveCard: true)" }]);
      }
      if (next.autoBillAmountMicros === null) {
        throw new ValidationError([{ path: ["autoBillAmount"], message: "is required with an auto-billing threshold" }]);
      }
    }
    const row = await tx.user.update({
      where: { id: userId },
      data: {
        ...next,
        ...(next.autoBillThresholdMicros !== current.autoBillThresholdMicros ? { autoBillCrossedAt: null } : {}),
        ...(next.balanceAlertThresholdMicros !== current.balanceAlertThresholdMicros ? { balanceAlertCrossedAt: null } : {}),
        ...(removeCard ? { stripePaymentMethodId: null, savedCardLabel: null } : {}),
      },
      select: SELECT,
    });
    return toSettings(row);
  });
}
