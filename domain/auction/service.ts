import type { Tx } from "../../infra/db.ts";
import { prisma } from "../../infra/db.ts";
import { logger } from "../../infra/logger.ts";
import { publish } from "../../infra/pubsub.ts";
import { producerQueue } from "../../infra/queues.ts";
import { type InstanceStatus, Prisma } from "../../prisma/generated/client/client.ts";
import { type BatchedEvent, type InstanceOfClient, applyEvents, publishBidChanges, publishInstanceChanges } from "../instances/status.ts";
import type { InstanceEvent } from "../instances/lifecycle.ts";
import { formatMoney } from "../money.ts";
import { maintenanceStartSql, syncOfferAvailability } from "../offers/sync.ts";
import { recordBidPositions } from "./bids.ts";
import { bidPositions } from "./book.ts";
import { type Outcome, clearMachine } from "./clearing.ts";
import {
  HOLDING_STATUSES,
  type LiveInstance,
  type MachineForAuction,
  auctionMachine,
  liveInstances,
  onDemandClaim,
  toContract,
} from "./contracts.ts";
import { assignGpuIndices } from "./gpuIndices.ts";

/*
 * The database side of the auction. Every event that can change who runs on a machine happens in a
 * transaction that locks the machine row with `lockMachineForEvent` (which also flags the machine
 * as needing a clearing), and after commit calls `enqueueClearing`. The auction worker then runs
 * `clearMachineNow`, one transaction under the same lock. A lost job (crash, Redis down) leaves the
 * flag set, and `requeueStaleClearings` finds it.
 */

export const AUCTION_QUEUE = "auction";

export interface LockedMachine extends MachineForAuction {
  id: number;
  hostId: number;
  listed: boolean;
  verification: "UNVERIFIED" | "VERIFIED" | "DEVERIFIED";
  minChunk: number;
  diskSpaceGb: number;
  endDate: Date | null;
  inMaintenance: boolean;
  /** When its next maintenance window (or the one in progress) starts; null when none is scheduled. */
  maintenanceStartsAt: Date | null;
  storagePricePerGbMonthMicros: bigint | null;
  inetUpPricePerGbMicros: bigint | null;
  inetDownPricePerGbMicros: bigint | null;
  preemptGraceSeconds: number;
  gpusOnDemand: number;
  directPortStart: number | null;
  directPortEnd: number | null;
  /** The agent's last metrics: whether it can hand out GPUs (agent/gpuCapability.ts). */
  metrics: Prisma.JsonValue;
}

const MACHINE_COLUMNS = Prisma.sql`id, host_id AS "hostId", num_gpus AS "numGpus", online, listed, verification::text AS verification,
  min_chunk AS "minChunk", disk_space_gb AS "diskSpaceGb", end_date AS "endDate", in_maintenance AS "inMaintenance",
  ${Prisma.raw(maintenanceStartSql("machine.id"))} AS "maintenanceStartsAt",
  price_per_gpu_hour_micros AS "pricePerGpuHourMicros", min_bid_per_gpu_hour_micros AS "minBidPerGpuHourMicros",
  storage_price_per_gb_month_micros AS "storagePricePerGbMonthMicros",
  inet_up_price_per_gb_micros AS "inetUpPricePerGbMicros", inet_down_price_per_gb_micros AS "inetDownPricePerGbMicros",
  preempt_grace_seconds AS "preemptGraceSeconds", gpus_on_demand AS "gpusOnDemand",
  direct_port_start AS "directPortStart", direct_port_end AS "directPortEnd", metrics`;

/**
 * What every event that can change who runs on a machine sets on its row: flagged for clearing (since
 * `at`, an SQL expression, unless it already is) and its assignments' revision bumped
 * (domain/agent/assignments.ts), so that the clearing runs and the agent refetches.
 */
export function flagForClearingSql(at: string): string {
  return `clearing_requested_at = COALESCE(clearing_requested_at, ${at}), assignments_revision = assignments_revision + 1`;
}

