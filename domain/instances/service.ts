import { z } from "zod";
import type { Tx } from "../../infra/db.ts";
import { isUniqueViolation, prisma } from "../../infra/db.ts";
import { publish } from "../../infra/pubsub.ts";
import { type Instance, InstanceStatus, Prisma } from "../../prisma/generated/client/client.ts";
import { handsOutGpus } from "../agent/gpuCapability.ts";
import { type IssuedKey, issueApiKey, newApiKeySecret, recordId } from "../apiKeys.ts";
import { type LockedMachine, enqueueClearing, lockMachineForEvent, lockMachineOfInstance } from "../auction/service.ts";
import { recordBidChange } from "../auction/bids.ts";
import { auctionMachine, liveInstances, onDemandClaim, toContract } from "../auction/contracts.ts";
import { TRUST_FACTS_COLUMNS, type TrustFacts, checkSpendRate, rentalMicrosPerHour } from "../billing/spendLimit.ts";
import { ForbiddenError, IllegalTransitionError, NotFoundError, ValidationError } from "../errors.ts";
import { MICROS_PER_DOLLAR } from "../money.ts";
import { MIN_RENTAL_DISK_GB, chunkSizes, maintenanceStartSql, rentalEnd, reservedDiskSql, syncDirectPorts, syncOfferDisk, syncOffers } from "../offers/sync.ts";
import { type RegistryAuthInput, sealRentalAuth } from "../registryCredentials.ts";
import { type LaunchRequest, resolveLaunch } from "../templates.ts";
import { MAX_INT4, parseInput } from "../validation.ts";
import { BidTooLowError, InsufficientBalanceError, InsufficientDiskError, InsufficientGpusError, OfferUnavailableError } from "./errors.ts";
import { argList, envList, imageReference, launchMode, MAX_ONSTART_CHARS, portList } from "./launchSpec.ts";
import { newJupyterToken, releasePorts } from "./connection.ts";
import { directContainerPorts, freeDirectPortsSql, tooFewPortsError } from "./ports.ts";
import { applyEvent } from "./status.ts";

/*
 * Rentals. Every service that changes a machine's contracts locks the machine row first
 * (lockMachineForEvent), reads the instance under that lock, changes it through the lifecycle
 * table, commits, then asks the auction to clear the machine.
 *
 * The instance's API key: createInstance issues an INSTANCE-scoped key and returns its token once,
 * to the client, for the record; only its hash is stored. The agent that launches the container
 * calls `issueContainerApiKey` (MACHINE key of the instance's machine), which revokes the previous
 * key and issues a fresh one to put in the container's environment with the container label. So no
 * secret is ever stored, and a restarted container gets a working key.
 */

const CONTAINER_LABEL_PREFIX = "C.";

/** "C.<id>": the container's name on the host and the value of CONTAINER_LABEL inside it. */
export function containerLabel(instanceId: number): string {
  return `${CONTAINER_LABEL_PREFIX}${instanceId}`;
}

/** The name of an instance's own API key: the prefix and the instance id ("container C.12"). */
const CONTAINER_KEY_NAME_PREFIX = `container ${CONTAINER_LABEL_PREFIX}`;
function containerKeyName(instanceId: number): string {
  return `${CONTAINER_KEY_NAME_PREFIX}${instanceId}`;
}

const MAX_BID = 100n * MICROS_PER_DOLLAR;
const bidPrice = z.bigint().min(1n, "must be positive").max(MAX_BID, "at most $100 per GPU-hour");

const createSchema = z.object({
  offerId: z
    .string()
    .regex(/^\d{1,10}-\d{1,2}$/, 'an offer id such as "12-4"')
    .refine((id) => Number(id.split("-")[0]) <= MAX_INT4, "no such offer"),
  image: imageReference,
  diskGb: z.number().int().min(MIN_RENTAL_DISK_GB).max(1_000_000),
  launchMode,
  onstart: z.string().max(MAX_ONSTART_CHARS).default(""),
  env: envList.default([]),
  ports: portList.default([]),
  args: argList.default([]),
  templateId: recordId.nullish(),
  label: z.string().trim().max(64).nullish(),
  bidPricePerGpuHour: bidPrice.nullish(),
  idempotencyKey: z.string().min(1).max(128).nullish(),
});

