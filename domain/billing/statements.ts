import { z } from "zod";
import { config } from "../../infra/config.ts";
import { prisma } from "../../infra/db.ts";
import type { ChargeCategory } from "../../prisma/generated/client/client.ts";
import { NotFoundError } from "../errors.ts";
import { formatMoney } from "../money.ts";
import { parseInput } from "../validation.ts";
import { BYTES_PER_GB, PERIOD_SECONDS, SECONDS_PER_HOUR, SECONDS_PER_STORAGE_MONTH, periodStart } from "./rates.ts";
import { meteredUntilSql } from "./metering.ts";

/*
 * Statements, derived from the accrual rows metering and usage reports write (rates.ts), so that
 * they add up to the ledger exactly: a line's amount is the sum of its rows' charges, each row
 * floor(rate × its whole quantity); an open row is charged up to the metering clock. Lines are per
 * billing period (UTC day), instance (or machine) and category; a rate change within a day (a bid)
 * makes another line.
 */

const MAX_RANGE_DAYS = 366;

const rangeSchema = z
  .object({ from: z.date(), to: z.date() })
  .refine((r) => r.from < r.to, { message: "must be after `from`", path: ["to"] })
  .refine((r) => r.to.getTime() - r.from.getTime() <= MAX_RANGE_DAYS * PERIOD_SECONDS * 1000, {
    message: `must be at most ${MAX_RANGE_DAYS} days after \`from\``,
    path: ["to"],
  });

export interface StatementRange {
  from: Date;
  to: Date;
}

/** The billing periods (days) that start in [day of `from`, `to`). */
function periods(range: StatementRange): { first: Date; end: Date } {
  const { from, to } = parseInput(rangeSchema, range);
  return { first: new Date(periodStart(Math.floor(from.getTime() / 1000)) * 1000), end: to };
}

const UNITS: Record<ChargeCategory, { unit: string; plural: string; per: bigint }> = {
  GPU: { unit: "GPU-hour", plural: "GPU-hours", per: SECONDS_PER_HOUR },
  STORAGE: { unit: "GB-month", plural: "GB-months", per: SECONDS_PER_STORAGE_MONTH },
  BANDWIDTH_UP: { unit: "GB", plural: "GB", per: BYTES_PER_GB },
  BANDWIDTH_DOWN: { unit: "GB", plural: "GB", per: BYTES_PER_GB },
};
const CATEGORY_ORDER: ChargeCategory[] = ["GPU", "STORAGE", "BANDWIDTH_UP", "BANDWIDTH_DOWN"];

/** numerator / denominator with three decimals, rounded half up. */
function decimal3(numerator: bigint, denominator: bigint): string {
  const thousandths = (numerator * 1000n + denominator / 2n) / denominator;
  return `${thousandths / 1000n}.${(thousandths % 1000n).toString().padStart(3, "0")}`;
}

export interface ChargeLine {
  instanceId: number;
  day: Date;
  category: ChargeCategory;
  /** In `unit`s, three decimals: GPU-hours (GPUs × hours), GB-months (GB × months of 30 days) or GB (10^9 bytes). */
  quantity: string;
  unit: string;
  /** Per unit. */
  rateMicros: bigint;
  amountMicros: bigint;
  /** "96.000 GPU-hours at $0.389/GPU-hour". */
  description: string;
}

/** The quantity and charge of every accrual row, in one shape: time rows in unit-seconds, bandwidth in bytes. */
const ROWS = (owner: "client_id" | "host_id", group: "instance_id" | "machine_id") => `
  WITH rows AS (
    SELECT a.${group} AS subject, a.period_start, a.category, a.unit_price_micros, a.units::bigint * s.secs AS quantity,
           coalesce(a.amount_micros,
                    (a.unit_price_micros * a.units * s.secs) / CASE a.category WHEN 'GPU' THEN ${SECONDS_PER_HOUR} ELSE ${SECONDS_PER_STORAGE_MONTH} END) AS amount
      FROM time_accrual a
      CROSS JOIN LATERAL (SELECT coalesce(a.seconds, greatest(${meteredUntilSql("a.client_id")} - floor(extract(epoch FROM a.started_at))::bigint, 0)) AS secs) s
     WHERE a.${owner} = $1 AND a.period_start >= $2 AND a.period_start < $3 AND ($4::int[] IS NULL OR a.${group} = ANY($4::int[]))
    UNION ALL
    SELECT b.${group}, b.period_start, b.category, b.unit_price_micros, b.bytes, b.amount_micros
      FROM bandwidth_accrual b
     WHERE b.${owner} = $1 AND b.period_start >= $2 AND b.period_start < $3 AND ($4::int[] IS NULL OR b.${group} = ANY($4::int[]))
  )`;

