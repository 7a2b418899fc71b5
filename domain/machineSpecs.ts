import { z } from "zod";
import { prisma } from "../infra/db.ts";
import type { Machine } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { enqueueClearing, lockMachineForEvent } from "./auction/service.ts";
import { liveInstances } from "./auction/contracts.ts";
import { machineDlperf } from "./dlperf.ts";
import { AppError, NotFoundError } from "./errors.ts";
import { checkPcieBandwidth, machineSpecsSchema } from "./machines.ts";
import { reservedDiskSql, syncOffers } from "./offers/sync.ts";
import { parseInput } from "./validation.ts";

/** A spec change that would take from live contracts what they hold: refused, nothing written. */
export class StrandsContractsError extends AppError {
  constructor(
    /** The spec field that would fall short: numGpus or diskSpaceGb. */
    readonly field: "numGpus" | "diskSpaceGb",
    /** The least the field may be while the machine's contracts last. */
    readonly required: number,
    message: string,
  ) {
    super(message, "STRANDS_CONTRACTS");
  }
}

const pcieSchema = z.object({ pcieGen: z.number(), pcieBw: z.number() }).superRefine(checkPcieBandwidth);
const updateMachineSchema = machineSpecsSchema.partial().extend({ machineId: recordId });

export type UpdateMachineInput = z.input<typeof updateMachineSchema>;
type SpecChanges = Omit<z.output<typeof updateMachineSchema>, "machineId">;

/**
 * Changes a machine's specs (a driver or CUDA upgrade, a new disk, a GPU taken out), as its agent's
 * periodic re-check or its host reports them: the offers and DLPerf follow in the same transaction,
 * and the auction clears the machine after. A change that would leave live contracts short of the
 * GPUs or disk they hold is StrandsContractsError, and an unchanged report writes nothing.
 */
export async function updateMachineSpecs(hostId: number, input: UpdateMachineInput, now = new Date()): Promise<Machine> {
  const { machineId, ...changes } = parseInput(updateMachineSchema, input);
  const owned = await prisma.machine.findFirst({ where: { id: machineId, hostId }, select: { id: true } });
  if (!owned) throw new NotFoundError("Machine");
  const given = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined)) as SpecChanges;
  const unchanged = (machine: Machine) => Object.entries(given).every(([field, value]) => machine[field as keyof SpecChanges] === value);
  const before = await prisma.machine.findUniqueOrThrow({ where: { id: owned.id } });
  if (unchanged(before)) return before;

  const machine = await prisma.$transaction(async (tx) => {
    // The auction's lock: contracts cannot start or grow on the machine while its specs change.
    await lockMachineForEvent(tx, owned.id);
    const current = await tx.machine.findUniqueOrThrow({ where: { id: owned.id } });
    const merged = { ...current, ...given };
    parseInput(pcieSchema, merged);
    const contracts = await liveInstances(tx, owned.id);
    const gpusRented = contracts.filter((c) => c.kind === "ON_DEMAND").reduce((sum, c) => sum + c.numGpus, 0);
    const gpusNeeded = Math.max(gpusRented, ...contracts.map((c) => c.numGpus), ...contracts.flatMap((c) => c.gpuIndices.map((i) => i + 1)));
    if (merged.numGpus < gpusNeeded) {
      throw new StrandsContractsError(
        "numGpus",
        gpusNeeded,
        `live contracts on this machine hold ${gpusNeeded} GPUs; it cannot report ${merged.numGpus} until they end`,
      );
    }
    const [{ reserved }] = await tx.$queryRaw<{ reserved: number }[]>`SELECT ${reservedDiskSql(owned.id)} AS reserved`;
    if (merged.diskSpaceGb < reserved) {
      throw new StrandsContractsError(
        "diskSpaceGb",
        reserved,
        `instances on this machine reserve ${reserved} GB of disk; it cannot report ${merged.diskSpaceGb} GB until they are destroyed`,
      );
    }
    const minChunk = Math.min(current.minChunk, largestPowerOfTwoAtMost(merged.numGpus));
    await tx.machine.update({ where: { id: owned.id }, data: { ...given, minChunk, dlperf: machineDlperf(merged) }, select: { id: true } });
    await syncOffers(tx, owned.id, now);
    return tx.machine.findUniqueOrThrow({ where: { id: owned.id } });
  });
  await enqueueClearing(machine.id);
  return machine;
}

/** A listing's chunk size must stay a power of two within the machine's GPUs. */
function largestPowerOfTwoAtMost(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}
