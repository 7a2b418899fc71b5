import { z } from "zod";
import { config } from "../../infra/config.ts";
import { type Db, isBoundViolation, type Tx } from "../../infra/db.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { parseInput } from "../validation.ts";
import { bandwidthAmount, hostShare, periodStart } from "./rates.ts";

const counter = z.bigint().min(0n, "byte counters are never negative");
const usageSchema = z.object({ instanceId: z.number().int().positive(), rxBytes: counter, txBytes: counter });

export interface UsageCharge {
  /** Bytes newly counted by this report. */
  rxBytes: bigint;
  txBytes: bigint;
  /** µ$ charged for them. */
  chargedMicros: bigint;
}

/**
 * The agent's bandwidth report: the container's received (rx, charged at the contract's download
 * price) and sent (tx, upload price) byte counters since it was created. Counters only grow: the
 * bytes above the highest value seen are charged, a repeated or stale (lower) report counts
 * nothing, so retries never double count. Bytes are charged whatever the status and into the
 * period of the report; each period's row is charged floor(price × total bytes / 10^9), and the
 * balance and ledger move by the growth of that floor (rates.ts), in one transaction.
 */
export async function recordUsage(
  db: Db | Tx,
  instanceId: number,
  rxBytesCounter: bigint,
  txBytesCounter: bigint,
  now = new Date(),
): Promise<UsageCharge> {
  const input = parseInput(usageSchema, { instanceId, rxBytes: rxBytesCounter, txBytes: txBytesCounter });
  // Inside the caller's transaction when given one; its own otherwise (the counter lock must hold to commit).
  const run = async (tx: Tx): Promise<UsageCharge> => {
    const [instance] = await tx.$queryRaw<
      { clientId: number; hostId: number; machineId: number; down: bigint; up: bigint; downMbps: number; upMbps: number; createdAt: Date }[]
    >`SELECT i.client_id AS "clientId", m.host_id AS "hostId", i.machine_id AS "machineId",
              i.inet_down_price_per_gb_micros AS down, i.inet_up_price_per_gb_micros AS up,
              m.inet_down_mbps AS "downMbps", m.inet_up_mbps AS "upMbps", i.created_at AS "createdAt"
         FROM instance i JOIN machine m ON m.id = i.machine_id WHERE i.id = ${input.instanceId}`;
    if (!instance) throw new NotFoundError("Instance");
    // The counter row serializes reports of one instance; the first report inserts it, as of the
    // instance's creation (where the link-speed bound below starts counting).
    await tx.$executeRaw`INSERT INTO bandwidth_counter (instance_id, rx_bytes, tx_bytes, updated_at)
      VALUES (${input.instanceId}, 0, 0, ${instance.createdAt}) ON CONFLICT DO NOTHING`;
    const [last] = await tx.$queryRaw<{ rx: bigint; tx: bigint; at: Date }[]>`
      SELECT rx_bytes AS rx, tx_bytes AS tx, updated_at AS at FROM bandwidth_counter WHERE instance_id = ${input.instanceId} FOR UPDATE`;
    const rx = input.rxBytes > last.rx ? input.rxBytes - last.rx : 0n;
    const txBytes = input.txBytes > last.tx ? input.txBytes - last.tx : 0n;
    if (rx === 0n && txBytes === 0n) return { rxBytes: 0n, txBytes: 0n, chargedMicros: 0n };
    const seconds = (now.getTime() - last.at.getTime()) / 1000;
    const issues = [
      ["rxBytes", rx, instance.downMbps],
      ["txBytes", txBytes, instance.upMbps],
    ].flatMap(([field, bytes, mbps]) =>
      (bytes as bigint) > linkBytes(mbps as number, seconds)
        ? [{ path: [field as string], message: `grew more than the machine's ${mbps} Mbps link can carry in ${Math.max(0, Math.round(seconds))} s` }]
        : [],
    );
    if (issues.length) throw new ValidationError(issues);
    await tx.$executeRaw`UPDATE bandwidth_counter SET rx_bytes = greatest(rx_bytes, ${input.rxBytes}), tx_bytes = greatest(tx_bytes, ${input.txBytes}),
      updated_at = ${now} WHERE instance_id = ${input.instanceId}`;
    const period = new Date(periodStart(Math.floor(now.getTime() / 1000)) * 1000);
    const fee = config().PLATFORM_FEE_BPS;
    let charged = 0n;
    let earned = 0n;
    const moves: { category: "BANDWIDTH_DOWN" | "BANDWIDTH_UP"; charge: bigint; earning: bigint }[] = [];
    for (const [category, bytes, price] of [
      ["BANDWIDTH_DOWN", rx, instance.down],
      ["BANDWIDTH_UP", txBytes, instance.up],
    ] as const) {
      if (bytes === 0n || price === 0n) continue;
      const [row] = await tx.$queryRaw<{ bytes: bigint; amount: bigint }[]>`
        INSERT INTO bandwidth_accrual (instance_id, client_id, host_id, machine_id, category, period_start, unit_price_micros, bytes, amount_micros)
        VALUES (${input.instanceId}, ${instance.clientId}, ${instance.hostId}, ${instance.machineId}, ${category}::"ChargeCategory", ${period}, ${price}, ${bytes}, 0)
        ON CONFLICT (instance_id, category, period_start, unit_price_micros) DO UPDATE SET bytes = bandwidth_accrual.bytes + excluded.bytes
        RETURNING bytes, amount_micros AS amount`;
      const amount = bandwidthAmount(price, row.bytes);
      const charge = amount - row.amount;
      if (charge === 0n) continue;
      await tx.$executeRaw`UPDATE bandwidth_accrual SET amount_micros = ${amount}
        WHERE instance_id = ${input.instanceId} AND category = ${category}::"ChargeCategory" AND period_start = ${period} AND unit_price_micros = ${price}`;
      const earning = hostShare(amount, fee) - hostShare(row.amount, fee);
      moves.push({ category, charge, earning });
      charged += charge;
      earned += earning;
    }
    if (moves.length) await moveBalances(tx, period, instance.clientId, instance.hostId, moves, charged, earned);
    return { rxBytes: rx, txBytes, chargedMicros: charged };
  };
  const charging = "$transaction" in db ? db.$transaction(run) : run(db);
  // A charge that would take a balance or a ledger entry past its bound is the report's fault to
  // answer, not a server error; nothing was counted (the transaction rolled back).
  return charging.catch((error: unknown) => {
    if (!isBoundViolation(error)) throw error;
    const fields = [["rxBytes", input.rxBytes], ["txBytes", input.txBytes]] as const;
    throw new ValidationError(
      fields.filter(([, bytes]) => bytes > 0n).map(([field]) => ({ path: [field], message: "would take an account's balance past its bound" })),
    );
  });
}