/**
 * The caller's charges per instance, day and category, itemized with quantity and rate. With an
 * `instanceId`, only that instance's, which must be the caller's (another account's is NOT_FOUND).
 */
export async function chargeLines(userId: number, range: StatementRange, instanceId: number | null = null): Promise<ChargeLine[]> {
  const { first, end } = periods(range);
  if (instanceId !== null && !(await prisma.instance.findFirst({ where: { id: instanceId, clientId: userId }, select: { id: true } }))) {
    throw new NotFoundError("Instance");
  }
  const rows = await prisma.$queryRawUnsafe<
    { instanceId: number; day: Date; category: ChargeCategory; rate: bigint; quantity: bigint; amount: bigint }[]
  >(
    `${ROWS("client_id", "instance_id")}
     SELECT subject AS "instanceId", period_start AS day, category, unit_price_micros AS rate,
            sum(quantity)::bigint AS quantity, sum(amount)::bigint AS amount
       FROM rows GROUP BY subject, period_start, category, unit_price_micros
      HAVING sum(quantity) > 0
      ORDER BY period_start, subject, array_position($5::text[], category::text), unit_price_micros`,
    userId,
    first,
    end,
    instanceId === null ? null : [instanceId],
    CATEGORY_ORDER,
  );
  return rows.map((row) => {
    const { unit, plural, per } = UNITS[row.category];
    const quantity = decimal3(row.quantity, per);
    return {
      instanceId: row.instanceId,
      day: row.day,
      category: row.category,
      quantity,
      unit,
      rateMicros: row.rate,
      amountMicros: row.amount,
      description: `${quantity} ${plural} at $${formatMoney(row.rate)}/${unit}`,
    };
  });
}

/** A host's earnings split by what was charged; each part the host share under the platform fee. */
export interface EarningsSplit {
  gpuMicros: bigint;
  storageMicros: bigint;
  /** Up and down. */
  bandwidthMicros: bigint;
  totalMicros: bigint;
}

export interface EarningsDay extends EarningsSplit {
  machineId: number;
  day: Date;
}

/** Host-share sums of ROWS("host_id", …) as gpu, storage and bandwidth columns (fee in basis points is $5). */
const EARNINGS_SPLIT_COLUMNS = (() => {
  const share = "(amount - (amount * $5::bigint) / 10000)";
  return `coalesce(sum(${share}) FILTER (WHERE category = 'GPU'), 0)::bigint AS gpu,
          coalesce(sum(${share}) FILTER (WHERE category = 'STORAGE'), 0)::bigint AS storage,
          coalesce(sum(${share}) FILTER (WHERE category IN ('BANDWIDTH_UP', 'BANDWIDTH_DOWN')), 0)::bigint AS bandwidth`;
})();

function earningsSplit(row: { gpu: bigint; storage: bigint; bandwidth: bigint }): EarningsSplit {
  return { gpuMicros: row.gpu, storageMicros: row.storage, bandwidthMicros: row.bandwidth, totalMicros: row.gpu + row.storage + row.bandwidth };
}

/**
 * The caller's earnings as a host per machine and day, split GPU, storage and bandwidth: each
 * row's host share under the platform fee (rates.ts hostShare), as the EARNING entries grew. With a
 * `machineId`, only that machine's, which must be the caller's.
 */
