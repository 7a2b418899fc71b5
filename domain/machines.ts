import { z } from "zod";
import { prisma, type Tx } from "../infra/db.ts";
import type { Machine, Prisma } from "../prisma/generated/client/client.ts";
import { type IssuedKey, issueApiKey, recordId } from "./apiKeys.ts";
import { enqueueClearing, lockMachineForEvent } from "./auction/service.ts";
import { machineDlperf, pcieBandwidth } from "./dlperf.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import { MICROS_PER_DOLLAR } from "./money.ts";
import { hostAddress } from "./agent/liveness.ts";
import { syncOffers } from "./offers/sync.ts";
import { parseInput } from "./validation.ts";
import { DAY_MS, MINUTE_MS } from "./time.ts";

/*
 * Host services. Each takes the host's user id and filters by it, so another account's machine is
 * indistinguishable from a missing one. The commands (registerMachine, listMachine, unlistMachine,
 * setMinBid, extendMachineEndDate) run in their own transaction, ending with syncOffers so a machine
 * and its offers never disagree, and after commit ask the auction to clear the machine. The steps
 * that take a transaction (addMachine, applyListing) compose into a caller's transaction (demo
 * data, test fixtures). Verification and datacenter status are operators' (domain/verification.ts).
 * A rental locks its own price and end date: only extendMachineEndDate moves contracts, and only later.
 */

// ISO 3166-1 alpha-2.
const COUNTRY_CODES = new Set(
  (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
    "CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
    "GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO " +
    "JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR " +
    "MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO " +
    "RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV " +
    "TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
  ).split(" "),
);

/** Longest location text a machine may give (offer cursors hold it when ordered by location). */
export const MAX_GEOLOCATION_LENGTH = 100;

/** A machine's specs as registerMachine takes them; updateMachine takes any of them. */
export const machineSpecsSchema = z.object({
    gpuName: z
      .string()
      .trim()
      .min(1)
      .max(64)
      .regex(/^[\w .+\-/()]+$/, "letters, digits, spaces and . + - / ( ) only"),
    numGpus: z.number().int().min(1).max(16),
    gpuRamMb: z.number().int().min(1024).max(262_144),
    // 8.6 is 860: the minor version is a single digit.
    computeCap: z.number().int().min(300).max(1290).multipleOf(10),
    tflopsPerGpu: z.number().min(0.1).max(1000),
    gpuMemBw: z.number().min(10).max(20_000),
    pcieGen: z.number().int().min(1).max(6),
    pcieBw: z.number().min(0.1).max(pcieBandwidth(6)),
    cpuName: z.string().trim().min(1).max(128),
    cpuCores: z.number().int().min(1).max(1024),
    cpuRamMb: z.number().int().min(1024).max(32 * 1024 * 1024),
    diskSpaceGb: z.number().min(1).max(1_000_000),
    diskBw: z.number().min(1).max(100_000),
    inetUpMbps: z.number().min(0).max(400_000),
    inetDownMbps: z.number().min(0).max(400_000),
    cudaMaxGood: z.number().min(1).max(50),
    driverVersion: z.string().trim().regex(/^\d{2,4}(\.\d{1,4}){1,3}$/, "a driver version such as 550.54.15"),
    countryCode: z
      .string()
      .trim()
      .toUpperCase()
      .refine((code) => COUNTRY_CODES.has(code), "an ISO 3166-1 alpha-2 country code such as US"),
    geolocation: z.string().trim().min(1).max(MAX_GEOLOCATION_LENGTH),
    cpuArch: z.enum(["amd64", "arm64"]).nullish(),
    hasAvx: z.boolean().nullish(),
    gpuMaxPowerW: z.number().min(10).max(2000).nullish(),
    cpuGhz: z.number().min(0.1).max(10).nullish(),
    gpuMaxTempC: z.number().int().min(40).max(150).nullish(),
    moboName: z.string().trim().min(1).max(128).nullish(),
    ubuntuVersion: z.string().trim().regex(/^\d{2}\.\d{2}$/, "an Ubuntu release such as 22.04").nullish(),
  });

