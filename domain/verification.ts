import { z } from "zod";
import type { Tx } from "../infra/db.ts";
import type { Machine, MachineVetting, VerificationState } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { NotFoundError } from "./errors.ts";
import { commandThenClear, updateAndSync } from "./machines.ts";
import { parseInput } from "./validation.ts";

/*
 * Operators' decisions on machines: verification (VERIFIED after checks such as a self-test,
 * DEVERIFIED on problems) and datacenter status (vetted secure-cloud hardware). Hosts never set
 * either. Each decision changes the machine and its offers in one transaction (search follows at
 * once), keeps a history row with the operator's note, and asks the auction to clear the machine
 * after commit: a deverified machine's offers stop selling.
 */

export interface VettingDecision {
  verification?: VerificationState;
  datacenter?: boolean;
  note?: string | null;
}

const note = z.string().trim().min(1).max(1000).nullish();

const verificationSchema = z
  .object({ machineId: recordId, verification: z.enum(["UNVERIFIED", "VERIFIED", "DEVERIFIED"]), note })
  .refine((input) => input.verification !== "DEVERIFIED" || input.note, {
    path: ["note"],
    message: "say why the machine is deverified: its host reads it",
  });

const datacenterSchema = z.object({ machineId: recordId, datacenter: z.boolean(), note });

/** An operator verifies, deverifies or resets a machine's verification. */
export function setMachineVerification(
  operatorId: number,
  input: { machineId: number; verification: VerificationState; note?: string | null },
): Promise<Machine> {
  const { machineId, ...decision } = parseInput(verificationSchema, input);
  return commandThenClear((tx) => vetMachine(tx, machineId, decision, operatorId));
}

/** An operator vets a machine as datacenter hardware (secure cloud), or withdraws that. */
export function setMachineDatacenter(
  operatorId: number,
  input: { machineId: number; datacenter: boolean; note?: string | null },
): Promise<Machine> {
  const { machineId, ...decision } = parseInput(datacenterSchema, input);
  return commandThenClear((tx) => vetMachine(tx, machineId, decision, operatorId));
}

/** A decision in the caller's transaction; without an operator for demo data and fixtures. */
export async function vetMachine(db: Tx, machineId: number, decision: VettingDecision, operatorId: number | null = null): Promise<Machine> {
  const machine = await db.machine.findUnique({ where: { id: machineId }, select: { id: true } });
  if (!machine) throw new NotFoundError("Machine");
  const { verification, datacenter, note: why } = decision;
  const updated = await updateAndSync(db, machine.id, { verification, datacenter });
  await db.machineVetting.create({ data: { machineId: machine.id, operatorId, verification, datacenter, note: why ?? null } });
  return updated;
}

/** A machine's vetting history, newest first. */
export function vettingHistory(db: Tx, machineId: number): Promise<MachineVetting[]> {
  return db.machineVetting.findMany({ where: { machineId }, orderBy: { id: "desc" } });
}
