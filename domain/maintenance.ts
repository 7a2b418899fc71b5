import { z } from "zod";
import { prisma, type Tx } from "../infra/db.ts";
import { type MaintenanceWindow, Prisma } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { advanceReliabilitySql } from "./agent/reliability.ts";
import { enqueueClearing, lockMachineForEvent } from "./auction/service.ts";
import { AppError, NotFoundError } from "./errors.ts";
import { publishInstanceChanges } from "./instances/status.ts";
import { queueNotification } from "./notifications.ts";
import { syncOffers } from "./offers/sync.ts";
import { DAY_MS } from "./time.ts";
import { parseInput } from "./validation.ts";

/*
 * Maintenance windows, as the reference's `schedule maint`: the host announces when it will take a
 * machine down and for how long. In the transaction that records the window, every renter whose
 * contract runs into it is told (its instances' status message, an instanceStatus event after
 * commit, an email through the outbox), and the machine's offers start selling rentals that end
 * when the window starts (offer end date, and the end date createInstance gives a rental). While
 * the window lasts the machine is in_maintenance: its offers are not rentable and its reliability
 * neither gains nor loses (agent/reliability.ts). The liveness job moves machines in and out at the
 * windows' bounds (syncMaintenanceStates).
 */

export const MAX_MAINTENANCE_HOURS = 7 * 24;
const MAX_SCHEDULE_AHEAD_DAYS = 365;
const HOUR_MS = 3_600_000;

/** Another window of the machine overlaps the one asked for; nothing was written. */
export class MaintenanceOverlapError extends AppError {
  constructor(readonly existing: MaintenanceWindow) {
    super(
      `The machine has maintenance scheduled from ${existing.startsAt.toISOString()} to ${existing.endsAt.toISOString()}: windows may not overlap`,
      "MAINTENANCE_OVERLAP",
    );
  }
}

const scheduleSchema = (now: Date) =>
  z.object({
    machineId: recordId,
    start: z
      .date()
      .refine((date) => date.getTime() > now.getTime(), "must be in the future")
      .refine((date) => date.getTime() <= now.getTime() + MAX_SCHEDULE_AHEAD_DAYS * DAY_MS, `at most ${MAX_SCHEDULE_AHEAD_DAYS} days ahead`),
    durationHours: z
      .number()
      .finite()
      .min(0.25, "at least a quarter of an hour")
      .max(MAX_MAINTENANCE_HOURS, `at most ${MAX_MAINTENANCE_HOURS} hours (7 days)`),
    reason: z.string().trim().max(500).nullish(),
  });

export type ScheduleMaintenanceInput = z.input<ReturnType<typeof scheduleSchema>>;

/** Windows that are not cancelled and have not ended. */
const liveWindows = (now: Date) => ({ cancelledAt: null, endsAt: { gt: now } });

/**
 * The host schedules a maintenance window of its machine. Typed errors, nothing written: a start
 * in the past, a duration outside a quarter of an hour to 7 days, an overlap with another window,
 * another account's (or a removed) machine.
 */
export async function scheduleMaintenance(hostId: number, input: ScheduleMaintenanceInput, now = new Date()): Promise<MaintenanceWindow> {
  const request = parseInput(scheduleSchema(now), input);
  const startsAt = request.start;
  const endsAt = new Date(startsAt.getTime() + Math.round(request.durationHours * HOUR_MS));
  const { window, told } = await prisma.$transaction(async (tx) => {
    await ownLiveMachine(tx, hostId, request.machineId);
    // The machine's lock orders concurrent schedules of one machine: the overlap check holds.
    await lockMachineForEvent(tx, request.machineId);
    const overlapping = await tx.maintenanceWindow.findFirst({
      where: { machineId: request.machineId, ...liveWindows(now), startsAt: { lt: endsAt }, endsAt: { gt: startsAt } },
    });
    if (overlapping) throw new MaintenanceOverlapError(overlapping);
    const window = await tx.maintenanceWindow.create({
      data: { machineId: request.machineId, startsAt, endsAt, reason: request.reason ?? "" },
    });
    await syncOffers(tx, request.machineId, now);
    const told = await tellRenters(tx, window, "scheduled");
    return { window, told };
  });
  publishInstanceChanges(told);
  await enqueueClearing(window.machineId);
  return window;
}