const FLAG_FOR_CLEARING_NOW = Prisma.raw(flagForClearingSql("now()"));

/**
 * `flagForClearingSql` for machines whose instances a sweep (expiry, exhausted balances) has
 * already changed in its own committed statement: machine rows after instance rows, never both in
 * one transaction, so no lock-order deadlock with the clearing. Their clearings are enqueued after.
 */
export async function flagMachinesForClearing(machineIds: number[], now: Date): Promise<void> {
  if (!machineIds.length) return;
  await prisma.$executeRaw`
    UPDATE machine SET ${Prisma.raw(flagForClearingSql("p.at"))} FROM (SELECT ${now}::timestamptz AS at) p WHERE machine.id = ANY(${machineIds}::int[])`;
  for (const machineId of machineIds) await enqueueClearing(machineId);
}

/**
 * Locks the machine row for an event that can change who runs on it, flags it for clearing and
 * bumps its assignments' revision (domain/agent/assignments.ts), in one statement. Every writer of a machine's contracts takes this lock first (machine, then its
 * instances), so admission and clearing never interleave. Null when the machine does not exist.
 */
export async function lockMachineForEvent(tx: Tx, machineId: number): Promise<LockedMachine | null> {
  const rows = await tx.$queryRaw<LockedMachine[]>`
    UPDATE machine SET ${FLAG_FOR_CLEARING_NOW} WHERE id = ${machineId} RETURNING ${MACHINE_COLUMNS}`;
  return rows[0] ?? null;
}

/**
 * `lockMachineForEvent` for the machine of an instance (an instance never moves), found in the same
 * statement; `clientId` restricts it to the client's own instance. Null when there is no such instance.
 */
export async function lockMachineOfInstance(tx: Tx, instanceId: number, clientId: number | null): Promise<LockedMachine | null> {
  const rows = await tx.$queryRaw<LockedMachine[]>`
    UPDATE machine SET ${FLAG_FOR_CLEARING_NOW}
     WHERE id = (SELECT machine_id FROM instance WHERE id = ${instanceId} AND (${clientId}::int IS NULL OR client_id = ${clientId}::int))
     RETURNING ${MACHINE_COLUMNS}`;
  return rows[0] ?? null;
}

/**
 * Asks the auction worker to clear the machine, once: while a clearing of it is waiting, further
 * requests merge into it; while one runs, one more is kept to run after it (it may have read the
 * contracts before this event committed). Never throws: a request that cannot reach Redis stays
 * flagged on the machine row and is requeued by the maintenance job.
 */
export async function enqueueClearing(machineId: number): Promise<void> {
  try {
    const q = producerQueue(AUCTION_QUEUE);
    await q.waitUntilReady();
    await q.add(
      "clear",
      { machineId },
      {
        deduplication: { id: `machine-${machineId}`, keepLastIfActive: true },
        attempts: 3,
        backoff: { type: "exponential", delay: 100 },
        removeOnComplete: true,
        removeOnFail: 1000,
      },
    );
  } catch (err) {
    logger.warn({ err, machineId }, "could not enqueue clearing; the maintenance job will requeue it");
  }
}

/** The machines whose clearing was requested over `olderThanMs` ago and has not run: enqueued again. */
export async function requeueStaleClearings(olderThanMs = 5_000, now = new Date()): Promise<number> {
  // Oldest request first: the machines that have waited longest are cleared first.
  const stale = await prisma.machine.findMany({
    where: { clearingRequestedAt: { lt: new Date(now.getTime() - olderThanMs) } },
    orderBy: [{ clearingRequestedAt: "asc" }, { id: "asc" }],
    select: { id: true },
  });
  for (const { id } of stale) await enqueueClearing(id);
  return stale.length;
}

/** A status change the clearing made, for logs, tests and the benchmark. */
export interface ClearingChange {
  instanceId: number;
  from: InstanceStatus;
  to: InstanceStatus;
  message: string | null;
}

