import { MAX_MAINTENANCE_HOURS, MaintenanceOverlapError, cancelMaintenance, scheduleMaintenance } from "../domain/maintenance.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";

const HOUR_MS = 3_600_000;

export const MaintenanceWindowRef = builder.prismaObject("MaintenanceWindow", {
  description:
    "A period the host announced it will take a machine down for maintenance. Rentals sold before it end when it starts; its time does not count against the machine's reliability. Seen by the machine's host and by the renters of the machine.",
  fields: (t) => ({
    id: t.globalID({ description: "The window's id, for cancelMaintenance.", resolve: (window) => ({ type: "MaintenanceWindow", id: window.id }) }),
    machineId: t.globalID({ description: "The machine taken down.", resolve: (window) => ({ type: "Machine", id: window.machineId }) }),
    startsAt: t.expose("startsAt", { type: "DateTime", description: "When the maintenance starts." }),
    endsAt: t.expose("endsAt", { type: "DateTime", description: "When it ends: startsAt plus the duration." }),
    durationHours: t.float({
      description: "How long it lasts, hours.",
      resolve: (window) => (window.endsAt.getTime() - window.startsAt.getTime()) / HOUR_MS,
    }),
    reason: t.exposeString("reason", { description: "What the host told the renters; empty when nothing." }),
    cancelledAt: t.expose("cancelledAt", { type: "DateTime", nullable: true, description: "When the host cancelled it; null unless cancelled." }),
  }),
});

builder.objectType(MaintenanceOverlapError, {
  name: "MaintenanceOverlapError",
  description: "The machine already has maintenance scheduled in that time: windows of a machine may not overlap. Nothing was written.",
  interfaces: [ErrorInterface],
  fields: (t) => ({
    existingStartsAt: t.field({ type: "DateTime", description: "Start of the window it overlaps.", resolve: (error) => error.existing.startsAt }),
    existingEndsAt: t.field({ type: "DateTime", description: "End of the window it overlaps.", resolve: (error) => error.existing.endsAt }),
  }),
});

builder.mutationField("scheduleMaintenance", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "MaintenanceWindow",
    description:
      "Schedules maintenance of one of the caller's machines (the reference's `schedule maint`). Renters whose contracts run into it are told at once: their instances' status message, an instanceStatus event and an email. From then on the machine's offers sell rentals that end when the window starts; during it they are not rentable, and the time does not count against reliability. A start in the past, a duration out of range or an overlap with another window is a typed error and writes nothing.",
    errors: { types: [MaintenanceOverlapError] },
    args: {
      machineId: t.arg.globalID({ required: true, description: "The machine, such as \"Machine:12\"." }),
      start: t.arg({ type: "DateTime", required: true, description: "When the maintenance starts: in the future." }),
      durationHours: t.arg.float({
        required: true,
        description: `How long it lasts, hours: from 0.25 to ${MAX_MAINTENANCE_HOURS} (7 days).`,
      }),
      reason: t.arg.string({ description: "What to tell the renters, up to 500 characters." }),
    },
    resolve: (_query, _root, args, ctx) =>
      scheduleMaintenance(ctx.viewer.userId, {
        machineId: localId(args.machineId, "Machine", "machineId"),
        start: args.start,
        durationHours: args.durationHours,
        reason: args.reason,
      }),
  }),
);

builder.mutationField("cancelMaintenance", (t) =>
  t.withAuth({ permission: "MACHINES" }).prismaField({
    type: "MaintenanceWindow",
    description:
      "Cancels a maintenance window of one of the caller's machines that has not ended (the reference's `cancel maint`); one in progress ends now. Its renters are told as when it was scheduled.",
    errors: {},
    args: { id: t.arg.globalID({ required: true, description: "The window, such as \"MaintenanceWindow:3\"." }) },
    resolve: (_query, _root, args, ctx) => cancelMaintenance(ctx.viewer.userId, localId(args.id, "MaintenanceWindow")),
  }),
);

builder.prismaObjectFields("Machine", (t) => ({
  maintenanceWindows: t.relation("maintenanceWindows", {
    description: "Its maintenance windows that are not cancelled and have not ended, soonest first. Host only.",
    query: () => ({ where: { cancelledAt: null, endsAt: { gt: new Date() } }, orderBy: { startsAt: "asc" } }),
  }),
  inMaintenance: t.exposeBoolean("inMaintenance", {
    description: "Inside one of its maintenance windows now: its offers are not rentable. Host only.",
  }),
}));

builder.prismaObjectFields("Instance", (t) => ({
  maintenance: t.field({
    type: [MaintenanceWindowRef],
    description: "Maintenance the host scheduled on the instance's machine that has not ended, soonest first.",
    select: (_args, _ctx, nestedSelection) => ({
      machine: { select: { maintenanceWindows: nestedSelection({ where: { cancelledAt: null, endsAt: { gt: new Date() } }, orderBy: { startsAt: "asc" } }) } },
    }),
    resolve: (instance) => instance.machine.maintenanceWindows,
  }),
}));