/** The host cancels a window that has not ended; its renters are told. A window in progress ends now. */
export async function cancelMaintenance(hostId: number, windowId: number, now = new Date()): Promise<MaintenanceWindow> {
  const id = parseInput(recordId, windowId);
  const { window, told } = await prisma.$transaction(async (tx) => {
    const found = await tx.maintenanceWindow.findFirst({ where: { id, machine: { hostId, removedAt: null } } });
    if (!found) throw new NotFoundError("MaintenanceWindow");
    await lockMachineForEvent(tx, found.machineId);
    const [window] = await tx.maintenanceWindow.updateManyAndReturn({ where: { id, ...liveWindows(now) }, data: { cancelledAt: now } });
    if (!window) throw new NotFoundError("MaintenanceWindow");
    await moveMaintenanceStates(tx, now, found.machineId);
    await syncOffers(tx, found.machineId, now);
    return { window, told: await tellRenters(tx, window, "cancelled") };
  });
  publishInstanceChanges(told);
  await enqueueClearing(window.machineId);
  return window;
}

/** The machine's windows that are not cancelled and have not ended, soonest first. */
export function upcomingMaintenance(db: Tx, machineId: number, now = new Date()): Promise<MaintenanceWindow[]> {
  return db.maintenanceWindow.findMany({ where: { machineId, ...liveWindows(now) }, orderBy: { startsAt: "asc" } });
}

/**
 * Moves machines into maintenance when one of their windows has started and out when none lasts
 * any more (ended or cancelled), advancing their reliability up to `now` in the state they were in
 * (one statement; `machineId` limits it to one machine). Returns the machines moved, whose offers
 * the caller syncs.
 */
async function moveMaintenanceStates(db: Tx, now: Date, machineId: number | null = null): Promise<number[]> {
  // `now` and `machineId` are bound once, in `p`: the reliability fragment names `now` many times.
  const rows = await db.$queryRaw<{ id: number }[]>`
    WITH p AS (SELECT ${now}::timestamptz AS now, ${machineId}::int AS machine_id),
    active AS (
       SELECT DISTINCT w.machine_id FROM maintenance_window w, p
        WHERE w.cancelled_at IS NULL AND w.starts_at <= p.now AND w.ends_at > p.now AND (p.machine_id IS NULL OR w.machine_id = p.machine_id)
     )
     UPDATE machine SET ${Prisma.raw(advanceReliabilitySql("p.now"))}, in_maintenance = NOT in_maintenance
       FROM p
      WHERE (p.machine_id IS NULL OR machine.id = p.machine_id)
        AND ((machine.in_maintenance AND machine.id NOT IN (SELECT machine_id FROM active))
          OR (NOT machine.in_maintenance AND machine.id IN (SELECT machine_id FROM active)))
      RETURNING machine.id`;
  return rows.map((row) => row.id);
}

/** The liveness job's part: machines whose window started or ended change state, and their offers follow. */
export async function syncMaintenanceStates(now = new Date()): Promise<number[]> {
  const moved = await moveMaintenanceStates(prisma, now);
  for (const id of moved) await prisma.$transaction((tx) => syncOffers(tx, id, now));
  return moved;
}

/**
 * Tells every renter whose contract on the machine runs into the window: the status message of
 * each such instance, and one email per renter. Returns the instances, for their events after commit.
 */
async function tellRenters(tx: Tx, window: MaintenanceWindow, change: "scheduled" | "cancelled") {
  const affected = await tx.instance.findMany({
    where: { machineId: window.machineId, status: { not: "DESTROYED" }, endDate: { gt: window.startsAt } },
    select: { id: true, clientId: true },
    orderBy: { id: "asc" },
  });
  if (!affected.length) return [];
  const span = `${window.startsAt.toISOString()} to ${window.endsAt.toISOString()}`;
  const reason = window.reason ? ` (${window.reason})` : "";
  const message =
    change === "scheduled"
      ? `Host maintenance scheduled from ${span}${reason}: the machine may be down then; save your work before it starts.`
      : `The host cancelled the maintenance scheduled from ${span}.`;
  await tx.instance.updateMany({ where: { id: { in: affected.map((i) => i.id) } }, data: { statusMessage: message } });
  const byClient = new Map<number, number[]>();
  for (const { id, clientId } of affected) byClient.set(clientId, [...(byClient.get(clientId) ?? []), id]);
  for (const [userId, instanceIds] of byClient) {
    await queueNotification(tx, {
      userId,
      kind: change === "scheduled" ? "MAINTENANCE_SCHEDULED" : "MAINTENANCE_CANCELLED",
      subject: change === "scheduled" ? `Maintenance scheduled: ${span}` : `Maintenance cancelled: ${span}`,
      body: `${message}\n\nYour instances on the machine: ${instanceIds.join(", ")}.`,
    });
  }
  return affected.map(({ id, clientId }) => ({ instanceId: id, clientId }));
}

/** The host's machine that has not been removed, or NotFoundError. */
async function ownLiveMachine(db: Tx, hostId: number, machineId: number): Promise<void> {
  const machine = await db.machine.findFirst({ where: { id: machineId, hostId, removedAt: null }, select: { id: true } });
  if (!machine) throw new NotFoundError("Machine");
}
