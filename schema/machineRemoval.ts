import { MachineNotRemovableError, removeMachine } from "../domain/machineRemoval.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";

const RemovalRefusal = builder.enumType("MachineRemovalRefusal", {
  description: "Why a machine cannot be removed yet.",
  values: {
    LISTED: { description: "It is listed: unlist it first." },
    LIVE_CONTRACTS: { description: "Rentals on it are not destroyed yet: wait for them to end." },
  },
});

builder.objectType(MachineNotRemovableError, {
  name: "MachineNotRemovableError",
  description: "The machine cannot be removed yet (code MACHINE_LISTED or LIVE_CONTRACTS). Nothing was written.",
  interfaces: [ErrorInterface],
  fields: (t) => ({
    reason: t.field({ type: RemovalRefusal, description: "What stands in the way.", resolve: (error) => error.reason }),
    liveContracts: t.exposeInt("liveContracts", { description: "Rentals on the machine that are not destroyed." }),
  }),
});

builder.mutationField("removeMachine", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Removes one of the caller's machines for good: it must be unlisted with every rental on it destroyed. It leaves every listing and search (myMachines, offers, machine(id) for others); its earnings, and its renters' charges, stay in the statements. Its agent is told to clean up the disks of destroyed instances.",
    errors: { types: [MachineNotRemovableError] },
    args: { machineId: t.arg.globalID({ required: true, description: "The machine, such as \"Machine:12\"." }) },
    resolve: (_query, _root, args, ctx) => removeMachine(ctx.viewer.userId, localId(args.machineId, "Machine", "machineId")),
  }),
);

builder.prismaObjectFields("Machine", (t) => ({
  removedAt: t.expose("removedAt", { type: "DateTime", nullable: true, description: "When its host removed it; null while it is in service. Host only." }),
}));