/** PCIe bandwidth within what the generation's x16 link carries. */
export function checkPcieBandwidth(specs: { pcieGen: number; pcieBw: number }, ctx: z.RefinementCtx): void {
  const max = pcieBandwidth(specs.pcieGen);
  if (specs.pcieBw > max) {
    ctx.addIssue({ code: "custom", path: ["pcieBw"], message: `at most ${max} GB/s for PCIe ${specs.pcieGen}.0 x16` });
  }
}

const registerMachineSchema = machineSpecsSchema.superRefine(checkPcieBandwidth);

export type RegisterMachineInput = z.input<typeof registerMachineSchema>;

/** Registers a machine by its specs (unverified, unlisted) with its agent's MACHINE key. */
export async function registerMachine(hostId: number, input: RegisterMachineInput): Promise<{ machine: Machine; apiKey: IssuedKey }> {
  return prisma.$transaction((tx) => addMachine(tx, hostId, input));
}

/** registerMachine in the caller's transaction. */
export async function addMachine(db: Tx, hostId: number, input: RegisterMachineInput): Promise<{ machine: Machine; apiKey: IssuedKey }> {
  const specs = parseInput(registerMachineSchema, input);
  const created = await db.machine.create({ data: { ...specs, hostId, dlperf: machineDlperf(specs) } });
  const apiKey = await issueApiKey(db, {
    userId: hostId,
    name: `agent of machine ${created.id}`,
    scope: "MACHINE",
    machineId: created.id,
  });
  await syncOffers(db, created.id);
  return { machine: created, apiKey };
}

const dollars = (amount: bigint) => amount * MICROS_PER_DOLLAR;
const MAX_LISTING_DAYS = 365;
const MIN_LISTING_DURATION_DAYS = 1 / 24;
/** A rolling end date is moved forward once it has fallen this far behind now + duration. */
export const LISTING_ROLL_STEP_MS = 10 * MINUTE_MS;

const pricePerGpuHour = z.bigint().min(1n).max(dollars(100n));
const minBidPerGpuHour = z.bigint().min(0n).max(dollars(100n));
const pricePerGb = z.bigint().min(0n).max(dollars(10n));
/** Bandwidth at most $1/GB: with the link speed it bounds what usage reports can charge per second. */
export const MAX_BANDWIDTH_PRICE_PER_GB_MICROS = dollars(1n);
const bandwidthPricePerGb = z.bigint().min(0n).max(MAX_BANDWIDTH_PRICE_PER_GB_MICROS, "must be at most $1 per GB");

const listMachineSchema = z
  .object({
    machineId: recordId,
    pricePerGpuHour,
    minBidPerGpuHour: minBidPerGpuHour.nullish(),
    storagePricePerGbMonth: pricePerGb.nullish(),
    inetUpPricePerGb: bandwidthPricePerGb.nullish(),
    inetDownPricePerGb: bandwidthPricePerGb.nullish(),
    minChunk: z
      .number()
      .int()
      .min(1)
      .max(16)
      .refine((n) => (n & (n - 1)) === 0, "a power of two")
      .nullish(),
    endDate: z
      .date()
      .refine((date) => date.getTime() > Date.now(), "must be in the future")
      .refine(
        (date) => date.getTime() <= Date.now() + MAX_LISTING_DAYS * DAY_MS,
        `at most ${MAX_LISTING_DAYS} days ahead`,
      )
      .nullish(),
    duration: z
      .number()
      .min(MIN_LISTING_DURATION_DAYS, "at least one hour (1/24 of a day)")
      .max(MAX_LISTING_DAYS, `at most ${MAX_LISTING_DAYS} days`)
      .nullish(),
  })
  .superRefine((listing, ctx) => {
    if (listing.endDate != null && listing.duration != null) {
      ctx.addIssue({ code: "custom", path: ["duration"], message: "give endDate or duration, not both" });
    }
    if (listing.minBidPerGpuHour != null && listing.minBidPerGpuHour > listing.pricePerGpuHour) {
      ctx.addIssue({ code: "custom", path: ["minBidPerGpuHour"], message: "must not exceed pricePerGpuHour" });
    }
  });

