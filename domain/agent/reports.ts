import { z } from "zod";
import { prisma } from "../../infra/db.ts";
import { publishEach } from "../../infra/pubsub.ts";
import type { Instance, InstanceStatus } from "../../prisma/generated/client/client.ts";
import { type UsageCharge, recordUsage } from "../billing/usage.ts";
import { NotFoundError } from "../errors.ts";
import type { InstanceEvent } from "../instances/lifecycle.ts";
import { reportedPortsSchema } from "../instances/connection.ts";
import { changeInstance } from "../instances/service.ts";
import { applyEvent } from "../instances/status.ts";
import { syncOffers } from "../offers/sync.ts";
import { MAX_INT8, parseInput } from "../validation.ts";
import { judgeFailure, LAUNCH_FAILURE_CAUSES, type LaunchFailureCause, NO_GPU_RUNTIME_MESSAGE } from "./failures.ts";
import { FAILED_ASSIGNMENT_PENALTY_SECONDS, advanceReliabilitySql } from "./reliability.ts";

/*
 * The agent's reports. Each is accepted only from the MACHINE key of the instance's machine; an
 * instance on another machine does not exist for it.
 */

export type ReportedState = "RUNNING" | "EXITED" | "STOPPED" | "FAILED";

/**
 * What a report does to an instance in `status`: a lifecycle event, or null when it changes nothing.
 * - RUNNING moves LOADING to RUNNING (the only way there); RUNNING again is a no-op.
 * - EXITED: the container ended by itself: LOADING or RUNNING end as EXITED; EXITED again is a no-op.
 * - FAILED: the launch failed (image, disk, runtime): LOADING or RUNNING end as EXITED with the reason.
 * - STOPPED acknowledges a stop the platform asked for and never changes the status: when the
 *   instance wants to run meanwhile, the report is older than the desired state, which the agent
 *   will apply.
 * Anything else (RUNNING for a stopped instance: the agent has not seen the stop yet) is illegal
 * and refused as IllegalTransitionError by the lifecycle table.
 */
export function eventForReport(status: InstanceStatus, report: ReportedState): InstanceEvent | null {
  switch (report) {
    case "RUNNING":
      return status === "RUNNING" ? null : "AGENT_RUNNING";
    case "EXITED":
    case "FAILED":
      return status === "EXITED" ? null : "AGENT_EXITED";
    case "STOPPED":
      return null;
  }
}

const reportSchema = z.object({
  instanceId: z.number().int().positive(),
  status: z.enum(["RUNNING", "EXITED", "STOPPED", "FAILED"]),
  message: z.string().max(1000).nullish(),
  ports: reportedPortsSchema.nullish(),
  failureCause: z.enum(LAUNCH_FAILURE_CAUSES).nullish(),
});

/** The instance on the agent's own machine, or NotFound. */
async function instanceOfAgent(machineId: number, instanceId: number): Promise<{ id: number; clientId: number; machine: { hostId: number } }> {
  const instance = await prisma.instance.findFirst({
    where: { id: instanceId, machineId },
    select: { id: true, clientId: true, machine: { select: { hostId: true } } },
  });
  if (!instance) throw new NotFoundError("Instance");
  return instance;
}

export async function reportInstanceState(
  machineId: number,
  input: {
    instanceId: number;
    status: ReportedState;
    message?: string | null;
    ports?: { containerPort: number; protocol: "tcp" | "udp"; hostPort: number }[] | null;
    failureCause?: LaunchFailureCause | null;
  },
): Promise<Instance> {
  const { instanceId, status, message, ports, failureCause } = parseInput(reportSchema, input);
  const target = await instanceOfAgent(machineId, instanceId);
  // A report that changes nothing (a repeat, a stop acknowledged) is answered without a write.
  const seen = await prisma.instance.findUniqueOrThrow({ where: { id: target.id } });
  const portsChanged = ports != null && JSON.stringify(ports) !== JSON.stringify(seen.reportedPorts);
  if (status !== "FAILED" && eventForReport(seen.status, status) === null && !portsChanged) return seen;
  return changeInstance({ id: target.id }, async (tx, current, now) => {
    const event = eventForReport(current.status, status);
    // The mappings the container got, once it runs: what the owner's connection details show.
    if (ports != null) {
      current = { ...current, ...(await tx.instance.update({ where: { id: current.id }, data: { reportedPorts: ports } })) };
    }
    // A failed assignment counts against the machine's reliability (reliability.ts) unless the API
    // finds its cause to be the client's, or the machine's declared incapacity (failures.ts).
    const spared = status === "FAILED" && (await judgeFailure(tx, current, failureCause ?? null, now));
    if (status === "FAILED" && !spared) {
      await tx.$executeRawUnsafe(
        `UPDATE machine SET ${advanceReliabilitySql("$2::timestamptz", FAILED_ASSIGNMENT_PENALTY_SECONDS)} WHERE id = $1`,
        current.machineId,
        now,
      );
      await syncOffers(tx, current.machineId, now);
    }
    if (!event) return current;
    const text =
      status === "RUNNING"
        ? null
        : status !== "FAILED"
          ? (message ?? "the container exited")
          : spared && failureCause === "NO_GPU_RUNTIME"
            ? NO_GPU_RUNTIME_MESSAGE
            : `failed to start: ${message ?? "unknown error"}`;
    return applyEvent(tx, current, event, { message: text }, now);
  });
}

const counter = z
  .string()
  .regex(/^\d{1,19}$/, "a byte counter as a decimal string")
  .transform(BigInt)
  .refine((bytes) => bytes <= MAX_INT8, "at most 9223372036854775807");
const usageSchema = z.object({ instanceId: z.number().int().positive(), rxBytes: counter, txBytes: counter });

/**
 * The container's byte counters since it started: billing charges the growth only, so a repeated
 * report never double counts. Both balances it moved are published.
 */
export async function reportUsage(
  machineId: number,
  input: { instanceId: number; rxBytes: string; txBytes: string },
): Promise<UsageCharge> {
  const { instanceId, rxBytes, txBytes } = parseInput(usageSchema, input);
  const target = await instanceOfAgent(machineId, instanceId);
  const charge = await recordUsage(prisma, target.id, rxBytes, txBytes);
  if (charge.chargedMicros !== 0n) publishEach("balance", [target.clientId, target.machine.hostId], () => ({ immediate: false }));
  return charge;
}