/** A rental: from a template (its values fill what the request leaves out) or from image, disk and launch mode. */
export type CreateInstanceInput = Omit<z.input<typeof createSchema>, keyof LaunchRequest> &
  LaunchRequest & {
    /** For a private image: stored encrypted, sent only to the agent of the machine that runs it. */
    registryAuth?: RegistryAuthInput | null;
  };

export interface CreatedInstance {
  instance: Instance;
  /** The INSTANCE key, shown once; null when an earlier request with the same idempotency key created the instance. */
  apiKey: IssuedKey | null;
}

/** Why a locked machine's offer of `numGpus` cannot be rented now, or null when it can. */
function unrentableReason(machine: LockedMachine | null, numGpus: number, now: Date): string | null {
  if (!machine) return "no such offer";
  if (!machine.listed || machine.pricePerGpuHourMicros === null) return "the machine is not listed";
  if (machine.inMaintenance) return "the machine is in maintenance";
  if (!machine.online) return "the machine is offline";
  if (machine.verification === "DEVERIFIED") return "the machine is deverified";
  const end = rentalEnd(machine);
  if (!end || end <= now) return machine.maintenanceStartsAt !== null && machine.maintenanceStartsAt <= now ? "the machine is in maintenance" : "the listing has ended";
  if (!handsOutGpus(machine.metrics)) return "the machine's container engine cannot hand out GPUs (no NVIDIA container runtime)";
  if (!chunkSizes(machine.numGpus, machine.minChunk).includes(numGpus)) return "no such offer";
  return null;
}

/** The instance row as Prisma returns it, for raw statements that return instances. */
export const INSTANCE_COLUMNS = `id, client_id AS "clientId", machine_id AS "machineId", kind::text AS kind, num_gpus AS "numGpus",
  price_per_gpu_hour_micros AS "pricePerGpuHourMicros", storage_price_per_gb_month_micros AS "storagePricePerGbMonthMicros",
  inet_up_price_per_gb_micros AS "inetUpPricePerGbMicros", inet_down_price_per_gb_micros AS "inetDownPricePerGbMicros",
  end_date AS "endDate", bid_per_gpu_hour_micros AS "bidPerGpuHourMicros", bid_placed_at AS "bidPlacedAt", image,
  disk_gb AS "diskGb", launch_mode::text AS "launchMode", onstart, env, ports, args, template_id AS "templateId",
  reboot_count AS "rebootCount", recycle_count AS "recycleCount", registry_username AS "registryUsername",
  registry_password_encrypted AS "registryPasswordEncrypted", label, status::text AS status,
  intended_status::text AS "intendedStatus", status_message AS "statusMessage", status_changed_at AS "statusChangedAt",
  preempt_grace_seconds AS "preemptGraceSeconds", idempotency_key AS "idempotencyKey", created_at AS "createdAt",
  destroyed_at AS "destroyedAt", bid_standing::text AS "bidStanding", bid_price_to_win_micros AS "bidPriceToWinMicros"`;

type NewInstance = Pick<
  Instance,
  | "clientId" | "machineId" | "kind" | "numGpus" | "pricePerGpuHourMicros" | "storagePricePerGbMonthMicros"
  | "inetUpPricePerGbMicros" | "inetDownPricePerGbMicros" | "endDate" | "bidPerGpuHourMicros" | "image" | "diskGb"
  | "launchMode" | "onstart" | "ports" | "args" | "templateId" | "label" | "idempotencyKey" | "jupyterToken"
  | "registryUsername" | "registryPasswordEncrypted"
> & { env: { key: string; value: string }[] };

/**
 * Inserts a SCHEDULING instance in one statement (the hot path of bidding), returning the row as
 * Prisma would, with: its creation in the status history (and a bid's first price in its bid
 * history), its INSTANCE key, the account's SSH keys, and its container ports mapped to the lowest
 * free ports of the machine's range. The same statement sets the machine's offers' free disk to
 * `freeDiskGbAfter` (taking them off the market when that is too little for any rental) and their
 * free direct ports. Too few free ports is a ValidationError (the caller's transaction rolls back).
 */
