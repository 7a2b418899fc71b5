import type { Tx } from "../../infra/db.ts";
import type { Machine } from "../../prisma/generated/client/client.ts";
import { chunkDlperf } from "../dlperf.ts";

/** GPU counts a machine is offered in: minChunk, doubling, and always the whole machine. */
export function chunkSizes(numGpus: number, minChunk: number): number[] {
  const sizes: number[] = [];
  for (let size = minChunk; size < numGpus; size *= 2) sizes.push(size);
  sizes.push(numGpus);
  return sizes;
}

export function offerId(machineId: number, numGpus: number): string {
  return `${machineId}-${numGpus}`;
}

/** A listed machine's offers can be rented when it is online, not deverified and its end date is ahead. */
function machineRentable(machine: Machine, now: Date): boolean {
  return machine.online && machine.verification !== "DEVERIFIED" && machine.endDate !== null && machine.endDate > now;
}

/**
 * Brings the machine's rows in the offer table in line with the machine: the one place offers are
 * written. Call it in the same transaction as any change to a machine's specs, listing, rentals,
 * reliability or online state.
 */
export async function syncOffers(db: Tx, machineId: number, now = new Date()): Promise<void> {
  const machine = await db.machine.findUnique({ where: { id: machineId } });
  if (!machine?.listed || machine.pricePerGpuHourMicros === null) {
    await db.offer.deleteMany({ where: { machineId } });
    return;
  }
  const sizes = chunkSizes(machine.numGpus, machine.minChunk);
  const freeGpus = machine.numGpus - machine.gpusOnDemand;
  const rentable = machineRentable(machine, now);
  const rows = sizes.map((numGpus) => {
    const rented = numGpus > freeGpus;
    return {
      id: offerId(machine.id, numGpus),
      machineId: machine.id,
      hostId: machine.hostId,
      numGpus,
      gpuName: machine.gpuName,
      gpuRam: machine.gpuRamMb,
      gpuTotalRam: machine.gpuRamMb * numGpus,
      computeCap: machine.computeCap,
      totalFlops: machine.tflopsPerGpu * numGpus,
      gpuMemBw: machine.gpuMemBw,
      pcieBw: machine.pcieBw,
      cpuCores: machine.cpuCores,
      cpuRam: machine.cpuRamMb,
      diskSpace: machine.diskSpaceGb,
      diskBw: machine.diskBw,
      inetUp: machine.inetUpMbps,
      inetDown: machine.inetDownMbps,
      cudaMaxGood: machine.cudaMaxGood,
      driverVersion: machine.driverVersion,
      reliability: machine.reliability,
      dlperf: chunkDlperf(machine, numGpus),
      pricePerGpuMicros: machine.pricePerGpuHourMicros!,
      gpuDphMicros: machine.pricePerGpuHourMicros! * BigInt(numGpus),
      minBidMicros: machine.minBidPerGpuHourMicros ?? machine.pricePerGpuHourMicros!,
      storageCostMicros: machine.storagePricePerGbMonthMicros ?? 0n,
      inetUpCostMicros: machine.inetUpPricePerGbMicros ?? 0n,
      inetDownCostMicros: machine.inetDownPricePerGbMicros ?? 0n,
      verified: machine.verification === "VERIFIED",
      datacenter: machine.datacenter,
      geolocation: machine.geolocation,
      countryCode: machine.countryCode,
      endDate: machine.endDate!,
      rentable: rentable && !rented,
      rented,
    };
  });
  await db.offer.deleteMany({ where: { machineId, numGpus: { notIn: sizes } } });
  for (const row of rows) {
    const { id, ...values } = row;
    await db.offer.upsert({ where: { id }, create: row, update: values });
  }
}
