import { prisma } from "../infra/db.ts";
import { publish } from "../infra/pubsub.ts";
import type { Machine } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { lockMachineForEvent } from "./auction/service.ts";
import { AppError, NotFoundError } from "./errors.ts";
import { syncOffers } from "./offers/sync.ts";
import { parseInput } from "./validation.ts";

/*
 * Removing a machine, as the reference asks of a host who changes its hardware: unlist it, wait for
 * its rentals to end, then remove it. The row stays (removedAt) so that statements, earnings and
 * charges keep their history; it leaves every listing and search at once. Its agent's desired state
 * becomes empty, so the agent removes whatever containers and disks of destroyed instances it still
 * holds.
 */

/** LISTED: unlist it first. LIVE_CONTRACTS: rentals on it are not destroyed yet. Nothing was written. */
export class MachineNotRemovableError extends AppError {
  constructor(
    readonly reason: "LISTED" | "LIVE_CONTRACTS",
    readonly liveContracts: number,
  ) {
    super(
      reason === "LISTED"
        ? "Unlist the machine before removing it"
        : `${liveContracts} rental(s) on the machine are not destroyed yet: wait for them to end`,
      reason === "LISTED" ? "MACHINE_LISTED" : "LIVE_CONTRACTS",
    );
  }
}

/** Removes the host's unlisted machine without live contracts (every rental on it destroyed). */
export async function removeMachine(hostId: number, id: number, now = new Date()): Promise<Machine> {
  const machineId = parseInput(recordId, id);
  const removed = await prisma.$transaction(async (tx) => {
    const owned = await tx.machine.findFirst({ where: { id: machineId, hostId, removedAt: null }, select: { id: true } });
    if (!owned) throw new NotFoundError("Machine");
    // The auction's lock: no rental can be admitted between the checks and the removal.
    const machine = (await lockMachineForEvent(tx, machineId))!;
    const liveContracts = await tx.instance.count({ where: { machineId, status: { not: "DESTROYED" } } });
    if (machine.listed) throw new MachineNotRemovableError("LISTED", liveContracts);
    if (liveContracts > 0) throw new MachineNotRemovableError("LIVE_CONTRACTS", liveContracts);
    await tx.machine.update({ where: { id: machineId }, data: { removedAt: now, listed: false, clearingRequestedAt: null }, select: { id: true } });
    await syncOffers(tx, machineId, now);
    return tx.machine.findUniqueOrThrow({ where: { id: machineId } });
  });
  // The agent refetches its (now empty) desired state and cleans up.
  publish("assignments", machineId, { machineId });
  return removed;
}