const GPU_HOUR = "/GPU/hr";

/** What an outcome means for an instance in its current status: an event, or only a new message. */
function decide(
  instance: LiveInstance,
  outcome: Outcome,
  minBidMicros: bigint,
): { event: InstanceEvent | null; message: string | null; preempts: boolean } {
  const holdsGpus = instance.status === "LOADING" || instance.status === "RUNNING";
  if (outcome.runs) {
    const waiting = instance.status === "SCHEDULING" || instance.status === "PAUSED";
    return { event: waiting ? "ALLOCATED" : null, message: waiting ? null : instance.statusMessage, preempts: false };
  }
  switch (outcome.reason) {
    case "OUTBID":
      return {
        event: instance.status === "PAUSED" ? null : "OUTBID",
        message: `outbid: $${formatMoney(outcome.winningBidMicros)}${GPU_HOUR} needed`,
        preempts: holdsGpus,
      };
    case "BELOW_MIN_BID":
      return {
        event: instance.status === "PAUSED" ? null : "OUTBID",
        message: `bid below the machine's minimum bid: $${formatMoney(minBidMicros)}${GPU_HOUR} needed`,
        preempts: holdsGpus,
      };
    case "PREEMPTED_BY_ON_DEMAND":
      return {
        event: instance.status === "PAUSED" ? null : "PREEMPTED",
        message: "preempted by on-demand rentals: too few GPUs left for bids",
        preempts: holdsGpus,
      };
    case "MACHINE_UNAVAILABLE":
      return { event: holdsGpus ? "MACHINE_OFFLINE" : null, message: "machine offline: waiting for it to return", preempts: false };
    case "WAITING_FOR_GPUS":
      return { event: null, message: "waiting for GPUs held by other on-demand rentals", preempts: false };
    case "EXCEEDS_MACHINE":
      return { event: null, message: "needs more GPUs than the machine has", preempts: false };
  }
}

/**
 * Gives the winners their GPU indices (gpuIndices.ts) and writes the ones that changed. An instance
 * left holding GPUs without winning them (never by the rules, only if the machine shrank under it)
 * holds no index, so holders never share one.
 */
async function writeGpuIndices(
  tx: Tx,
  machineGpus: number,
  live: readonly LiveInstance[],
  outcomes: readonly Outcome[],
  statusAfter: ReadonlyMap<number, InstanceStatus>,
): Promise<void> {
  const winners = new Set(outcomes.filter((o) => o.runs).map((o) => o.instanceId));
  const assigned = assignGpuIndices(
    machineGpus,
    live
      .filter((instance) => winners.has(instance.id))
      .map((instance) => {
        const holds = HOLDING_STATUSES.has(instance.status);
        return { instanceId: instance.id, numGpus: instance.numGpus, held: holds ? instance.gpuIndices : [], previous: holds ? [] : instance.gpuIndices };
      }),
  );
  const changed: { id: number; indices: number[] }[] = [];
  for (const instance of live) {
    // Instances that no longer hold GPUs keep their last indices, to be tried first when they run again.
    if (!HOLDING_STATUSES.has(statusAfter.get(instance.id)!)) continue;
    const indices = assigned.get(instance.id) ?? [];
    if (!sameIndices(indices, instance.gpuIndices)) changed.push({ id: instance.id, indices });
  }
  if (changed.length === 0) return;
  const ids = changed.map((c) => c.id);
  const indices = changed.map((c) => `{${c.indices.join(",")}}`);
  await tx.$executeRaw`UPDATE instance SET gpu_indices = v.indices::int[] FROM unnest(${ids}::int[], ${indices}::text[]) AS v(id, indices) WHERE instance.id = v.id`;
}

function sameIndices(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((index, i) => index === b[i]);
}

