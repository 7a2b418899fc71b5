import { z } from "zod";
import { prisma } from "../infra/db.ts";
import { type MachineReport, MachineReportReason } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { AppError } from "./errors.ts";
import { parseInput } from "./validation.ts";

/*
 * Clients report machines they rented (reason and text). The machine's host sees the reports
 * without the reporter; operators see every report with its reporter.
 */

/** The caller never rented the machine (or there is no such machine): nothing was written. */
export class NotARenterError extends AppError {
  constructor() {
    super("Only someone who rented the machine may report it", "NOT_A_RENTER");
  }
}

const reportSchema = z.object({
  machineId: recordId,
  reason: z.enum(MachineReportReason),
  text: z.string().trim().min(1, "must not be empty").max(2000, "at most 2,000 characters"),
});

export type ReportMachineInput = z.input<typeof reportSchema>;

/** Records the caller's report of a machine it rents or once rented. */
export async function reportMachine(reporterId: number, input: ReportMachineInput): Promise<MachineReport> {
  const report = parseInput(reportSchema, input);
  const rented = await prisma.instance.findFirst({ where: { machineId: report.machineId, clientId: reporterId }, select: { id: true } });
  if (!rented) throw new NotARenterError();
  return prisma.machineReport.create({ data: { ...report, reporterId } });
}
