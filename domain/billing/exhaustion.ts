import { prisma } from "../../infra/db.ts";
import { flagMachinesForClearing } from "../auction/service.ts";
import { INSTANCE_STATUSES, TRANSITIONS } from "../instances/lifecycle.ts";
import { publishInstanceChanges } from "../instances/status.ts";

/** The statuses the lifecycle table stops on BALANCE_EXHAUSTED (stopped ones stay as they are). */
const STOPPABLE = INSTANCE_STATUSES.filter((status) => TRANSITIONS[status].BALANCE_EXHAUSTED === "STOPPED" && status !== "STOPPED");

export const BALANCE_EXHAUSTED_MESSAGE = "stopped: the account's balance is exhausted";

/**
 * Stops (never destroys) every instance that wants to run of an account whose balance is zero or
 * below and that is not in debit mode, in one statement with its history rows (event
 * BALANCE_EXHAUSTED), then asks the auction to re-clear their machines. The disks stay, so storage
 * keeps accruing. Rows locked by a running clearing or mutation are skipped and stopped on the next
 * tick. Only among `accounts` when given: the metering tick passes those it just charged (every
 * account with a running instance is charged each second, by its phase's tick, so whatever else
 * debited it is caught then too), found by index instead of a scan of every instance 8 times a
 * second. Returns how many instances it stopped.
 */
export function stopExhaustedAccounts(now = new Date(), accounts: number[] | null = null): Promise<number> {
  return stopInstances(
    now,
    `u.balance_micros <= 0 AND NOT u.debit_mode AND ($3::int[] IS NULL OR i.client_id = ANY($3::int[]))`,
    accounts,
    BALANCE_EXHAUSTED_MESSAGE,
  );
}

export const METERING_HOLD_MESSAGE = "stopped: the account's billing is on hold";

/**
 * Stops the instances of accounts metering put on hold (domain/billing/metering.ts): those they
 * rent and those on their machines, whose charges the hold leaves out too.
 */
export function stopHeldAccounts(held: number[], now = new Date()): Promise<number> {
  return stopInstances(
    now,
    `(i.client_id = ANY($3::int[]) OR i.machine_id IN (SELECT id FROM machine WHERE host_id = ANY($3::int[])))`,
    held,
    METERING_HOLD_MESSAGE,
  );
}

/** Stops, as BALANCE_EXHAUSTED, the instances that want to run and meet `due` (SQL over i and u, $3 = `ids`). */
async function stopInstances(now: Date, due: string, ids: number[] | null, message: string): Promise<number> {
  const stopped = await prisma.$queryRawUnsafe<{ instanceId: number; clientId: number; machineId: number }[]>(
    `WITH due AS (
       SELECT i.id, i.status FROM instance i JOIN user_account u ON u.id = i.client_id
        WHERE i.status = ANY($2::"InstanceStatus"[]) AND ${due}
        FOR UPDATE OF i SKIP LOCKED
     ), stopped AS (
       UPDATE instance i
          SET status = 'STOPPED', intended_status = 'STOPPED', status_message = $4,
              status_changed_at = $1, preempt_grace_seconds = NULL
         FROM due WHERE i.id = due.id
       RETURNING i.id, i.client_id, i.machine_id, due.status AS from_status
     ), history AS (
       INSERT INTO instance_status_change (instance_id, from_status, to_status, event, message, at)
       SELECT id, from_status, 'STOPPED', 'BALANCE_EXHAUSTED', $4, $1 FROM stopped
     )
     SELECT id AS "instanceId", client_id AS "clientId", machine_id AS "machineId" FROM stopped`,
    now,
    STOPPABLE,
    ids,
    message,
  );
  await flagMachinesForClearing([...new Set(stopped.map((row) => row.machineId))], now);
  publishInstanceChanges(stopped);
  return stopped.length;
}
