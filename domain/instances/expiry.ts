import { prisma } from "../../infra/db.ts";
import { flagMachinesForClearing, requeueStaleClearings } from "../auction/service.ts";
import { INSTANCE_STATUSES, TRANSITIONS } from "./lifecycle.ts";
import { publishInstanceChanges } from "./status.ts";

/** The statuses the lifecycle table lets expire: the one source of which instances this job ends. */
const EXPIRABLE = INSTANCE_STATUSES.filter((status) => TRANSITIONS[status].EXPIRED === "EXITED");

/**
 * Ends every contract past its end date in one statement: stopped for good (EXITED), with its
 * history row, then the auction re-clears the machines that lost a contract. Rows locked by a
 * running clearing or mutation are skipped and taken on the next run, so this never waits on them
 * (and never deadlocks with them). Returns how many instances it ended.
 */
export async function expireInstances(now = new Date()): Promise<number> {
  const ended = await prisma.$queryRaw<{ id: number; machineId: number; clientId: number }[]>`
    WITH due AS (
      SELECT id, status FROM instance
       WHERE end_date <= ${now} AND status = ANY(${EXPIRABLE}::"InstanceStatus"[])
       FOR UPDATE SKIP LOCKED
    ), ended AS (
      UPDATE instance i
         SET status = 'EXITED', intended_status = 'STOPPED', status_message = 'lifetime ended',
             status_changed_at = ${now}, preempt_grace_seconds = NULL
        FROM due WHERE i.id = due.id
      RETURNING i.id, i.machine_id, i.client_id, due.status AS from_status
    ), history AS (
      INSERT INTO instance_status_change (instance_id, from_status, to_status, event, message, at)
      SELECT id, from_status, 'EXITED', 'EXPIRED', 'lifetime ended', ${now} FROM ended
    )
    SELECT id, machine_id AS "machineId", client_id AS "clientId" FROM ended`;
  await flagMachinesForClearing([...new Set(ended.map((row) => row.machineId))], now);
  publishInstanceChanges(ended.map((row) => ({ clientId: row.clientId, instanceId: row.id })));
  return ended.length;
}

/** The maintenance job: contracts that ended, and clearings whose job was lost. */
export async function maintainInstances(now = new Date()): Promise<{ expired: number; requeued: number }> {
  const expired = await expireInstances(now);
  const requeued = await requeueStaleClearings(5_000, now);
  return { expired, requeued };
}