async function insertInstance(tx: Tx, machine: LockedMachine, values: NewInstance, freeDiskGbAfter: number, now: Date): Promise<CreatedInstance> {
  const secret = newApiKeySecret();
  const wanted = directContainerPorts(values.launchMode, values.ports);
  const [row] = await tx.$queryRaw<(Instance & { apiKeyId: number; freeDirectPorts: number })[]>`
    WITH inserted AS (
       INSERT INTO instance (client_id, machine_id, kind, num_gpus, price_per_gpu_hour_micros, storage_price_per_gb_month_micros,
         inet_up_price_per_gb_micros, inet_down_price_per_gb_micros, end_date, bid_per_gpu_hour_micros, bid_placed_at, image,
         disk_gb, launch_mode, onstart, env, ports, args, template_id, label, status, intended_status, status_message, status_changed_at,
         idempotency_key, jupyter_token, registry_username, registry_password_encrypted)
       VALUES (${values.clientId}, ${values.machineId}, ${values.kind}::"RentalKind", ${values.numGpus}, ${values.pricePerGpuHourMicros},
         ${values.storagePricePerGbMonthMicros}, ${values.inetUpPricePerGbMicros}, ${values.inetDownPricePerGbMicros}, ${values.endDate},
         ${values.bidPerGpuHourMicros}, ${now}, ${values.image}, ${values.diskGb}, ${values.launchMode}::"LaunchMode", ${values.onstart},
         ${JSON.stringify(values.env)}::jsonb, ${values.ports}::text[], ${values.args}::text[], ${values.templateId}, ${values.label},
         'SCHEDULING', 'RUNNING', 'waiting for the auction to assign GPUs', ${now}, ${values.idempotencyKey}, ${values.jupyterToken},
         ${values.registryUsername}, ${values.registryPasswordEncrypted})
       RETURNING *
     ), history AS (
       INSERT INTO instance_status_change (instance_id, to_status, event, at) SELECT id, status, 'CREATED', status_changed_at FROM inserted
     ), bid AS (
       INSERT INTO bid_change (instance_id, price_micros, placed_at)
       SELECT id, bid_per_gpu_hour_micros, bid_placed_at FROM inserted WHERE kind = 'INTERRUPTIBLE'
     ), free AS (
       ${freeDirectPortsSql(machine)}
     ), wanted AS (
       SELECT * FROM unnest(${wanted.map((port) => port.containerPort)}::int[], ${wanted.map((port) => port.protocol)}::text[])
         WITH ORDINALITY AS w(container_port, protocol, n)
     ), mapped AS (
       INSERT INTO instance_port (instance_id, machine_id, container_port, protocol, host_port)
       SELECT inserted.id, inserted.machine_id, wanted.container_port, wanted.protocol, free.host_port
         FROM inserted, wanted JOIN free USING (n)
     ), ssh_keys AS (
       INSERT INTO instance_ssh_key (instance_id, public_key, fingerprint)
       SELECT inserted.id, k.public_key, k.fingerprint FROM inserted JOIN ssh_key k ON k.user_id = inserted.client_id
     ), offers AS (
       UPDATE offer SET disk_space = ${freeDiskGbAfter}::float8, rentable = rentable AND ${freeDiskGbAfter >= MIN_RENTAL_DISK_GB},
              direct_port_count = (SELECT count(*) FROM free) - ${wanted.length}
        WHERE machine_id = ${values.machineId}
     ), key AS (
       INSERT INTO api_key (user_id, name, prefix, hash, scope, instance_id)
       SELECT client_id, ${CONTAINER_KEY_NAME_PREFIX} || id, ${secret.prefix}, ${secret.hash}, 'INSTANCE', id FROM inserted
       RETURNING id
     )
     SELECT ${Prisma.raw(INSTANCE_COLUMNS)}, (SELECT id FROM key) AS "apiKeyId", (SELECT count(*)::int FROM free) AS "freeDirectPorts" FROM inserted`;
  const { apiKeyId, freeDirectPorts, ...instance } = row;
  if (wanted.length > freeDirectPorts) throw tooFewPortsError(wanted.length, freeDirectPorts);
  return { instance, apiKey: { id: apiKeyId, token: secret.token } };
}

