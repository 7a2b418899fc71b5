import type { Tx } from "../../infra/db.ts";
import type { Instance } from "../../prisma/generated/client/client.ts";
import { launchSpecValid } from "../instances/launchSpec.ts";
import { handsOutGpus } from "./gpuCapability.ts";

/*
 * Whose fault a failed launch is. The agent may name a cause, but a host could blame every failure on
 * its clients, so the API decides what it can check and bounds what it cannot:
 * - a launch spec that today's checks refuse (stored before them) is the client's;
 * - NO_GPU_RUNTIME is spared when the machine's own heartbeat said its engine cannot hand out GPUs
 *   (its offers are not rentable then; this covers rentals made before that heartbeat): the client
 *   reads why, and the machine is not rented again until it can;
 * - IMAGE_UNAVAILABLE (the pull was refused: no such image, or not the client's to pull) is spared
 *   only when nothing refutes it: the same image has not run in the last IMAGE_RAN_WINDOW for the same
 *   client, nor for anyone when neither rental brought registry credentials (a public image pulls
 *   the same for everyone); and only while the machine has had fewer than SPARED_PER_DAY such claims spared
 *   in the last day, past which its claims count like any failure.
 * Every FAILED report is recorded (launch_failure) with the claim and the verdict.
 */

export const LAUNCH_FAILURE_CAUSES = ["IMAGE_UNAVAILABLE", "NO_GPU_RUNTIME"] as const;
export type LaunchFailureCause = (typeof LAUNCH_FAILURE_CAUSES)[number];

export const SPARED_PER_DAY = 5;
const IMAGE_RAN_WINDOW = "30 days";

/** What the client reads when a machine cannot hand out GPUs. */
export const NO_GPU_RUNTIME_MESSAGE =
  "this machine's container engine cannot hand out GPUs (no NVIDIA container runtime), so the rental was not started; rent another machine";

type FailedInstance = Pick<Instance, "id" | "machineId" | "clientId" | "image" | "env" | "ports" | "registryUsername">;

/** Records the failure and says whether it is spared (not held against the machine's reliability). */
export async function judgeFailure(tx: Tx, instance: FailedInstance, claimedCause: LaunchFailureCause | null, now: Date): Promise<boolean> {
  const spared = !launchSpecValid(instance) || (claimedCause !== null && (await claimHolds(tx, instance, claimedCause)));
  await tx.launchFailure.create({ data: { machineId: instance.machineId, instanceId: instance.id, claimedCause, spared, at: now } });
  return spared;
}

async function claimHolds(tx: Tx, instance: FailedInstance, cause: LaunchFailureCause): Promise<boolean> {
  if (cause === "NO_GPU_RUNTIME") {
    const machine = await tx.machine.findUniqueOrThrow({ where: { id: instance.machineId }, select: { metrics: true } });
    return !handsOutGpus(machine.metrics);
  }
  const [{ ran, spared }] = await tx.$queryRaw<{ ran: boolean; spared: bigint }[]>`
    SELECT EXISTS (
             SELECT 1 FROM instance other JOIN instance_status_change change ON change.instance_id = other.id
              WHERE other.image = ${instance.image} AND change.to_status = 'RUNNING'
                AND change.at > now() - ${IMAGE_RAN_WINDOW}::interval
                AND (other.client_id = ${instance.clientId} OR (other.registry_username IS NULL AND ${instance.registryUsername === null}))
           ) AS ran,
           (SELECT count(*) FROM launch_failure
             WHERE machine_id = ${instance.machineId} AND claimed_cause = 'IMAGE_UNAVAILABLE' AND spared
               AND at > now() - interval '1 day') AS spared`;
  return !ran && Number(spared) < SPARED_PER_DAY;
}
