import type { Tx } from "../../infra/db.ts";
import { type BidStanding, type InstanceStatus, Prisma } from "../../prisma/generated/client/client.ts";
import type { AuctionMachine, Contract } from "./clearing.ts";

/** The machine columns the auction reads. */
export interface MachineForAuction {
  numGpus: number;
  online: boolean;
  pricePerGpuHourMicros: bigint | null;
  minBidPerGpuHourMicros: bigint | null;
}

/** Statuses whose contracts the auction considers: those the owner wants running. */
export const LIVE_STATUSES: InstanceStatus[] = ["SCHEDULING", "LOADING", "RUNNING", "PAUSED"];

/**
 * A machine is available to its contracts while it is online. Unlisting only stops new rentals, and
 * each contract's own end date (enforced per contract) bounds how long it runs.
 */
export function auctionMachine(machine: MachineForAuction): AuctionMachine {
  return {
    numGpus: machine.numGpus,
    minBidMicros: machine.minBidPerGpuHourMicros ?? machine.pricePerGpuHourMicros ?? 0n,
    available: machine.online,
  };
}

export interface LiveInstance {
  id: number;
  clientId: number;
  machineId: number;
  kind: "ON_DEMAND" | "INTERRUPTIBLE";
  numGpus: number;
  bidPerGpuHourMicros: bigint | null;
  bidPlacedAt: Date;
  endDate: Date;
  status: InstanceStatus;
  statusMessage: string | null;
  /** What the last clearing recorded of the bid (domain/auction/bids.ts). */
  bidStanding: BidStanding | null;
  bidPriceToWinMicros: bigint | null;
  gpuIndices: number[];
}

/** Statuses in which an instance holds its GPUs (and its gpuIndices are its own). */
export const HOLDING_STATUSES: ReadonlySet<InstanceStatus> = new Set(["LOADING", "RUNNING"]);

/**
 * The live instances of a machine; lock the machine row first when the result is acted on.
 * `forUpdate` also locks their rows, so the jobs that stop instances without the machine's lock
 * (expiry, exhausted balances: they skip locked rows) cannot change one between read and write.
 */
export function liveInstances(db: Tx, machineId: number, forUpdate = false): Promise<LiveInstance[]> {
  return liveInstancesOf(db, [machineId], forUpdate);
}

/** The live instances of several machines at once (order books of a page of offers). */
export function liveInstancesOf(db: Tx, machineIds: readonly number[], forUpdate = false): Promise<LiveInstance[]> {
  // Raw: the clearing runs this once per job, and the query builder's per-call cost shows there.
  return db.$queryRaw<LiveInstance[]>`
    SELECT id, client_id AS "clientId", machine_id AS "machineId", kind::text AS kind, num_gpus AS "numGpus",
           bid_per_gpu_hour_micros AS "bidPerGpuHourMicros", bid_placed_at AS "bidPlacedAt", end_date AS "endDate",
           status::text AS status, status_message AS "statusMessage", bid_standing::text AS "bidStanding",
           bid_price_to_win_micros AS "bidPriceToWinMicros", gpu_indices AS "gpuIndices"
      FROM instance WHERE machine_id = ANY(${machineIds}::int[]) AND status = ANY(${LIVE_STATUSES}::"InstanceStatus"[])
    ${forUpdate ? Prisma.sql`FOR UPDATE` : Prisma.empty}`;
}

export function toContract(instance: LiveInstance, now: Date): Contract {
  return {
    instanceId: instance.id,
    kind: instance.kind,
    numGpus: instance.numGpus,
    bidPerGpuMicros: instance.kind === "INTERRUPTIBLE" ? instance.bidPerGpuHourMicros : null,
    bidPlacedAt: instance.bidPlacedAt.getTime(),
    // Past its end date it waits for the expiry job and holds nothing meanwhile.
    wantsToRun: instance.endDate > now,
  };
}

/**
 * GPUs claimed by on-demand contracts that want to run, capped at the machine: what admission of a
 * new on-demand rental and the offers' "free of on-demand" count against. A restarted on-demand
 * rental waiting for its GPUs claims them too, so a newcomer never overtakes it.
 */
export function onDemandClaim(numGpus: number, contracts: readonly Contract[]): number {
  const claimed = contracts
    .filter((c) => c.kind === "ON_DEMAND" && c.wantsToRun)
    .reduce((sum, c) => sum + c.numGpus, 0);
  return Math.min(numGpus, claimed);
}