/**
 * Rents an offer: on demand at the listing's price, or interruptible with a bid. The contract
 * copies the listing's prices and end date. Admission runs with the machine row locked, so racing
 * clients never book more GPUs than on-demand rentals leave. The same idempotency key returns the
 * instance it created first.
 */
export async function createInstance(userId: number, input: CreateInstanceInput, now = new Date()): Promise<CreatedInstance> {
  const { registryAuth, ...launch } = input;
  const data = parseInput(createSchema, await resolveLaunch(userId, launch));
  const sealedAuth = registryAuth ? sealRentalAuth(registryAuth) : null;
  const [machineId, numGpus] = data.offerId.split("-").map(Number);
  const replay = () =>
    data.idempotencyKey
      ? prisma.instance.findUnique({ where: { clientId_idempotencyKey: { clientId: userId, idempotencyKey: data.idempotencyKey } } })
      : null;
  const earlier = await replay();
  if (earlier) return { instance: earlier, apiKey: null };

  let created: CreatedInstance;
  try {
    created = await prisma.$transaction(async (tx) => {
      const locked = await lockMachineForEvent(tx, machineId);
      // The machine's free disk and next maintenance are read by the account's locking statement,
      // after the machine's lock: the machine's locking statement, had it waited for the lock (behind
      // another rental, or a window being scheduled), would still see the rows from before it began.
      const account = await lockAccount(tx, userId, locked);
      const machine = locked && { ...locked, maintenanceStartsAt: account.maintenanceStartsAt };
      const reason = unrentableReason(machine, numGpus, now);
      if (reason) throw new OfferUnavailableError(data.offerId, reason);
      const m = machine!;
      const freeDisk = Math.max(0, m.diskSpaceGb - account.diskReservedGb);
      if (data.diskGb > freeDisk) throw new InsufficientDiskError(data.diskGb, freeDisk);
      const kind = data.bidPricePerGpuHour == null ? "ON_DEMAND" : "INTERRUPTIBLE";
      // Only on-demand admission depends on the other contracts; bids are ranked by the clearing.
      const contracts = kind === "ON_DEMAND" ? (await liveInstances(tx, machineId)).map((instance) => toContract(instance, now)) : [];
      if (kind === "ON_DEMAND") {
        const free = m.numGpus - onDemandClaim(m.numGpus, contracts);
        if (numGpus > free) throw new InsufficientGpusError(numGpus, free);
      } else {
        const { minBidMicros } = auctionMachine(m);
        if (data.bidPricePerGpuHour! < minBidMicros) throw new BidTooLowError(minBidMicros);
      }
      assertFunded(account);
      await checkSpendRate(tx, userId, account, rentalMicrosPerHour({
        numGpus,
        gpuPriceMicros: data.bidPricePerGpuHour ?? m.pricePerGpuHourMicros!,
        diskGb: data.diskGb,
        storagePricePerGbMonthMicros: m.storagePricePerGbMonthMicros ?? 0n,
      }), now);
      const { instance, apiKey } = await insertInstance(tx, m, {
        clientId: userId,
        machineId,
        kind,
        numGpus,
        pricePerGpuHourMicros: m.pricePerGpuHourMicros!,
        storagePricePerGbMonthMicros: m.storagePricePerGbMonthMicros ?? 0n,
        inetUpPricePerGbMicros: m.inetUpPricePerGbMicros ?? 0n,
        inetDownPricePerGbMicros: m.inetDownPricePerGbMicros ?? 0n,
        // Never across a maintenance window: the rental ends when the next one starts.
        endDate: rentalEnd(m)!,
        bidPerGpuHourMicros: data.bidPricePerGpuHour ?? null,
        image: data.image,
        diskGb: data.diskGb,
        launchMode: data.launchMode,
        onstart: data.onstart,
        env: data.env,
        ports: data.ports,
        args: data.args,
        templateId: data.templateId ?? null,
        label: data.label ?? null,
        idempotencyKey: data.idempotencyKey ?? null,
        jupyterToken: data.launchMode === "JUPYTER" ? newJupyterToken() : null,
        registryUsername: sealedAuth?.registryUsername ?? null,
        registryPasswordEncrypted: sealedAuth?.registryPasswordEncrypted ?? null,
      }, freeDisk - data.diskGb, now);
      if (kind === "ON_DEMAND") {
        // Offers stop selling these GPUs on demand at once, before the clearing runs.
        const withNew = [...contracts, { instanceId: instance.id, kind, numGpus, bidPerGpuMicros: null, bidPlacedAt: now.getTime(), wantsToRun: true } as const];
        await tx.machine.update({ where: { id: machineId }, data: { gpusOnDemand: onDemandClaim(m.numGpus, withNew) }, select: { id: true } });
        await syncOffers(tx, machineId, now, withNew);
      }
      return { instance, apiKey };
    });
  } catch (error) {
    // The same key raced on another machine: the first one won.
    const existing = isUniqueViolation(error) ? await replay() : null;
    if (existing) return { instance: existing, apiKey: null };
    throw error;
  }
  publishInstanceChange(created.instance);
  await enqueueClearing(machineId);
  return created;
}