/**
 * Runs the auction on one machine in one transaction with its row locked: expires contracts past
 * their end date, applies `clearMachine`'s outcomes through the lifecycle table (winners waiting in
 * SCHEDULING or PAUSED go to LOADING; the agent reports RUNNING), pauses losers with a message that
 * says why and by what price, and brings the on-demand count, offers and clearing flag up to date.
 */
export async function clearMachineNow(machineId: number, now = new Date()): Promise<ClearingChange[]> {
  const cleared = await clearInTransaction(machineId, now);
  if (!cleared) return [];
  // After commit, one event per machine and per affected client: the agent's desired state (every
  // clearing passes here, including those after expiry and exhausted balances), and the instances
  // whose status or message changed.
  publish("assignments", machineId, { machineId });
  publish("orderBook", machineId, { machineId });
  publishInstanceChanges(cleared.touched);
  publishBidChanges(cleared.bidsMoved);
  return cleared.changes;
}

async function clearInTransaction(
  machineId: number,
  now: Date,
): Promise<{ changes: ClearingChange[]; touched: InstanceOfClient[]; bidsMoved: InstanceOfClient[] } | null> {
  return prisma.$transaction(async (tx) => {
    // The lock also clears the flag: events after this one wait for the lock and set it again.
    const [machine] = await tx.$queryRaw<LockedMachine[]>`
      UPDATE machine SET clearing_requested_at = NULL, assignments_revision = assignments_revision + 1
       WHERE id = ${machineId} RETURNING ${MACHINE_COLUMNS}`;
    if (!machine) return null;

    const live: LiveInstance[] = [];
    const events: BatchedEvent[] = [];
    for (const instance of await liveInstances(tx, machineId, true)) {
      // Past its end date: ended here rather than holding GPUs until the expiry job runs.
      if (instance.endDate > now) live.push(instance);
      else events.push({ instance, event: "EXPIRED", message: "lifetime ended", preemptGraceSeconds: null });
    }
    const contracts = live.map((instance) => toContract(instance, now));
    const auction = auctionMachine(machine);
    const clearing = clearMachine(auction, contracts);
    const byId = new Map(live.map((instance) => [instance.id, instance]));
    const messages: { id: number; message: string | null }[] = [];
    for (const outcome of clearing.outcomes) {
      const instance = byId.get(outcome.instanceId)!;
      const { event, message, preempts } = decide(instance, outcome, auction.minBidMicros);
      if (event) {
        const preemptGraceSeconds = preempts ? machine.preemptGraceSeconds : event === "ALLOCATED" ? null : undefined;
        events.push({ instance, event, message, preemptGraceSeconds });
      } else if (message !== instance.statusMessage) {
        messages.push({ id: instance.id, message });
      }
    }
    // Paused bids learn the new price to win in the same statement.
    const statuses = await applyEvents(tx, events, now, messages);
    const after = new Map(live.map((instance) => [instance.id, instance.status]));
    events.forEach(({ instance }, i) => after.set(instance.id, statuses[i]));
    await writeGpuIndices(tx, machine.numGpus, live, clearing.outcomes, after);
    const changes = events
      .map(({ instance, message }, i) => ({ instanceId: instance.id, from: instance.status, to: statuses[i], message }))
      .filter((change) => change.to !== change.from);
    const clientOf = new Map(live.concat(events.map((e) => e.instance as LiveInstance)).map((i) => [i.id, i.clientId]));
    const touched = [...events.map((e) => e.instance.id), ...messages.map((m) => m.id)].map((instanceId) => ({
      instanceId,
      clientId: clientOf.get(instanceId)!,
    }));
    const gpusOnDemand = onDemandClaim(machine.numGpus, contracts);
    if (gpusOnDemand !== machine.gpusOnDemand) {
      await tx.machine.update({ where: { id: machineId }, data: { gpusOnDemand }, select: { id: true } });
    }
    await syncOfferAvailability(tx, machine, contracts, now);
    const bidsMoved = await recordBidPositions(tx, live, bidPositions(auction, contracts, clearing));
    return { changes, touched, bidsMoved };
  });
}