export type ListMachineInput = z.input<typeof listMachineSchema>;

/** The host's machine, or NotFoundError: other accounts' machines do not exist for them. */
async function ownMachine(db: Tx, hostId: number, id: number): Promise<Machine> {
  const machine = await db.machine.findFirst({ where: { id, hostId, removedAt: null } });
  if (!machine) throw new NotFoundError("Machine");
  return machine;
}

export async function updateAndSync(db: Tx, id: number, data: Prisma.MachineUpdateInput): Promise<Machine> {
  // Listing, min bid and verification changes can change who runs: the auction's lock (which flags
  // the machine for clearing) first, so concurrent changes to one machine apply one after another.
  await lockMachineForEvent(db, id);
  await db.machine.update({ where: { id }, data });
  await syncOffers(db, id);
  return db.machine.findUniqueOrThrow({ where: { id } });
}

/** Runs a machine command in its own transaction, then asks the auction to clear the machine. */
export async function commandThenClear(command: (tx: Tx) => Promise<Machine>): Promise<Machine> {
  const machine = await prisma.$transaction(command);
  await enqueueClearing(machine.id);
  return machine;
}

/**
 * Lists the machine, or changes its listing: omitted optional fields keep their earlier values;
 * null ones, and omitted ones the first time, take their defaults (min bid = price, no storage or
 * bandwidth charge, chunks from 1 GPU). A kept min bid above a new, lower price comes down to it.
 */
export async function listMachine(hostId: number, input: ListMachineInput, now = new Date()): Promise<Machine> {
  return commandThenClear((tx) => applyListing(tx, hostId, input, now));
}

/** listMachine in the caller's transaction (the clearing is left to the maintenance job's sweep). */
export async function applyListing(db: Tx, hostId: number, input: ListMachineInput, now = new Date()): Promise<Machine> {
  const listing = parseInput(listMachineSchema, input);
  const machine = await ownMachine(db, hostId, listing.machineId);
  const minChunk = keptOr(listing.minChunk, machine.minChunk, 1);
  if (minChunk > machine.numGpus) {
    throw new ValidationError([{ path: ["minChunk"], message: `at most the machine's ${machine.numGpus} GPUs` }]);
  }
  const price = listing.pricePerGpuHour;
  return updateAndSync(db, machine.id, {
    ...listingEnd(listing, machine, now),
    listed: true,
    pricePerGpuHourMicros: price,
    minBidPerGpuHourMicros: keptOr(listing.minBidPerGpuHour, keptMinBid(machine.minBidPerGpuHourMicros, price), price),
    storagePricePerGbMonthMicros: keptOr(listing.storagePricePerGbMonth, machine.storagePricePerGbMonthMicros, 0n),
    inetUpPricePerGbMicros: keptOr(listing.inetUpPricePerGb, machine.inetUpPricePerGbMicros, 0n),
    inetDownPricePerGbMicros: keptOr(listing.inetDownPricePerGb, machine.inetDownPricePerGbMicros, 0n),
    minChunk,
  });
}

/**
 * The listing's end: a fixed endDate, or a duration that keeps it at now + duration (rolled by
 * rollListingEndDates); neither keeps the earlier one, which must still be ahead.
 */
function listingEnd(
  listing: { endDate?: Date | null; duration?: number | null },
  machine: Pick<Machine, "endDate" | "listingDurationSeconds">,
  now: Date,
): { endDate: Date; listingDurationSeconds: number | null } {
  if (listing.endDate != null) return { endDate: listing.endDate, listingDurationSeconds: null };
  const seconds = listing.duration != null ? Math.round(listing.duration * (DAY_MS / 1000)) : machine.listingDurationSeconds;
  if (seconds !== null) return { endDate: new Date(now.getTime() + seconds * 1000), listingDurationSeconds: seconds };
  if (machine.endDate === null || machine.endDate <= now) {
    throw new ValidationError([{ path: ["endDate"], message: "an endDate or a duration is required: the listing has no end date ahead" }]);
  }
  return { endDate: machine.endDate, listingDurationSeconds: null };
}

