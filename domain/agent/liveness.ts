import { z } from "zod";
import { config } from "../../infra/config.ts";
import { prisma } from "../../infra/db.ts";
import { publish } from "../../infra/pubsub.ts";
import type { Machine } from "../../prisma/generated/client/client.ts";
import { enqueueClearing, flagForClearingSql, lockMachineForEvent } from "../auction/service.ts";
import { syncMaintenanceStates } from "../maintenance.ts";
import { syncOffers } from "../offers/sync.ts";
import { parseInput } from "../validation.ts";
import { handsOutGpus } from "./gpuCapability.ts";
import { DISCONNECT_PENALTY_SECONDS, REFRESH_STEP, advanceReliabilitySql, advancedReliability } from "./reliability.ts";

/*
 * Machine liveness. The agent's heartbeat stamps last_heartbeat_at (one UPDATE on the hot path).
 * The liveness job marks every machine silent for MACHINE_OFFLINE_AFTER_SECONDS offline in one
 * statement: its offers stop being rentable (syncOffers), metering charges nothing for it (metering
 * reads machine.online), and the auction's clearing moves its LOADING and RUNNING instances to
 * SCHEDULING (MACHINE_OFFLINE), publishing their status to their clients and the new desired state.
 * The next heartbeat brings it back: online again, offers rentable, and a clearing that gives the
 * waiting instances their GPUs again.
 *
 * Only machines whose agent has sent a heartbeat are watched: a machine registered without an agent
 * (the demo fleet, tests of the market alone) keeps its state until its agent first connects.
 */

const metricsSchema = z
  .object({
    gpuUtilization: z.array(z.number().min(0).max(100)).max(16).nullish(),
    gpuTemperatureC: z.array(z.number().min(-50).max(200)).max(16).nullish(),
    gpuMemoryUsedMb: z.array(z.number().int().min(0)).max(16).nullish(),
    cpuLoad: z.number().min(0).nullish(),
    diskFreeGb: z.number().min(0).nullish(),
    containerGpus: z.boolean().nullish(),
    gpulessTestMode: z.boolean().nullish(),
  })
  .nullish();

/** An IPv4/IPv6 address or a host name. */
export const hostAddress = z
  .string()
  .trim()
  .max(253)
  .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]+)$/, "an IP address or host name");

export type MachineMetrics = z.input<typeof metricsSchema>;

/** Brings a machine that was offline back online: offers, reliability (its outage ends here) and a clearing. */
async function comeBack(machineId: number, now: Date): Promise<void> {
  const cameBack = await prisma.$transaction(async (tx) => {
    await lockMachineForEvent(tx, machineId);
    const back = await tx.$executeRawUnsafe(
      `UPDATE machine SET ${advanceReliabilitySql("$2::timestamptz")}, online = true WHERE id = $1 AND NOT online`,
      machineId,
      now,
    );
    if (back) await syncOffers(tx, machineId, now);
    return back > 0;
  });
  if (!cameBack) return;
  publish("assignments", machineId, { machineId });
  await enqueueClearing(machineId);
}

/** The agent's heartbeat: liveness and metrics; a machine that was offline is back. */
export async function machineHeartbeat(
  machineId: number,
  metrics: MachineMetrics,
  now = new Date(),
  publicAddress?: string | null,
): Promise<Machine> {
  const data = parseInput(metricsSchema, metrics);
  const address = parseInput(z.object({ publicAddress: hostAddress.nullish() }), { publicAddress }).publicAddress ?? null;
  // The first heartbeat starts the machine's record from its stored score (reliability.ts).
  const [row] = await prisma.$queryRaw<{ online: boolean; before: unknown }[]>`
    UPDATE machine SET last_heartbeat_at = ${now}, metrics = ${data ? JSON.stringify(data) : null}::jsonb,
           reported_address = COALESCE(${address}, reported_address),
           reliability_good = CASE WHEN last_heartbeat_at IS NULL THEN reliability * reliability_weight ELSE reliability_good END,
           reliability_at = CASE WHEN last_heartbeat_at IS NULL THEN ${now} ELSE reliability_at END
      FROM (SELECT metrics AS before FROM machine WHERE id = ${machineId}) previous
     WHERE id = ${machineId} RETURNING online, previous.before`;
  if (!row.online) await comeBack(machineId, now);
  // Whether it can run GPU rentals decides whether its offers are rentable.
  else if (handsOutGpus(row.before) !== handsOutGpus(data)) await prisma.$transaction((tx) => syncOffers(tx, machineId, now));
  return prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
}

export interface LivenessSweep {
  /** Machines marked offline by this sweep. */
  offline: number[];
  /** Machines whose reliability score moved enough to be written to their offers. */
  rescored: number[];
}

/**
 * The liveness job (workers/machine-liveness.ts): machines enter and leave their maintenance
 * windows (domain/maintenance.ts); machines silent for too long go offline, each with a disconnect
 * in its reliability history (none inside a maintenance window); then every watched machine whose score has drifted
 * (decay, an outage going on) gets it stored and pushed to its offers.
 */
export async function sweepMachineLiveness(now = new Date()): Promise<LivenessSweep> {
  // Windows that started or ended first: a machine that goes silent inside one is not penalized.
  await syncMaintenanceStates(now);
  const cutoff = new Date(now.getTime() - config().MACHINE_OFFLINE_AFTER_SECONDS * 1000);
  const offline = await prisma.$queryRawUnsafe<{ id: number }[]>(
    `UPDATE machine SET ${advanceReliabilitySql("$1::timestamptz", DISCONNECT_PENALTY_SECONDS)}, online = false, ${flagForClearingSql("$1")}
      WHERE online AND last_heartbeat_at < $2 RETURNING id`,
    now,
    cutoff,
  );
  const { score } = advancedReliability("$1::timestamptz");
  const rescored = await prisma.$queryRawUnsafe<{ id: number }[]>(
    `UPDATE machine SET ${advanceReliabilitySql("$1::timestamptz")}
      WHERE last_heartbeat_at IS NOT NULL AND abs(${score} - reliability) >= $2 RETURNING id`,
    now,
    REFRESH_STEP,
  );
  const changed = new Set([...offline, ...rescored].map((row) => row.id));
  for (const id of changed) await prisma.$transaction((tx) => syncOffers(tx, id, now));
  for (const { id } of offline) await enqueueClearing(id);
  return { offline: offline.map((row) => row.id), rescored: rescored.map((row) => row.id) };
}
