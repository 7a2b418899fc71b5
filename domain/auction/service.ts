import type { Tx } from "../../infra/db.ts";
import { prisma } from "../../infra/db.ts";
import { logger } from "../../infra/logger.ts";
import { publishEach } from "../../infra/pubsub.ts";
import { producerQueue } from "../../infra/queues.ts";
import { type InstanceStatus, Prisma } from "../../prisma/generated/client/client.ts";
import { type BatchedEvent, type InstanceOfClient, applyEvents, publishBidChanges, publishInstanceChanges } from "../instances/status.ts";
import type { InstanceEvent } from "../instances/lifecycle.ts";
import { formatMoney } from "../money.ts";
import { maintenanceStartSql, syncOfferAvailability } from "../offers/sync.ts";
import { recordBidPositions } from "./bids.ts";
import { bidPositions } from "./book.ts";
import { type AuctionMachine, type Clearing, type Contract, type Outcome, clearMachine } from "./clearing.ts";
import {
  HOLDING_STATUSES,
  type LiveInstance,
  type MachineForAuction,
  auctionMachine,
  liveInstancesOf,
  onDemandClaim,
  toContract,
} from "./contracts.ts";
import { assignGpuIndices } from "./gpuIndices.ts";

/*
 * The database side of the auction. Every event that can change who runs on a machine happens in a
 * transaction that locks the machine row with `lockMachineForEvent` (which also flags the machine
 * as needing a clearing), and after commit calls `enqueueClearing`. The auction worker then runs
 * `clearMachinesNow` over the machines waiting together, in one transaction under the same locks.
 * A lost job (crash, Redis down) leaves the flag set, and `requeueStaleClearings` finds it.
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
 * Gives the winners their GPU indices (gpuIndices.ts): the instances whose indices change. An
 * instance left holding GPUs without winning them (never by the rules, only if the machine shrank
 * under it) holds no index, so holders never share one.
 */
function gpuIndexChanges(
  machineGpus: number,
  live: readonly LiveInstance[],
  outcomes: readonly Outcome[],
  statusAfter: ReadonlyMap<number, InstanceStatus>,
): { id: number; indices: number[] }[] {
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
  return changed;
}

function sameIndices(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((index, i) => index === b[i]);
}

/**
 * Runs the auction on one machine in one transaction with its row locked (waiting for the lock):
 * expires contracts past their end date, applies `clearMachine`'s outcomes through the lifecycle
 * table (winners waiting in SCHEDULING or PAUSED go to LOADING; the agent reports RUNNING), pauses
 * losers with a message that says why and by what price, and brings the on-demand count, offers and
 * clearing flag up to date.
 */
export async function clearMachineNow(machineId: number, now = new Date()): Promise<ClearingChange[]> {
  const { changes } = await clearAndPublish([machineId], "wait", now);
  return changes.get(machineId) ?? [];
}

/**
 * `clearMachineNow` for several machines in one transaction (the worker's group commit): one set of
 * statements for all of them. Resolves when that transaction has ended, with each machine's clearing
 * as a promise of its own: a machine whose row another transaction holds (an admission under way)
 * is left out of the batch rather than waited for, and it, or every machine when the batch failed,
 * is then cleared alone, so one busy or failing machine holds up no other.
 */
export async function clearMachinesNow(machineIds: readonly number[], now = new Date()): Promise<Map<number, Promise<ClearingChange[]>>> {
  const cleared = new Map<number, Promise<ClearingChange[]>>();
  let alone = [...new Set(machineIds)];
  try {
    const { changes, skipped } = await clearAndPublish(alone, "skipLocked", now);
    for (const [machineId, machineChanges] of changes) cleared.set(machineId, Promise.resolve(machineChanges));
    alone = skipped;
  } catch (err) {
    logger.warn({ err, machineIds }, "clearing machines together failed; clearing each alone");
  }
  for (const machineId of alone) cleared.set(machineId, clearMachineNow(machineId, now));
  return cleared;
}

/** Whether a clearing waits for machine rows other transactions hold, or leaves those machines out. */
type LockMode = "wait" | "skipLocked";

async function clearAndPublish(machineIds: readonly number[], lockMode: LockMode, now: Date): Promise<ClearedMachines> {
  const cleared = await clearInTransaction(machineIds, lockMode, now);
  // After commit, one event per key for the whole batch: the agents' desired state (every clearing
  // passes here, including those after expiry and exhausted balances), the order books, and the
  // instances whose status, message or bid standing changed.
  const machines = [...cleared.changes.keys()];
  publishEach("assignments", machines, (machineId) => ({ machineId }));
  publishEach("orderBook", machines, (machineId) => ({ machineId }));
  publishInstanceChanges(cleared.touched);
  publishBidChanges(cleared.bidsMoved);
  return cleared;
}

interface ClearedMachines {
  /** The status changes of each machine cleared. */
  changes: Map<number, ClearingChange[]>;
  /** Machines left out: missing, or (skipLocked) held by another transaction. */
  skipped: number[];
  touched: InstanceOfClient[];
  bidsMoved: InstanceOfClient[];
}