type LockedAccount = TrustFacts & {
  balance: bigint;
  debitMode: boolean;
  held: boolean;
  diskReservedGb: number;
  maintenanceStartsAt: Date | null;
};

/**
 * Locks the account row (so that a concurrent debit is seen, and concurrent rentals of one account
 * are checked one after the other) and reads what renting and starting check, with the disk reserved
 * on `machine` and its next maintenance when a rental asks (0 and null otherwise). NotFound when the
 * account is gone.
 */
async function lockAccount(tx: Tx, userId: number, machine: { id: number } | null = null): Promise<LockedAccount> {
  const [account] = await tx.$queryRaw<LockedAccount[]>`
    SELECT balance_micros AS balance, debit_mode AS "debitMode", metering_held_at IS NOT NULL AS held, ${TRUST_FACTS_COLUMNS},
           ${machine ? reservedDiskSql(machine.id) : Prisma.sql`0`} AS "diskReservedGb",
           ${machine ? Prisma.raw(maintenanceStartSql(String(machine.id))) : Prisma.sql`NULL::timestamptz`} AS "maintenanceStartsAt"
      FROM user_account u WHERE id = ${userId} FOR NO KEY UPDATE`;
  if (!account) throw new NotFoundError("User");
  return account;
}

/**
 * Refuses to rent or start for an account at or below zero that is not in debit mode: metering
 * would stop it at its next tick anyway, after charging for the time between.
 */
function assertFunded(account: LockedAccount): void {
  if (account.held) throw new ForbiddenError("The account's billing is on hold: nothing can run until support clears it");
  if (account.balance <= 0n && !account.debitMode) throw new InsufficientBalanceError(account.balance);
}

export type LockedInstance = Instance & { machine: LockedMachine };

/** An instance, and the client it must belong to (omitted for the agent, checked by machine). */
export type InstanceTarget = { id: number; clientId?: number };

/**
 * Runs `change` on the caller's instance with its machine row locked and the instance read under
 * the lock, then asks the auction to clear the machine. `change` returns the row it wrote. Another
 * account's instance is NotFound.
 */
export async function changeInstance(
  target: InstanceTarget,
  change: (tx: Tx, instance: LockedInstance, now: Date) => Promise<Instance>,
  now = new Date(),
): Promise<Instance> {
  const instance = await prisma.$transaction(async (tx) => {
    const machine = await lockMachineOfInstance(tx, target.id, target.clientId ?? null);
    if (!machine) throw new NotFoundError("Instance");
    const current = await tx.instance.findUniqueOrThrow({ where: { id: target.id } });
    return change(tx, { ...current, machine }, now);
  });
  publishInstanceChange(instance);
  await enqueueClearing(instance.machineId);
  return instance;
}

/** After commit: the client's subscribers refetch the instance, the machine's agent its desired state. */
export function publishInstanceChange(instance: Pick<Instance, "id" | "clientId" | "machineId">): void {
  publish("instanceStatus", instance.clientId, { instanceIds: [instance.id] });
  publish("assignments", instance.machineId, { machineId: instance.machineId });
}

const instanceIdSchema = recordId;

