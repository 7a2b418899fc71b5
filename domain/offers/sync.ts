import type { Tx } from "../../infra/db.ts";
import { type Machine, Prisma } from "../../prisma/generated/client/client.ts";
import { type Contract, winningBidFor } from "../auction/clearing.ts";
import { auctionMachine, liveInstances, onDemandClaim, toContract } from "../auction/contracts.ts";
import { handsOutGpus } from "../agent/gpuCapability.ts";
import { chunkDlperf } from "../dlperf.ts";
import { freeDirectPorts } from "../instances/ports.ts";
import { machineShare } from "../machineShare.ts";
import { defaultRanking } from "./ranking.ts";

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

/** What decides when a machine's rentals may end: its listing and its next maintenance window. */
export interface RentalHorizon {
  endDate: Date | null;
  /** When its next maintenance window (or the one in progress) starts; null when none is scheduled. */
  maintenanceStartsAt: Date | null;
}

/**
 * When rentals sold now must end: the listing's end date, or the start of the next maintenance
 * window when that comes first, so that no rental is sold across a window.
 */
export function rentalEnd(machine: RentalHorizon): Date | null {
  if (machine.endDate === null || machine.maintenanceStartsAt === null) return machine.endDate;
  return machine.maintenanceStartsAt < machine.endDate ? machine.maintenanceStartsAt : machine.endDate;
}

/**
 * A listed machine's offers can be rented when it is online, not in maintenance, not deverified,
 * the end of what it may sell (rentalEnd) is ahead and it can hand GPUs to containers
 * (gpuCapability.ts).
 */
function machineRentable(machine: Pick<Machine, "online" | "verification" | "inMaintenance" | "metrics"> & RentalHorizon, now: Date): boolean {
  const end = rentalEnd(machine);
  return machine.online && !machine.inMaintenance && machine.verification !== "DEVERIFIED" && end !== null && end > now && handsOutGpus(machine.metrics);
}

/** The machine's next maintenance window's start (or the start of the one in progress), as SQL over `machineId` (an SQL expression). */
export function maintenanceStartSql(machineId: string): string {
  return `(SELECT min(starts_at) FROM maintenance_window WHERE machine_id = ${machineId} AND cancelled_at IS NULL AND ends_at > now())`;
}

async function maintenanceStart(db: Tx, machineId: number, now: Date): Promise<Date | null> {
  const next = await db.maintenanceWindow.findFirst({
    where: { machineId, cancelledAt: null, endsAt: { gt: now } },
    orderBy: { startsAt: "asc" },
    select: { startsAt: true },
  });
  return next?.startsAt ?? null;
}

/** What a machine's offers depend on besides its own row: read by syncOffers, one machine at a time. */
export interface OfferFacts {
  /** When its next maintenance window (or the one in progress) starts; null when none is scheduled. */
  maintenanceStartsAt: Date | null;
  /** Its live contracts. */
  contracts: readonly Contract[];
  /** Ports of its direct range that no instance holds (freeDirectPorts). */
  directPortCount: number;
  /** Disk not reserved by its instances, GB (freeDiskGb). */
  diskSpace: number;
}

/**
 * The offer rows of a listed, priced machine, one per chunk size: every rule of what an offer says,
 * without reading anything (syncOffers reads the facts and writes the rows).
 */
export function offerRows(found: Machine & { pricePerGpuHourMicros: bigint }, facts: OfferFacts, now: Date) {
  const machine = { ...found, maintenanceStartsAt: facts.maintenanceStartsAt };
  const endDate = rentalEnd(machine)!;
  const sizes = chunkSizes(machine.numGpus, machine.minChunk);
  const availability = offerAvailability(machine, facts.contracts, now);
  const { directPortCount, diskSpace } = facts;
  return sizes.map((numGpus, index) => {
    const share = machineShare(machine, numGpus);
    const prices = {
      gpuDphMicros: machine.pricePerGpuHourMicros * BigInt(numGpus),
      storageCostMicros: machine.storagePricePerGbMonthMicros ?? 0n,
      dlperf: chunkDlperf(machine, numGpus),
      reliability: machine.reliability,
    };
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
      cpuCoresEffective: share.cpuCores,
      cpuRam: share.ramMb,
      diskSpace,
      diskBw: machine.diskBw,
      inetUp: machine.inetUpMbps,
      inetDown: machine.inetDownMbps,
      cudaMaxGood: machine.cudaMaxGood,
      driverVersion: machine.driverVersion,
      ...prices,
      ...defaultRanking(prices),
      pricePerGpuMicros: machine.pricePerGpuHourMicros,
      minBidMicros: machine.minBidPerGpuHourMicros ?? machine.pricePerGpuHourMicros,
      inetUpCostMicros: machine.inetUpPricePerGbMicros ?? 0n,
      inetDownCostMicros: machine.inetDownPricePerGbMicros ?? 0n,
      verified: machine.verification === "VERIFIED",
      datacenter: machine.datacenter,
      geolocation: machine.geolocation,
      countryCode: machine.countryCode,
      endDate,
      directPortCount,
      staticIp: machine.publicAddress !== null,
      ...availability[index],
      rentable: availability[index].rentable && diskSpace >= MIN_RENTAL_DISK_GB,
    };
  });
}

/** Whether the machine has offers at all: listed with a price and not removed. */
export function offered(machine: Machine | null): machine is Machine & { pricePerGpuHourMicros: bigint } {
  return machine !== null && machine.listed && machine.pricePerGpuHourMicros !== null && machine.removedAt === null;
}

/**
 * Brings the machine's rows in the offer table in line with the machine: the one place offers are
 * written. Call it in the same transaction as any change to a machine's specs, listing, rentals,
 * reliability or online state. `contracts`: the machine's live contracts when the caller has them
 * loaded already (the auction's clearing); read here otherwise.
 */
