import { z } from "zod";
import { prisma } from "../infra/db.ts";
import { publish } from "../infra/pubsub.ts";
import type { MachineSelfTest } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { ConflictError, NotFoundError } from "./errors.ts";
import { parseInput } from "./validation.ts";

/*
 * Machine self-tests. The machine's host or an operator requests one; it reaches the agent with the
 * machine's assignments (level-triggered: a reconnecting agent still finds it pending), the agent
 * runs its checks and reports them once. Operators read the report before they verify a machine.
 */

/** What the agent checks, in the order it runs them. */
export const SELF_TEST_CHECKS = ["GPU_VISIBLE", "CUDA", "DISK_WRITE", "DISK_READ", "NETWORK_DOWN", "NETWORK_UP", "CONTAINER_START"] as const;
export type SelfTestCheckName = (typeof SELF_TEST_CHECKS)[number];

export interface SelfTestCheck {
  name: SelfTestCheckName;
  passed: boolean;
  /** The measured figure, in `unit`; null when the check measures nothing (or could not). */
  value: number | null;
  unit: string | null;
  message: string;
}

/** Who asks: the machine's host (a key that may manage machines) or an operator. */
export interface SelfTestRequester {
  userId: number;
  operator: boolean;
}

/**
 * Requests a self-test of the machine; a test still pending is returned instead of a second one.
 * Another host's machine is NotFound, as everywhere.
 */
export async function requestSelfTest(requester: SelfTestRequester, machineId: number): Promise<MachineSelfTest> {
  const { id } = parseInput(z.object({ id: recordId }), { id: machineId });
  const test = await prisma.$transaction(async (tx) => {
    // The machine row's lock orders concurrent requests: one pending test at a time.
    const [machine] = await tx.$queryRaw<{ id: number; hostId: number }[]>`
      UPDATE machine SET assignments_revision = assignments_revision + 1 WHERE id = ${id} RETURNING id, host_id AS "hostId"`;
    if (!machine || (!requester.operator && machine.hostId !== requester.userId)) throw new NotFoundError("Machine");
    const pending = await tx.machineSelfTest.findFirst({ where: { machineId: id, status: "PENDING" } });
    return pending ?? tx.machineSelfTest.create({ data: { machineId: id, requestedById: requester.userId } });
  });
  publish("assignments", id, { machineId: id });
  return test;
}

const checkSchema = z.object({
  name: z.enum(SELF_TEST_CHECKS),
  passed: z.boolean(),
  value: z.number().finite().min(0).max(1e9).nullish(),
  unit: z.string().trim().min(1).max(16).nullish(),
  message: z.string().trim().max(500),
});

const reportSchema = z.object({
  selfTestId: recordId,
  checks: z
    .array(checkSchema)
    .min(1)
    .max(SELF_TEST_CHECKS.length)
    .refine((checks) => new Set(checks.map((check) => check.name)).size === checks.length, "each check at most once"),
});

/** The agent's report of a pending self-test of its own machine: PASSED when every check passed. */
export async function reportSelfTest(
  machineId: number,
  input: { selfTestId: number; checks: { name: string; passed: boolean; value?: number | null; unit?: string | null; message: string }[] },
): Promise<MachineSelfTest> {
  const report = parseInput(reportSchema, input);
  const checks: SelfTestCheck[] = report.checks.map((check) => ({ ...check, value: check.value ?? null, unit: check.unit ?? null }));
  const status = checks.every((check) => check.passed) ? "PASSED" : "FAILED";
  const [updated] = await prisma.machineSelfTest.updateManyAndReturn({
    where: { id: report.selfTestId, machineId, status: "PENDING" },
    data: { status, checks: checks as never, reportedAt: new Date() },
  });
  if (updated) return updated;
  const existing = await prisma.machineSelfTest.findFirst({ where: { id: report.selfTestId, machineId }, select: { id: true } });
  if (!existing) throw new NotFoundError("SelfTest");
  throw new ConflictError("This self-test was already reported");
}

/** The machine's self-tests, newest first. */
export function machineSelfTests(machineId: number, take = 20): Promise<MachineSelfTest[]> {
  return prisma.machineSelfTest.findMany({ where: { machineId }, orderBy: { id: "desc" }, take });
}

/** The self-tests the machine's agent should run now (with its assignments). */
export async function pendingSelfTests(machineId: number): Promise<number[]> {
  const pending = await prisma.machineSelfTest.findMany({ where: { machineId, status: "PENDING" }, select: { id: true }, orderBy: { id: "asc" } });
  return pending.map((test) => test.id);
}