/** A listing field's new value: omitted keeps the earlier one, null (or nothing earlier) takes the default. */
function keptOr<T>(given: T | null | undefined, earlier: T | null, fallback: T): T {
  return given === undefined ? (earlier ?? fallback) : (given ?? fallback);
}

/** The earlier min bid, capped at the new price; null on a first listing. */
function keptMinBid(earlier: bigint | null, price: bigint): bigint | null {
  return earlier !== null && earlier > price ? price : earlier;
}

const machineIdSchema = z.object({ machineId: recordId });

/** Withdraws the machine's offers; its prices are kept for the record. */
export async function unlistMachine(hostId: number, id: number): Promise<Machine> {
  const { machineId } = parseInput(machineIdSchema, { machineId: id });
  return commandThenClear(async (tx) => updateAndSync(tx, (await ownMachine(tx, hostId, machineId)).id, { listed: false }));
}

const setMinBidSchema = machineIdSchema.extend({ pricePerGpuHour: minBidPerGpuHour });

/** Sets the reserve price for interruptible (bid) rentals: at most the on-demand price. */
export async function setMinBid(hostId: number, id: number, price: bigint): Promise<Machine> {
  const { machineId: validId, pricePerGpuHour: minBid } = parseInput(setMinBidSchema, {
    machineId: id,
    pricePerGpuHour: price,
  });
  return commandThenClear(async (tx) => {
    const machine = await ownMachine(tx, hostId, validId);
    if (machine.pricePerGpuHourMicros !== null && minBid > machine.pricePerGpuHourMicros) {
      throw new ValidationError([{ path: ["pricePerGpuHour"], message: "must not exceed the machine's price per GPU-hour" }]);
    }
    return updateAndSync(tx, machine.id, { minBidPerGpuHourMicros: minBid });
  });
}

const extendSchema = z.object({
  machineId: recordId,
  endDate: z.date().refine((date) => date.getTime() <= Date.now() + MAX_LISTING_DAYS * DAY_MS, `at most ${MAX_LISTING_DAYS} days ahead`),
});

/**
 * The host moves the listing's end date later, and every contract on the machine that has not
 * ended with it. Contracts that already ended stay ended.
 */
export async function extendMachineEndDate(hostId: number, id: number, endDate: Date, now = new Date()): Promise<Machine> {
  const input = parseInput(extendSchema, { machineId: id, endDate });
  const owned = await prisma.machine.findFirst({ where: { id: input.machineId, hostId, removedAt: null }, select: { id: true } });
  if (!owned) throw new NotFoundError("Machine");
  return commandThenClear(async (tx) => {
    const locked = (await lockMachineForEvent(tx, owned.id))!;
    if (!locked.endDate || input.endDate <= locked.endDate || input.endDate <= now) {
      throw new ValidationError([{ path: ["endDate"], message: "must be later than the listing's current end date" }]);
    }
    await tx.machine.update({ where: { id: owned.id }, data: { endDate: input.endDate }, select: { id: true } });
    await tx.instance.updateMany({
      where: { machineId: owned.id, status: { notIn: ["EXITED", "DESTROYED"] }, endDate: { lt: input.endDate } },
      data: { endDate: input.endDate },
    });
    await syncOffers(tx, owned.id, now);
    return tx.machine.findUniqueOrThrow({ where: { id: owned.id } });
  });
}

/**
 * Listed machines whose end date has passed keep offer rows marked rentable until something
 * re-syncs them; this does (the offer-expiry job), so they drop out of search. Only machines that
 * still have a rentable offer are selected, so a second run finds nothing to do.
 */