export async function syncOffers(db: Tx, machineId: number, now = new Date(), contracts?: Contract[]): Promise<void> {
  const machine = await db.machine.findUnique({ where: { id: machineId } });
  if (!offered(machine)) {
    await db.offer.deleteMany({ where: { machineId } });
    return;
  }
  const rows = offerRows(
    machine,
    {
      maintenanceStartsAt: await maintenanceStart(db, machineId, now),
      contracts: contracts ?? (await liveInstances(db, machineId)).map((instance) => toContract(instance, now)),
      directPortCount: await freeDirectPorts(db, machine),
      diskSpace: await freeDiskGb(db, machine),
    },
    now,
  );
  await db.offer.deleteMany({ where: { machineId, numGpus: { notIn: rows.map((row) => row.numGpus) } } });
  for (const row of rows) {
    const { id, ...values } = row;
    await db.offer.upsert({ where: { id }, create: row, update: values });
  }
}

/** The smallest disk a rental may ask for: an offer with less free is not rentable. */
export const MIN_RENTAL_DISK_GB = 1;

/**
 * Disk of the machine not reserved by its instances: every instance that is not destroyed keeps its
 * disk, stopped or exited ones too. Read under the machine's row lock when acted on.
 */
export async function freeDiskGb(db: Tx, machine: { id: number; diskSpaceGb: number }): Promise<number> {
  const [{ reserved }] = await db.$queryRaw<{ reserved: number }[]>`SELECT ${reservedDiskSql(machine.id)} AS reserved`;
  return Math.max(0, machine.diskSpaceGb - reserved);
}

/** The GB reserved on the machine `machineId` (an id, or an SQL expression) by its instances, as SQL. */
export function reservedDiskSql(machineId: number | Prisma.Sql): Prisma.Sql {
  return Prisma.sql`(SELECT COALESCE(SUM(disk_gb), 0)::int FROM instance WHERE machine_id = ${machineId} AND status <> 'DESTROYED')`;
}

/**
 * The offers' free disk after an instance was destroyed. More disk can make an offer rentable again:
 * the clearing that follows every destroy decides that with the GPUs.
 */
export async function syncOfferDisk(db: Tx, machine: { id: number; diskSpaceGb: number }): Promise<void> {
  await db.offer.updateMany({ where: { machineId: machine.id }, data: { diskSpace: await freeDiskGb(db, machine) } });
}

type AvailabilityMachine = Pick<
  Machine,
  "numGpus" | "minChunk" | "online" | "verification" | "inMaintenance" | "pricePerGpuHourMicros" | "minBidPerGpuHourMicros" | "metrics"
> &
  RentalHorizon;

/**
 * What it takes to run each chunk now, in chunkSizes order: GPUs on-demand rentals leave, the
 * lowest winning bid, and whether it can be rented on demand.
 */
function offerAvailability(machine: AvailabilityMachine, contracts: readonly Contract[], now: Date) {
  const freeGpus = machine.numGpus - onDemandClaim(machine.numGpus, contracts);
  const auction = auctionMachine(machine);
  const rentable = machineRentable(machine, now);
  return chunkSizes(machine.numGpus, machine.minChunk).map((numGpus) => ({
    rentable: rentable && numGpus <= freeGpus,
    rented: numGpus > freeGpus,
    gpusFreeOfOnDemand: freeGpus,
    winningBidMicros: winningBidFor(auction, contracts, numGpus),
  }));
}

/**
 * The auction's part of syncOffers in one statement for any number of machines, for the clearing
 * that changed nothing but contracts: the availability columns of each machine's offers, rows whose
 * values changed only. A machine that is not listed has no offer rows, so nothing is written.
 */
export async function syncOfferAvailability(
  db: Tx,
  machines: readonly { machine: AvailabilityMachine & { id: number }; contracts: readonly Contract[] }[],
  now = new Date(),
): Promise<void> {
  const rows = machines.flatMap(({ machine, contracts }) => {
    const availability = offerAvailability(machine, contracts, now);
    return chunkSizes(machine.numGpus, machine.minChunk).map((numGpus, i) => ({ id: offerId(machine.id, numGpus), ...availability[i] }));
  });
  const ids = rows.map((row) => row.id);
  const free = rows.map((row) => row.gpusFreeOfOnDemand);
  const bids = rows.map((row) => (row.winningBidMicros === null ? null : row.winningBidMicros.toString()));
  const rented = rows.map((row) => row.rented);
  const rentable = rows.map((row) => row.rentable);
  // The offers' free disk is kept by the writers of instances (syncOfferDisk, createInstance).
  await db.$executeRaw`
    UPDATE offer SET gpus_free_of_on_demand = v.free, winning_bid_micros = v.bid::bigint, rented = v.rented,
           rentable = v.rentable AND offer.disk_space >= ${MIN_RENTAL_DISK_GB}
      FROM unnest(${ids}::text[], ${free}::int[], ${bids}::text[], ${rented}::bool[], ${rentable}::bool[]) AS v(id, free, bid, rented, rentable)
     WHERE offer.id = v.id
       AND (offer.gpus_free_of_on_demand, offer.winning_bid_micros, offer.rented, offer.rentable)
           IS DISTINCT FROM (v.free, v.bid::bigint, v.rented, v.rentable AND offer.disk_space >= ${MIN_RENTAL_DISK_GB})`;
}

/** The offers' direct_port_count after the machine's instances took or freed ports. */
export async function syncDirectPorts(db: Tx, machine: Pick<Machine, "id" | "directPortStart" | "directPortEnd">): Promise<void> {
  await db.offer.updateMany({ where: { machineId: machine.id }, data: { directPortCount: await freeDirectPorts(db, machine) } });
}