export async function earningsDays(userId: number, range: StatementRange, machineId: number | null = null): Promise<EarningsDay[]> {
  const { first, end } = periods(range);
  if (machineId !== null && !(await prisma.machine.findFirst({ where: { id: machineId, hostId: userId }, select: { id: true } }))) {
    throw new NotFoundError("Machine");
  }
  const rows = await prisma.$queryRawUnsafe<{ machineId: number; day: Date; gpu: bigint; storage: bigint; bandwidth: bigint }[]>(
    `${ROWS("host_id", "machine_id")}
     SELECT subject AS "machineId", period_start AS day, ${EARNINGS_SPLIT_COLUMNS}
       FROM rows GROUP BY subject, period_start
      HAVING sum(quantity) > 0
      ORDER BY period_start, subject`,
    userId,
    first,
    end,
    machineId === null ? null : [machineId],
    config().PLATFORM_FEE_BPS,
  );
  return rows.map((row) => ({ machineId: row.machineId, day: row.day, ...earningsSplit(row) }));
}

/**
 * What the host has earned from each of these contracts (instances on its machines) since each
 * began, as it accrues: charged up to the metering clock, split as earningsDays. Instances on other
 * hosts' machines earn the caller nothing and come back as zero.
 */
export async function contractEarnings(hostId: number, instanceIds: readonly number[]): Promise<Map<number, EarningsSplit>> {
  const rows = await prisma.$queryRawUnsafe<{ instanceId: number; gpu: bigint; storage: bigint; bandwidth: bigint }[]>(
    `${ROWS("host_id", "instance_id")}
     SELECT subject AS "instanceId", ${EARNINGS_SPLIT_COLUMNS} FROM rows GROUP BY subject`,
    hostId,
    new Date(0),
    new Date(Date.UTC(9999, 11, 31)),
    [...instanceIds],
    config().PLATFORM_FEE_BPS,
  );
  const zero = earningsSplit({ gpu: 0n, storage: 0n, bandwidth: 0n });
  const byInstance = new Map(rows.map((row) => [row.instanceId, earningsSplit(row)]));
  return new Map(instanceIds.map((id) => [id, byInstance.get(id) ?? zero]));
}

export type InvoiceKind = "PAYMENT" | "ADJUSTMENT" | "REFUND" | "PAYOUT";
export type InvoiceStatus = "COMPLETED" | "PENDING" | "FAILED";

export interface InvoiceItem {
  at: Date;
  kind: InvoiceKind;
  status: InvoiceStatus;
  /** Signed as on the balance: payments and credits positive, refunds and payouts negative. */
  amountMicros: bigint;
  description: string;
}

/**
 * The caller's money in and out in [from, to), newest first: the ledger's payments, credits and
 * corrections (ADJUSTMENT), refunds and payouts, and the payments that did not (or not yet) reach
 * it: pending and failed ones, with the reason.
 */
export async function invoiceItems(userId: number, range: StatementRange): Promise<InvoiceItem[]> {
  const { from, to } = parseInput(rangeSchema, range);
  const [entries, payments] = await Promise.all([
    prisma.ledgerEntry.findMany({
      where: { userId, kind: { in: ["PAYMENT", "ADJUSTMENT", "REFUND", "PAYOUT"] }, createdAt: { gte: from, lt: to } },
      select: { createdAt: true, kind: true, amountMicros: true, description: true },
    }),
    prisma.payment.findMany({
      where: { userId, status: { in: ["PENDING", "FAILED"] }, createdAt: { gte: from, lt: to } },
      select: { createdAt: true, kind: true, status: true, amountMicros: true, failureMessage: true },
    }),
  ]);
  const items: InvoiceItem[] = [
    ...entries.map((entry) => ({
      at: entry.createdAt,
      kind: entry.kind as InvoiceKind,
      status: "COMPLETED" as const,
      amountMicros: entry.amountMicros,
      description: entry.description,
    })),
    ...payments.map((payment) => {
      const what = payment.kind === "AUTO_BILL" ? "Auto-billing charge" : "Card payment";
      return {
        at: payment.createdAt,
        kind: "PAYMENT" as const,
        status: payment.status as "PENDING" | "FAILED",
        amountMicros: payment.amountMicros,
        description:
          payment.status === "FAILED"
            ? `${what} of $${formatMoney(payment.amountMicros)} failed: ${payment.failureMessage ?? "declined"}`
            : `${what} of $${formatMoney(payment.amountMicros)} pending`,
      };
    }),
  ];
  return items.sort((a, b) => b.at.getTime() - a.at.getTime());
}