export async function expireListings(now = new Date()): Promise<number> {
  const expired = await prisma.machine.findMany({
    where: { listed: true, endDate: { lte: now }, offers: { some: { rentable: true } } },
    select: { id: true },
  });
  for (const { id } of expired) {
    await prisma.$transaction(async (tx) => {
      // Same row lock as listing changes take, so a concurrent relisting is never overwritten.
      await tx.$queryRaw`SELECT id FROM machine WHERE id = ${id} FOR UPDATE`;
      await syncOffers(tx, id, now);
    });
  }
  return expired.length;
}

/**
 * Rolling end dates: each listed machine with a duration whose end date has fallen more than
 * LISTING_ROLL_STEP_MS behind now + duration gets now + duration, and its offers follow. Rentals
 * keep the end date they started with. Returns how many listings moved.
 */
export async function rollListingEndDates(now = new Date()): Promise<number> {
  const behind = await prisma.$queryRaw<{ id: number }[]>`
    SELECT id FROM machine
     WHERE listed AND listing_duration_seconds IS NOT NULL
       AND (end_date IS NULL OR end_date < ${now}::timestamptz + make_interval(secs => listing_duration_seconds) - make_interval(secs => ${LISTING_ROLL_STEP_MS / 1000}))`;
  for (const { id } of behind) {
    await prisma.$transaction(async (tx) => {
      // Under the row lock listing changes take, so a concurrent relisting (say, to a fixed end date) is not undone.
      const [locked] = await tx.$queryRaw<{ listed: boolean; seconds: number | null }[]>`
        SELECT listed, listing_duration_seconds AS seconds FROM machine WHERE id = ${id} FOR UPDATE`;
      if (!locked?.listed || locked.seconds === null) return;
      await tx.machine.update({ where: { id }, data: { endDate: new Date(now.getTime() + locked.seconds * 1000) }, select: { id: true } });
      await syncOffers(tx, id, now);
    });
  }
  return behind.length;
}

const MAX_DIRECT_PORTS = 10_000;

const networkSchema = z
  .object({
    machineId: recordId,
    publicAddress: hostAddress.nullish(),
    directPortStart: z.number().int().min(1).max(65_535),
    directPortEnd: z.number().int().min(1).max(65_535),
  })
  .superRefine((network, ctx) => {
    if (network.directPortEnd < network.directPortStart) {
      ctx.addIssue({ code: "custom", path: ["directPortEnd"], message: "must not be below directPortStart" });
    } else if (network.directPortEnd - network.directPortStart + 1 > MAX_DIRECT_PORTS) {
      ctx.addIssue({ code: "custom", path: ["directPortEnd"], message: `a range holds at most ${MAX_DIRECT_PORTS} ports` });
    }
  });

export type MachineNetworkInput = z.input<typeof networkSchema>;

/**
 * The host's declaration of how renters reach the machine: a fixed public address (omitted: the
 * address its agent reports) and the external port range that direct ports are mapped to.
 * Instances keep the ports they hold; new rentals take free ports of the new range.
 */
export async function setMachineNetwork(hostId: number, input: MachineNetworkInput): Promise<Machine> {
  const network = parseInput(networkSchema, input);
  return prisma.$transaction(async (tx) => {
    const machine = await ownMachine(tx, hostId, network.machineId);
    await tx.machine.update({
      where: { id: machine.id },
      data: { publicAddress: network.publicAddress ?? null, directPortStart: network.directPortStart, directPortEnd: network.directPortEnd },
    });
    await syncOffers(tx, machine.id);
    return tx.machine.findUniqueOrThrow({ where: { id: machine.id } });
  });
}

/** The host's machines that are not removed, oldest first; `query` carries the GraphQL selection's includes and the page. */
export function myMachines(
  db: Tx,
  hostId: number,
  query: Omit<Prisma.MachineFindManyArgs, "where" | "orderBy"> = {},
): Promise<Machine[]> {
  return db.machine.findMany({ ...query, where: myMachinesWhere(hostId), orderBy: { id: "asc" } });
}

export function myMachinesWhere(hostId: number): Prisma.MachineWhereInput {
  return { hostId, removedAt: null };
}