/** What one machine's clearing decides, before anything is written. */
interface MachinePlan {
  machine: LockedMachine;
  auction: AuctionMachine;
  live: LiveInstance[];
  contracts: Contract[];
  clearing: Clearing;
  events: BatchedEvent[];
  messages: { id: number; message: string | null }[];
}

function planClearing(machine: LockedMachine, instances: readonly LiveInstance[], now: Date): MachinePlan {
  const live: LiveInstance[] = [];
  const events: BatchedEvent[] = [];
  for (const instance of instances) {
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
  return { machine, auction, live, contracts, clearing, events, messages };
}

async function clearInTransaction(machineIds: readonly number[], lockMode: LockMode, now: Date): Promise<ClearedMachines> {
  return prisma.$transaction(async (tx) => {
    // The lock also clears the flag: events after this one wait for the lock and set it again. Rows
    // are locked in id order, so two clearings of overlapping machines never deadlock.
    const machines = await tx.$queryRaw<LockedMachine[]>`
      UPDATE machine SET clearing_requested_at = NULL, assignments_revision = assignments_revision + 1
       WHERE id IN (SELECT id FROM machine WHERE id = ANY(${machineIds}::int[]) ORDER BY id
                    FOR UPDATE ${lockMode === "skipLocked" ? Prisma.sql`SKIP LOCKED` : Prisma.empty})
       RETURNING ${MACHINE_COLUMNS}`;
    const locked = new Set(machines.map((machine) => machine.id));
    const skipped = machineIds.filter((machineId) => !locked.has(machineId));
    if (machines.length === 0) return { changes: new Map(), skipped, touched: [], bidsMoved: [] };

    const liveOf = new Map(machines.map((machine) => [machine.id, [] as LiveInstance[]]));
    for (const instance of await liveInstancesOf(tx, [...locked], true)) liveOf.get(instance.machineId)!.push(instance);
    const plans = machines.map((machine) => planClearing(machine, liveOf.get(machine.id)!, now));

    // Paused bids learn the new price to win in the same statement.
    const events = plans.flatMap((plan) => plan.events);
    const messages = plans.flatMap((plan) => plan.messages);
    const statuses = await applyEvents(tx, events, now, messages);
    const after = new Map(plans.flatMap((plan) => plan.live.map((instance) => [instance.id, instance.status] as const)));
    events.forEach(({ instance }, i) => after.set(instance.id, statuses[i]));
    await writeGpuIndices(
      tx,
      plans.flatMap((plan) => gpuIndexChanges(plan.machine.numGpus, plan.live, plan.clearing.outcomes, after)),
    );
    await writeOnDemandClaims(
      tx,
      plans
        .map((plan) => ({ id: plan.machine.id, gpusOnDemand: onDemandClaim(plan.machine.numGpus, plan.contracts) }))
        .filter((claim, i) => claim.gpusOnDemand !== plans[i].machine.gpusOnDemand),
    );
    await syncOfferAvailability(tx, plans, now);
    const bidsMoved = await recordBidPositions(
      tx,
      plans.flatMap((plan) => plan.live),
      plans.flatMap((plan) => bidPositions(plan.auction, plan.contracts, plan.clearing)),
    );

    const statusOf = new Map(events.map(({ instance }, i) => [instance.id, statuses[i]]));
    const changes = new Map(
      plans.map((plan) => [
        plan.machine.id,
        plan.events
          .map(({ instance, message }) => ({ instanceId: instance.id, from: instance.status, to: statusOf.get(instance.id)!, message }))
          .filter((change) => change.to !== change.from),
      ]),
    );
    const clientOf = new Map(plans.flatMap((plan) => plan.events.map((e) => e.instance as LiveInstance).concat(plan.live)).map((i) => [i.id, i.clientId]));
    const touched = [...events.map((e) => e.instance.id), ...messages.map((m) => m.id)].map((instanceId) => ({
      instanceId,
      clientId: clientOf.get(instanceId)!,
    }));
    return { changes, skipped, touched, bidsMoved };
  });
}

async function writeGpuIndices(tx: Tx, changed: readonly { id: number; indices: number[] }[]): Promise<void> {
  if (changed.length === 0) return;
  const ids = changed.map((c) => c.id);
  const indices = changed.map((c) => `{${c.indices.join(",")}}`);
  await tx.$executeRaw`UPDATE instance SET gpu_indices = v.indices::int[] FROM unnest(${ids}::int[], ${indices}::text[]) AS v(id, indices) WHERE instance.id = v.id`;
}

async function writeOnDemandClaims(tx: Tx, claims: readonly { id: number; gpusOnDemand: number }[]): Promise<void> {
  if (claims.length === 0) return;
  await tx.$executeRaw`
    UPDATE machine SET gpus_on_demand = v.gpus
      FROM unnest(${claims.map((c) => c.id)}::int[], ${claims.map((c) => c.gpusOnDemand)}::int[]) AS v(id, gpus) WHERE machine.id = v.id`;
}