/** Start: a stopped instance waits in SCHEDULING for its GPUs; a live one is left as it is. */
export function startInstance(clientId: number, id: number): Promise<Instance> {
  return changeInstance({ id: parseInput(instanceIdSchema, id), clientId }, async (tx, instance, now) => {
    if (instance.status === "STOPPED") assertFunded(await lockAccount(tx, instance.clientId));
    return applyEvent(tx, instance, "START_REQUESTED", {
      message: instance.status === "STOPPED" ? "waiting for its GPUs" : instance.statusMessage,
      // A restarted on-demand rental queues behind the on-demand rentals running meanwhile.
      bidPlacedAt: instance.status === "STOPPED" && instance.kind === "ON_DEMAND" ? now : undefined,
    }, now);
  });
}

/** Stop: the GPUs are released at once; the disk is kept and the instance can be started again. */
export function stopInstance(clientId: number, id: number): Promise<Instance> {
  return changeInstance({ id: parseInput(instanceIdSchema, id), clientId }, async (tx, instance, now) => {
    const message = instance.status === "STOPPED" ? instance.statusMessage : "stopped by its owner";
    return applyEvent(tx, instance, "STOP_REQUESTED", { message, preemptGraceSeconds: null }, now);
  });
}

/** Destroy: final. The instance's keys stop working. */
export function destroyInstance(clientId: number, id: number): Promise<Instance> {
  return changeInstance({ id: parseInput(instanceIdSchema, id), clientId }, async (tx, instance, now) => {
    const destroyed = await applyEvent(tx, instance, "DESTROY_REQUESTED", { message: "destroyed by its owner", destroyedAt: now }, now);
    // Its disk is free again.
    await syncOfferDisk(tx, instance.machine);
    await tx.apiKey.updateMany({ where: { instanceId: instance.id, revokedAt: null }, data: { revokedAt: now } });
    await releasePorts(tx, instance.id);
    await syncDirectPorts(tx, instance.machine);
    return destroyed;
  });
}

/** Reboot: the agent restarts the container; its disk and data are kept. The instance is LOADING until it runs again. */
export function rebootInstance(clientId: number, id: number): Promise<Instance> {
  return changeInstance({ id: parseInput(instanceIdSchema, id), clientId }, async (tx, instance, now) => {
    await applyEvent(tx, instance, "REBOOT_REQUESTED", { message: "rebooting" }, now);
    return tx.instance.update({ where: { id: instance.id }, data: { rebootCount: { increment: 1 } } });
  });
}

/**
 * Recycle: the agent removes the container and creates it again from a fresh pull of the image, on
 * the same GPUs of the same machine; its data is lost. One that is not running is recreated when it
 * next runs.
 */
export function recycleInstance(clientId: number, id: number): Promise<Instance> {
  return changeInstance({ id: parseInput(instanceIdSchema, id), clientId }, (tx, instance, now) => recycle(tx, instance, {}, now));
}

async function recycle(tx: Tx, instance: LockedInstance, data: Prisma.InstanceUpdateInput, now: Date): Promise<Instance> {
  const holdsGpus = instance.status === "LOADING" || instance.status === "RUNNING";
  await applyEvent(tx, instance, "RECYCLE_REQUESTED", holdsGpus ? { message: "recreating the container" } : {}, now);
  return tx.instance.update({ where: { id: instance.id }, data: { ...data, recycleCount: { increment: 1 } } });
}

const updateSchema = z
  .object({
    image: imageReference.nullish(),
    env: envList.nullish(),
    onstart: z.string().max(MAX_ONSTART_CHARS).nullish(),
    args: argList.nullish(),
  })
  .refine((input) => Object.values(input).some((value) => value != null), "give at least one of image, env, onstart and args");

export type UpdateInstanceInput = z.input<typeof updateSchema>;

/** New image, env, onstart or args (each given one replaces the old), applied by recycling the container. */
export function updateInstance(clientId: number, id: number, input: UpdateInstanceInput): Promise<Instance> {
  const where = { id: parseInput(instanceIdSchema, id), clientId };
  const data = parseInput(updateSchema, input);
  return changeInstance(where, (tx, instance, now) =>
    recycle(tx, instance, {
      ...(data.image != null ? { image: data.image } : {}),
      ...(data.env != null ? { env: data.env } : {}),
      ...(data.onstart != null ? { onstart: data.onstart } : {}),
      ...(data.args != null ? { args: data.args } : {}),
    }, now),
  );
}

