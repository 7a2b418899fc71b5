import { setMachineDatacenter, setMachineVerification, vettingHistory } from "../domain/verification.ts";
import { prisma } from "../infra/db.ts";
import type { MachineVetting } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { VerificationState } from "./machine.ts";
import { selection } from "./selection.ts";

/* Operators' decisions on machines: verification and datacenter vetting, and their history. */

const MachineVettingRef = builder.objectRef<MachineVetting>("MachineVetting").implement({
  description: "An operator's decision on a machine, with the note the operator gave. Seen by the machine's host and by operators.",
  fields: (t) => ({
    verification: t.expose("verification", {
      type: VerificationState,
      nullable: true,
      description: "The verification the machine was given; null when the decision was about datacenter status only.",
    }),
    datacenter: t.exposeBoolean("datacenter", {
      nullable: true,
      description: "Whether the machine was vetted as datacenter hardware (true) or that was withdrawn (false); null when the decision was about verification only.",
    }),
    note: t.exposeString("note", { nullable: true, description: "Why, as the operator wrote it (always given for a deverification)." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the decision was made." }),
  }),
});

builder.prismaObjectFields("Machine", (t) => ({
  vettingHistory: t.field({
    type: [MachineVettingRef],
    description: "Operators' decisions on the machine's verification and datacenter status, newest first. Its host and operators only.",
    resolve: (machine) => vettingHistory(prisma, machine.id),
  }),
}));

const NOTE = "Why (at most 1,000 characters); the machine's host reads it. Required to deverify.";

builder.mutationField("setMachineVerification", (t) =>
  t.withAuth({ operator: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Operators only: verifies a machine after its checks (a self-test), deverifies it on problems (its offers stop selling; running rentals go on) or resets it to unverified. Search follows at once.",
    errors: {},
    args: {
      machineId: t.arg.globalID({ required: true, description: "The machine (Machine:<id>), any host's." }),
      verification: t.arg({ type: VerificationState, required: true, description: "The machine's new verification." }),
      note: t.arg.string({ description: NOTE }),
    },
    resolve: async (query, _root, args, ctx) => {
      const machineId = localId(args.machineId, "Machine", "machineId");
      await setMachineVerification(ctx.viewer.userId, { machineId, verification: args.verification, note: args.note });
      return prisma.machine.findUniqueOrThrow({ ...selection(query), where: { id: machineId } });
    },
  }),
);

builder.mutationField("setMachineDatacenter", (t) =>
  t.withAuth({ operator: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Operators only: vets a machine as datacenter hardware in a certified facility (secure cloud; the search field datacenter), or withdraws that. Hosts cannot declare it. Search follows at once.",
    errors: {},
    args: {
      machineId: t.arg.globalID({ required: true, description: "The machine (Machine:<id>), any host's." }),
      datacenter: t.arg.boolean({ required: true, description: "True: vetted datacenter hardware; false: not (any more)." }),
      note: t.arg.string({ description: NOTE }),
    },
    resolve: async (query, _root, args, ctx) => {
      const machineId = localId(args.machineId, "Machine", "machineId");
      await setMachineDatacenter(ctx.viewer.userId, { machineId, datacenter: args.datacenter, note: args.note });
      return prisma.machine.findUniqueOrThrow({ ...selection(query), where: { id: machineId } });
    },
  }),
);
