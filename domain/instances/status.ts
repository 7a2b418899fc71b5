import type { Tx } from "../../infra/db.ts";
import { publishEach } from "../../infra/pubsub.ts";
import type { Instance, InstanceStatus } from "../../prisma/generated/client/client.ts";
import { type InstanceEvent, intendedStatus, transition } from "./lifecycle.ts";

/** What a status change writes besides the status itself. */
export interface StatusChange {
  message?: string | null;
  preemptGraceSeconds?: number | null;
  bidPlacedAt?: Date;
  destroyedAt?: Date;
}

/**
 * Applies `event` to an instance whose current status the caller read under the machine's row lock:
 * the lifecycle table decides (IllegalTransitionError when it has no entry), the history records
 * every real change. Returns the updated row.
 */
export async function applyEvent(
  db: Tx,
  instance: { id: number; status: InstanceStatus },
  event: InstanceEvent,
  change: StatusChange = {},
  now = new Date(),
): Promise<Instance> {
  const to = transition(instance.status, event);
  const moved = to !== instance.status;
  const updated = await db.instance.update({
    where: { id: instance.id },
    data: {
      status: to,
      intendedStatus: intendedStatus(to),
      ...(moved || change.message !== undefined ? { statusMessage: change.message ?? null } : {}),
      ...(moved ? { statusChangedAt: now } : {}),
      ...(change.preemptGraceSeconds !== undefined ? { preemptGraceSeconds: change.preemptGraceSeconds } : {}),
      ...(change.bidPlacedAt ? { bidPlacedAt: change.bidPlacedAt } : {}),
      ...(change.destroyedAt ? { destroyedAt: change.destroyedAt } : {}),
    },
  });
  if (moved) {
    await db.instanceStatusChange.create({
      data: { instanceId: instance.id, fromStatus: instance.status, toStatus: to, event, message: change.message ?? null, at: now },
      select: { id: true },
    });
  }
  return updated;
}

export interface BatchedEvent {
  instance: { id: number; status: InstanceStatus };
  event: InstanceEvent;
  message: string | null;
  /** A number or null sets it; undefined leaves it. */
  preemptGraceSeconds?: number | null;
}

/**
 * `applyEvent` for many instances in one statement (the auction's clearing): each transition is
 * checked against the lifecycle table first, so one illegal event writes nothing. `messages`: new
 * status messages for instances whose status stays, written by the same statement. Returns the new
 * statuses in input order.
 */
export async function applyEvents(
  db: Tx,
  events: BatchedEvent[],
  now = new Date(),
  messages: { id: number; message: string | null }[] = [],
): Promise<InstanceStatus[]> {
  const targets = events.map(({ instance, event }) => transition(instance.status, event));
  const moved = events.map((e, i) => ({ ...e, to: targets[i] })).filter((e) => e.to !== e.instance.status);
  if (moved.length || messages.length) {
    const column = <T>(value: (event: (typeof moved)[number]) => T) => moved.map(value);
    await db.$executeRaw`
      WITH v AS (
        SELECT * FROM unnest(${column((e) => e.instance.id)}::int[], ${column((e) => e.instance.status)}::text[], ${column((e) => e.to)}::text[],
                             ${column((e) => intendedStatus(e.to))}::text[], ${column((e) => e.event)}::text[], ${column((e) => e.message)}::text[],
                             ${column((e) => e.preemptGraceSeconds !== undefined)}::bool[], ${column((e) => e.preemptGraceSeconds ?? null)}::int[])
          AS v(id, from_status, to_status, intended, event, message, grace_set, grace)
      ), updated AS (
        UPDATE instance i
           SET status = v.to_status::"InstanceStatus", intended_status = v.intended::"IntendedStatus",
               status_message = v.message, status_changed_at = ${now},
               preempt_grace_seconds = CASE WHEN v.grace_set THEN v.grace ELSE i.preempt_grace_seconds END
          FROM v WHERE i.id = v.id
      ), messaged AS (
        UPDATE instance i SET status_message = m.message
          FROM unnest(${messages.map((m) => m.id)}::int[], ${messages.map((m) => m.message)}::text[]) AS m(id, message) WHERE i.id = m.id
      )
      INSERT INTO instance_status_change (instance_id, from_status, to_status, event, message, at)
      SELECT id, from_status::"InstanceStatus", to_status::"InstanceStatus", event, message, ${now} FROM v`;
  }
  return targets;
}

export interface InstanceOfClient {
  clientId: number;
  instanceId: number;
}

/** After commit: one instanceStatus event per client, naming that client's changed instances. */
export function publishInstanceChanges(changed: readonly InstanceOfClient[]): void {
  publishByClient("instanceStatus", changed);
}

/** After commit: one bids event per client, naming that client's bids whose standing or price to win moved. */
export function publishBidChanges(moved: readonly InstanceOfClient[]): void {
  publishByClient("bids", moved);
}

function publishByClient(key: "instanceStatus" | "bids", changed: readonly InstanceOfClient[]): void {
  const byClient = new Map<number, number[]>();
  for (const { clientId, instanceId } of changed) byClient.set(clientId, [...(byClient.get(clientId) ?? []), instanceId]);
  publishEach(key, byClient.keys(), (clientId) => ({ instanceIds: byClient.get(clientId)! }));
}