const changeBidSchema = z.object({ instanceId: recordId, pricePerGpuHour: bidPrice });

/** A new bid for an interruptible instance; it ranks as placed now. */
export function changeBid(userId: number, id: number, price: bigint): Promise<Instance> {
  const { instanceId, pricePerGpuHour } = parseInput(changeBidSchema, { instanceId: id, pricePerGpuHour: price });
  return changeInstance({ id: instanceId, clientId: userId }, async (tx, instance, now) => {
    if (instance.kind !== "INTERRUPTIBLE") {
      throw new ValidationError([{ path: ["instanceId"], message: "only interruptible instances have a bid" }]);
    }
    if (instance.status === "EXITED" || instance.status === "DESTROYED") throw new IllegalTransitionError(instance.status, "BID_CHANGED");
    const { minBidMicros } = auctionMachine(instance.machine);
    if (pricePerGpuHour < minBidMicros) throw new BidTooLowError(minBidMicros);
    await recordBidChange(tx, instance.id, pricePerGpuHour, now);
    // Unranked until the clearing that follows records the standing this price produced.
    return tx.instance.update({
      where: { id: instance.id },
      data: { bidPerGpuHourMicros: pricePerGpuHour, bidPlacedAt: now, bidStanding: null },
    });
  });
}

const labelSchema = z.object({ instanceId: recordId, label: z.string().trim().max(64).nullable() });

/** Sets or (with null or "") clears the label; it changes nothing else. */
export async function labelInstance(userId: number, id: number, label: string | null): Promise<Instance> {
  const input = parseInput(labelSchema, { instanceId: id, label });
  const { count } = await prisma.instance.updateMany({
    where: { id: input.instanceId, clientId: userId },
    data: { label: input.label || null },
  });
  if (count === 0) throw new NotFoundError("Instance");
  return prisma.instance.findUniqueOrThrow({ where: { id: input.instanceId } });
}

const listSchema = z.object({
  status: z.array(z.enum(InstanceStatus)).max(Object.keys(InstanceStatus).length).nullish(),
  label: z.string().max(64).nullish(),
});

/** The WHERE clause of the caller's instances: destroyed ones only when the status filter asks for them. */
export function instancesWhere(userId: number, filter: z.input<typeof listSchema>): Prisma.InstanceWhereInput {
  const { status, label } = parseInput(listSchema, filter);
  return {
    clientId: userId,
    status: status?.length ? { in: status } : { not: "DESTROYED" },
    ...(label != null ? { label } : {}),
  };
}

/** The instance on the agent's machine, or NotFound. */
export async function instanceOnMachine(machineId: number, id: number): Promise<{ id: number; machineId: number }> {
  const instance = await prisma.instance.findFirst({
    where: { id: parseInput(instanceIdSchema, id), machineId },
    select: { id: true, machineId: true },
  });
  if (!instance) throw new NotFoundError("Instance");
  return instance;
}

/**
 * For the agent launching the container: revokes the instance's previous keys and issues a fresh
 * INSTANCE key, whose token goes into the container's environment as CONTAINER_API_KEY next to
 * CONTAINER_LABEL. Tokens are never stored, so each launch gets a new one.
 */
export async function issueContainerApiKey(machineId: number, id: number): Promise<{ label: string; apiKey: IssuedKey }> {
  const instance = await instanceOnMachine(machineId, id);
  return prisma.$transaction(async (tx) => {
    const owner = await tx.instance.findUniqueOrThrow({ where: { id: instance.id }, select: { clientId: true, status: true } });
    if (owner.status === "DESTROYED") throw new NotFoundError("Instance");
    await tx.apiKey.updateMany({ where: { instanceId: instance.id, revokedAt: null }, data: { revokedAt: new Date() } });
    const apiKey = await issueApiKey(tx, {
      userId: owner.clientId,
      name: containerKeyName(instance.id),
      scope: "INSTANCE",
      instanceId: instance.id,
    });
    return { label: containerLabel(instance.id), apiKey };
  });
}
