import { NotARenterError, reportMachine } from "../domain/machineReports.ts";
import { prisma } from "../infra/db.ts";
import { MachineReportReason as MachineReportReasonValues } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";

const MachineReportReason = builder.enumType(MachineReportReasonValues, {
  name: "MachineReportReason",
  description: "Why a client reports a machine.",
  values: {
    NOT_AS_DESCRIBED: { description: "Its hardware is not what its listing says (GPUs, VRAM, CPU, RAM, disk)." },
    POOR_PERFORMANCE: { description: "Much slower than its specs (GPUs, disk or CPU)." },
    NETWORK: { description: "Its network is slow, unreachable or far below its listed speeds." },
    GPU_ERRORS: { description: "GPU errors: missing devices, driver or CUDA failures, crashes." },
    DOWNTIME: { description: "It went down or lost the rental's data." },
    SECURITY: { description: "A security or privacy concern." },
    OTHER: { description: "Anything else; the text says what." },
  },
});

builder.prismaObject("MachineReport", {
  description: "A client's report of a machine it rented. Its machine's host sees it without the reporter; operators see every report.",
  fields: (t) => ({
    id: t.globalID({ description: "The report's id.", resolve: (report) => ({ type: "MachineReport", id: report.id }) }),
    machineId: t.globalID({ description: "The machine reported.", resolve: (report) => ({ type: "Machine", id: report.machineId }) }),
    reason: t.expose("reason", { type: MachineReportReason, description: "Why it was reported." }),
    text: t.exposeString("text", { description: "What the client wrote." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was reported." }),
    reporterId: t.withAuth({ operator: "READ" }).globalID({
      description: "The account that reported it. Operators only: another caller gets FORBIDDEN for this field.",
      resolve: (report) => ({ type: "User", id: report.reporterId }),
    }),
  }),
});

builder.objectType(NotARenterError, {
  name: "NotARenterError",
  description: "Only an account that rents or rented the machine may report it. Nothing was written.",
  interfaces: [ErrorInterface],
});

builder.mutationField("reportMachine", (t) =>
  t.withAuth({ permission: "INSTANCES" }).prismaField({
    type: "MachineReport",
    description: "Reports a machine the caller rents or once rented, with a reason and a text; its host and operators see the report (the host without the reporter).",
    errors: { types: [NotARenterError] },
    args: {
      machineId: t.arg.globalID({ required: true, description: "The machine (an instance's machineId), such as \"Machine:12\"." }),
      reason: t.arg({ type: MachineReportReason, required: true, description: "Why." }),
      text: t.arg.string({ required: true, description: "What happened, 1 to 2,000 characters." }),
    },
    resolve: (_query, _root, args, ctx) =>
      reportMachine(ctx.viewer.userId, { machineId: localId(args.machineId, "Machine", "machineId"), reason: args.reason, text: args.text }),
  }),
);

builder.prismaObjectFields("Machine", (t) => ({
  reports: t.relatedConnection(
    "reports",
    {
      cursor: "id",
      totalCount: true,
      description: "Clients' reports of this machine, newest first. Its host and operators only.",
      query: { orderBy: { id: "desc" } },
    },
    { description: "A page of a machine's reports." },
    { description: "One report of the machine." },
  ),
}));

builder.queryField("machineReports", (t) =>
  t.withAuth({ operator: "READ" }).prismaConnection(
    {
      type: "MachineReport",
      cursor: "id",
      totalCount: () => prisma.machineReport.count(),
      description: "Operators only: every machine report, newest first.",
      resolve: (query) => prisma.machineReport.findMany({ ...query, orderBy: { id: "desc" } }),
    },
    { description: "A page of machine reports." },
    { description: "One machine report." },
  ),
);