/**
 * Reported growth is taken for real only up to what the machine's registered link can move in the
 * time since the last counted report (or since the instance was created), with slack for clocks
 * and counters that are read a moment apart: USAGE_SLACK_FACTOR times the bytes of
 * USAGE_SLACK_SECONDS more. Anything above is refused whole and nothing is counted; a true counter
 * is accepted by a later report, when the time since covers it.
 */
const USAGE_SLACK_FACTOR = 1.25;
const USAGE_SLACK_SECONDS = 30;
const BYTES_PER_SECOND_PER_MBPS = 125_000;

function linkBytes(mbps: number, seconds: number): bigint {
  return BigInt(Math.ceil(mbps * BYTES_PER_SECOND_PER_MBPS * (Math.max(0, seconds) + USAGE_SLACK_SECONDS) * USAGE_SLACK_FACTOR));
}

/** Grows the period's CHARGE and EARNING entries and moves both balances, accounts locked in id order. */
async function moveBalances(
  tx: Tx,
  period: Date,
  clientId: number,
  hostId: number,
  moves: { category: string; charge: bigint; earning: bigint }[],
  charged: bigint,
  earned: bigint,
): Promise<void> {
  await tx.$queryRaw`SELECT id FROM user_account WHERE id = ANY(${[clientId, hostId]}::int[]) ORDER BY id FOR UPDATE`;
  const userIds = [...moves.map(() => clientId), ...moves.map(() => hostId)];
  const kinds = [...moves.map(() => "CHARGE"), ...moves.map(() => "EARNING")];
  const categories = [...moves.map((m) => m.category), ...moves.map((m) => m.category)];
  const amounts = [...moves.map((m) => -m.charge), ...moves.map((m) => m.earning)];
  await tx.$executeRaw`
    INSERT INTO ledger_entry (user_id, kind, category, period_start, amount_micros, description)
    SELECT v.user_id, v.kind::"LedgerEntryKind", v.category::"ChargeCategory", ${period}, v.amount,
           initcap(replace(v.category, '_', ' ')) || CASE v.kind WHEN 'CHARGE' THEN ' charges ' ELSE ' earnings ' END
             || to_char(${period}::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD')
      FROM unnest(${userIds}::int[], ${kinds}::text[], ${categories}::text[], ${amounts}::bigint[]) AS v(user_id, kind, category, amount)
     WHERE v.amount <> 0
    ON CONFLICT (user_id, kind, category, period_start) DO UPDATE SET amount_micros = ledger_entry.amount_micros + excluded.amount_micros`;
  await tx.$executeRaw`
    UPDATE user_account SET balance_micros = balance_micros + CASE WHEN id = ${clientId} THEN ${-charged}::bigint ELSE 0 END
                                                            + CASE WHEN id = ${hostId} THEN ${earned}::bigint ELSE 0 END
     WHERE id IN (${clientId}, ${hostId})`;
}
