import { HOLDING_STATUSES } from "../domain/auction/contracts.ts";
import { SpendRateLimitError } from "../domain/billing/spendLimit.ts";
import { IllegalTransitionError, NotFoundError } from "../domain/errors.ts";
import {
  BidTooLowError,
  InsufficientBalanceError,
  InsufficientDiskError,
  InsufficientGpusError,
  OfferUnavailableError,
} from "../domain/instances/errors.ts";
import {
  type CreatedInstance,
  changeBid,
  containerLabel,
  createInstance,
  destroyInstance,
  instancesWhere,
  labelInstance,
  rebootInstance,
  recycleInstance,
  startInstance,
  stopInstance,
  updateInstance,
} from "../domain/instances/service.ts";
import { ownsInstance, seesInstance } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import {
  InstanceStatus as InstanceStatusValues,
  IntendedStatus as IntendedStatusValues,
  LaunchMode as LaunchModeValues,
  RentalKind as RentalKindValues,
} from "../prisma/generated/client/client.ts";
import { eventStream, flatMapStream } from "../infra/pubsub.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";
import { describedValues } from "./enumValues.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";
import { RegistryAuthInput } from "./registryCredential.ts";

/** "Template:3" or "3" (as offers take "12-4"); anything else is a ValidationError naming templateId. */
function templateLocalId(id: string): number {
  const separator = id.lastIndexOf(":");
  return localId({ typename: separator < 0 ? "Template" : id.slice(0, separator), id: id.slice(separator + 1) }, "Template", "templateId");
}

const RentalKind = builder.enumType("RentalKind", {
  description: "How a rental pays and whether it can be interrupted.",
  values: describedValues(RentalKindValues, {
    ON_DEMAND: "Pays the host's price per GPU-hour and is never interrupted.",
    INTERRUPTIBLE: "Bids per GPU-hour and runs while its bid wins its machine's auction; paused when outbid or preempted by on-demand rentals.",
  }),
});

export const LaunchMode = builder.enumType("LaunchMode", {
  description: "How the container is entered.",
  values: describedValues(LaunchModeValues, {
    SSH: "An SSH server in the container; log in as root with the account's keys.",
    JUPYTER: "A Jupyter server in the container, reached through the API's proxy or its mapped port.",
    ENTRYPOINT: "The image's own entrypoint only, with `args`.",
  }),
});

const InstanceStatus = builder.enumType("InstanceStatus", {
  description: "Where an instance is in its life.",
  values: describedValues(InstanceStatusValues, {
    SCHEDULING: "Waiting for its GPUs.",
    LOADING: "GPUs assigned; the container is being pulled and started.",
    RUNNING: "The container runs; the GPUs are charged.",
    PAUSED: "Interruptible and outbid or preempted by on-demand rentals; resumes when its bid wins again.",
    STOPPED: "Stopped by its owner; can be started again. The disk is kept and charged.",
    EXITED: "Its lifetime ended or the container ended by itself.",
    DESTROYED: "Gone with its disk; final.",
  }),
});

const IntendedStatus = builder.enumType("IntendedStatus", {
  description: "What the owner asked for.",
  values: describedValues(IntendedStatusValues, {
    RUNNING: "The owner wants it running (and its GPUs).",
    STOPPED: "The owner stopped it.",
  }),
});

export const EnvVar = builder.objectRef<{ key: string; value: string }>("EnvVar").implement({
  description: "An environment variable of the container.",
  fields: (t) => ({
    key: t.exposeString("key", { description: "Its name: letters, digits and _." }),
    value: t.exposeString("value", { description: "Its value." }),
  }),
});

builder.prismaObject("InstanceStatusChange", {
  description: "One change of an instance's status.",
  fields: (t) => ({
    from: t.expose("fromStatus", { type: InstanceStatus, nullable: true, description: "Null for the creation." }),
    to: t.expose("toStatus", { type: InstanceStatus, description: "The status it moved to." }),
    event: t.exposeString("event", { description: "What caused it, such as ALLOCATED, OUTBID or STOP_REQUESTED." }),
    message: t.exposeString("message", { nullable: true, description: "Why, for people, such as the price needed to win." }),
    at: t.expose("at", { type: "DateTime", description: "When it changed." }),
  }),
});

export const InstanceRef = builder.prismaNode("Instance", {
  id: { field: "id" },
  description:
    "A rental of a chunk of one machine. Its contract (GPU count, prices, end date) is fixed at creation; listing changes never alter it.",
  // Defence in depth: every path to an instance already filters by its client (or, for the agent's
  // reports, by its machine). Hosts see their machines' rentals as MachineContract, never as this.
  authScopes: (instance, ctx) => seesInstance(ctx.viewer, instance),
  fields: (t) => ({
    kind: t.expose("kind", { type: RentalKind, description: "On-demand or interruptible." }),
    machineId: t.globalID({ description: "The machine it runs on; machine(id) shows its public specs.", resolve: (instance) => ({ type: "Machine", id: instance.machineId }) }),
    numGpus: t.exposeInt("numGpus", { description: "GPUs rented." }),
    gpuIndices: t.intList({
      description:
        "The machine's GPUs (0-based) it holds while LOADING or RUNNING, given by the auction: never shared with another instance holding GPUs on the machine. Empty in other statuses; a restarted instance may get others.",
      resolve: (instance) => (HOLDING_STATUSES.has(instance.status) ? instance.gpuIndices : []),
    }),
    pricePerGpuHour: t.field({
      type: "Money",
      description: "The on-demand price per GPU-hour locked by the contract.",
      resolve: (instance) => instance.pricePerGpuHourMicros,
    }),
    bidPerGpuHour: t.field({
      type: "Money",
      nullable: true,
      description: "Interruptible only: the current bid per GPU-hour.",
      resolve: (instance) => instance.bidPerGpuHourMicros,
    }),
    bidPlacedAt: t.expose("bidPlacedAt", { type: "DateTime", description: "Ties between equal bids go to the earlier one." }),
    storagePricePerGbMonth: t.field({
      type: "Money",
      description: "Disk price locked by the contract, dollars per GB-month (30 days).",
      resolve: (instance) => instance.storagePricePerGbMonthMicros,
    }),
    inetUpPricePerGb: t.field({ type: "Money", description: "Upload price locked by the contract, dollars per GB sent.", resolve: (instance) => instance.inetUpPricePerGbMicros }),
    inetDownPricePerGb: t.field({
      type: "Money",
      description: "Download price locked by the contract, dollars per GB received.",
      resolve: (instance) => instance.inetDownPricePerGbMicros,
    }),
    endDate: t.expose("endDate", { type: "DateTime", description: "The end of its lifetime: it becomes EXITED then." }),
    image: t.exposeString("image", { description: "The Docker image reference it runs." }),
    diskGb: t.exposeInt("diskGb", { description: "Disk allocated, GB; charged while the instance exists." }),
    launchMode: t.expose("launchMode", { type: LaunchMode, description: "How the container is entered." }),
    onstart: t.exposeString("onstart", { description: "The script run when the container starts; empty for none." }),
    env: t.field({ type: [EnvVar], description: "The container's environment variables.", resolve: (instance) => instance.env as { key: string; value: string }[] }),
    ports: t.exposeStringList("ports", { description: "The ports asked for, as written (8081, 8081/udp, 70000:70000)." }),
    args: t.exposeStringList("args", { description: "ENTRYPOINT mode: arguments to the image's entrypoint." }),
    rebootCount: t.exposeInt("rebootCount", { description: "How many times rebootInstance was asked." }),
    recycleCount: t.exposeInt("recycleCount", { description: "How many times the container was asked to be recreated (recycleInstance, updateInstance)." }),
    templateId: t.globalID({
      nullable: true,
      description: "The template it was launched from, if any.",
      resolve: (instance) => (instance.templateId === null ? null : { type: "Template", id: instance.templateId }),
    }),
    label: t.exposeString("label", {
      nullable: true,
      // The agent runs the instance without it; the machine's host never learns a renter's names.
      authScopes: (instance, _args, ctx) => ownsInstance(ctx.viewer, instance),
      description: "The owner's name for it; null for none. Not shown to the machine's agent.",
    }),
    containerLabel: t.string({
      description: "The container's name, also CONTAINER_LABEL inside it.",
      resolve: (instance) => containerLabel(instance.id),
    }),
    status: t.expose("status", { type: InstanceStatus, description: "Where it is in its life now." }),
    intendedStatus: t.expose("intendedStatus", { type: IntendedStatus, description: "What its owner asked for: running or stopped." }),
    statusMessage: t.exposeString("statusMessage", { nullable: true, description: "Why it is in its status, such as the price needed to win." }),
    statusChangedAt: t.expose("statusChangedAt", { type: "DateTime", description: "When it entered its status." }),
    preemptGraceSeconds: t.exposeInt("preemptGraceSeconds", {
      nullable: true,
      description: "When its GPUs were taken while loading or running: seconds between the stop signal and the kill.",
    }),
    statusHistory: t.relation("statusChanges", { description: "Every change of its status, oldest first.", query: { orderBy: { id: "asc" } } }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was rented." }),
    destroyedAt: t.expose("destroyedAt", { type: "DateTime", nullable: true, description: "When it was destroyed; null while it exists." }),
  }),
});

builder.objectType(OfferUnavailableError, {
  name: "OfferUnavailableError",
  interfaces: [ErrorInterface],
  description: "The offer cannot be rented now: unlisted, unverified, offline, or its machine changed (code OFFER_UNAVAILABLE).",
  fields: (t) => ({ offerId: t.exposeString("offerId", { description: "The offer asked for." }) }),
});

builder.objectType(InsufficientGpusError, {
  name: "InsufficientGpusError",
  interfaces: [ErrorInterface],
  description: "Other on-demand rentals hold too many of the machine's GPUs.",
  fields: (t) => ({
    requested: t.exposeInt("requested", { description: "GPUs asked for." }),
    available: t.exposeInt("available", { description: "GPUs free of other on-demand rentals." }),
  }),
});

builder.objectType(InsufficientDiskError, {
  name: "InsufficientDiskError",
  interfaces: [ErrorInterface],
  description: "The machine has too little disk left for the disk asked for.",
  fields: (t) => ({
    requestedGb: t.exposeInt("requestedGb", { description: "Disk asked for, GB." }),
    availableGb: t.exposeFloat("availableGb", {
      description: "Disk still free on the machine, GB: its disk less the disks of its instances that are not destroyed.",
    }),
  }),
});

builder.objectType(BidTooLowError, {
  name: "BidTooLowError",
  interfaces: [ErrorInterface],
  description: "The bid is below the machine's minimum bid.",
  fields: (t) => ({
    minBidPerGpuHour: t.field({ type: "Money", description: "The machine's minimum bid, dollars per GPU-hour.", resolve: (error) => error.minBidMicros }),
  }),
});

builder.objectType(InsufficientBalanceError, {
  name: "InsufficientBalanceError",
  description: "The account's balance is zero or below (and it is not in debit mode): add credit first.",
  interfaces: [ErrorInterface],
  fields: (t) => ({ balance: t.field({ type: "Money", description: "The balance now, dollars.", resolve: (error) => error.balanceMicros }) }),
});

const EnvVarInput = builder.inputType("EnvVarInput", {
  description: "An environment variable to set in the container.",
  fields: (t) => ({
    key: t.string({ required: true, description: "Its name: letters, digits and _." }),
    value: t.string({ required: true, description: "Its value." }),
  }),
});

const CreateInstanceInput = builder.inputType("CreateInstanceInput", {
  description: "A rental: the offer, and what to run on it (or a template that says so).",
  fields: (t) => ({
    offerId: t.id({ required: true, description: 'The offer to rent, such as "Offer:12-4" or "12-4".' }),
    templateId: t.id({
      description: 'A template to start from ("Template:3"): its values apply wherever this input gives none; its variables and ports add to these.',
    }),
    image: t.string({ description: "A Docker image reference; required without a template." }),
    diskGb: t.int({ description: "Disk to allocate; it cannot be resized later. Required without a template (else its recommended size)." }),
    launchMode: t.field({ type: LaunchMode, description: "Required without a template." }),
    onstart: t.string({ description: "A script run when the container starts; at most 4,048 characters." }),
    args: t.stringList({ description: "ENTRYPOINT mode: arguments to the image's entrypoint (docker's command)." }),
    env: t.field({ type: [EnvVarInput], description: "Variable names: letters, digits and _." }),
    ports: t.stringList({ description: "Ports to open: 8081, 8081/udp, 8081:8081; identity ports 70000 and above as 70000:70000." }),
    dockerOptions: t.string({
      description: "Docker create/run options as the reference takes them: -p PORT and -e KEY=value, added to ports and env; others are refused.",
    }),
    registryAuth: t.field({
      type: RegistryAuthInput,
      description: "Credentials to pull a private image (else the account's saved ones for its registry, if any); stored encrypted, never returned.",
    }),
    label: t.string({ description: "A name for the instance, to find it by." }),
    bidPricePerGpuHour: t.field({
      type: "Money",
      description: "Makes the rental INTERRUPTIBLE at this bid; without it the rental is ON_DEMAND at the listing's price.",
    }),
    idempotencyKey: t.string({ description: "Retrying with the same key returns the first instance instead of creating another." }),
  }),
});

const CreateInstancePayload = builder.objectRef<CreatedInstance>("CreateInstancePayload").implement({
  description: "The rental just made.",
  fields: (t) => ({
    // The row createInstance wrote; a selected relation (statusHistory) is loaded by Pothos' fallback query.
    instance: t.field({ type: InstanceRef, description: "The new instance, SCHEDULING.", resolve: (payload) => payload.instance }),
    apiKey: t.field({
      type: IssuedApiKeyRef,
      nullable: true,
      description:
        "The instance's INSTANCE-scoped key, shown only now (null on an idempotent retry). It can start, stop and destroy this instance only; the agent installs a fresh one in the container.",
      resolve: (payload) => payload.apiKey,
    }),
  }),
});

builder.mutationField("createInstance", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: CreateInstancePayload,
    description:
      "Rents an offer: an on-demand instance at the listing's prices, or an interruptible one at `bidPricePerGpuHour`. Its contract (GPUs, prices, end date) is fixed now. Needs a positive balance and room under the spend rate limit.",
    errors: {
      types: [OfferUnavailableError, InsufficientGpusError, InsufficientDiskError, BidTooLowError, SpendRateLimitError, InsufficientBalanceError],
    },
    args: { input: t.arg({ type: CreateInstanceInput, required: true, description: "The rental." }) },
    resolve: (_root, { input }, ctx) =>
      createInstance(ctx.viewer.userId, {
        ...input,
        offerId: String(input.offerId).replace(/^Offer:/, ""),
        templateId: input.templateId == null ? null : templateLocalId(String(input.templateId)),
      }),
  }),
);

/** The owner's `permission`, or the instance's own key for itself; the resolver validates the id argument. */
export const ownerOrOwnKey =
  (permission: "INSTANCES" | "READ" = "INSTANCES", argument = "id") =>
  (_root: unknown, args: Record<string, unknown>) => {
    const id = args[argument] as { typename: string; id: string };
    return { permission, instanceKey: id.typename === "Instance" ? Number(id.id) : 0 };
  };

const lifecycleMutations = { startInstance, stopInstance, destroyInstance, rebootInstance, recycleInstance } as const;
const lifecycleDescriptions = {
  startInstance: "Starts a stopped instance: it waits in SCHEDULING until its GPUs are free. On a live instance, a no-op.",
  stopInstance: "Stops the instance and releases its GPUs; the disk is kept (and charged).",
  destroyInstance: "Destroys the instance and its disk; final.",
  rebootInstance:
    "Restarts the container of a LOADING or RUNNING instance; its data is kept. The instance is LOADING until the agent has it running again.",
  recycleInstance:
    "Recreates the container from a fresh pull of its image, on the same GPUs and machine; data in the container is lost. A running instance is LOADING until the agent has it running again; one that is not running is recreated when it next runs.",
} as const;

for (const [name, mutate] of Object.entries(lifecycleMutations)) {
  builder.mutationField(name, (t) =>
    // The instance's own key may do these for its own instance; the resolver validates the id.
    t.withAuth(ownerOrOwnKey()).field({
      type: InstanceRef,
      description: lifecycleDescriptions[name as keyof typeof lifecycleMutations],
      errors: { types: name === "startInstance" ? [IllegalTransitionError, InsufficientBalanceError] : [IllegalTransitionError] },
      args: { id: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }) },
      // The row the service wrote; selected relations are loaded by Pothos' fallback query.
      resolve: (_root, args, ctx) => mutate(ctx.viewer.userId, localId(args.id, "Instance")),
    }),
  );
}

const UpdateInstanceInput = builder.inputType("UpdateInstanceInput", {
  description: "Each field given replaces the instance's; at least one is needed.",
  fields: (t) => ({
    image: t.string({ description: "A Docker image reference." }),
    env: t.field({ type: [EnvVarInput], description: "The whole new environment." }),
    onstart: t.string({ description: "At most 4,048 characters." }),
    args: t.stringList({ description: "ENTRYPOINT mode: arguments to the image's entrypoint." }),
  }),
});

builder.mutationField("updateInstance", (t) =>
  t.withAuth(ownerOrOwnKey()).field({
    type: InstanceRef,
    description: "Changes the instance's image, env, onstart or args, applied by recycling it (see recycleInstance): the container's data is lost.",
    errors: { types: [IllegalTransitionError] },
    args: {
      id: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      input: t.arg({ type: UpdateInstanceInput, required: true, description: "What to change." }),
    },
    resolve: (_root, args, ctx) => updateInstance(ctx.viewer.userId, localId(args.id, "Instance"), args.input),
  }),
);

builder.mutationField("changeBid", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: InstanceRef,
    description: "Sets a new bid per GPU-hour for an interruptible instance; it ranks as placed now.",
    errors: { types: [BidTooLowError, IllegalTransitionError] },
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The interruptible instance, such as "Instance:7".' }),
      pricePerGpuHour: t.arg({ type: "Money", required: true, description: "The new bid, dollars per GPU-hour." }),
    },
    resolve: (_root, args, ctx) =>
      changeBid(ctx.viewer.userId, localId(args.instanceId, "Instance", "instanceId"), args.pricePerGpuHour),
  }),
);

builder.mutationField("labelInstance", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: InstanceRef,
    description: "Sets the instance's label; null or empty clears it.",
    errors: {},
    args: {
      id: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      label: t.arg.string({ description: "The new label; null or empty clears it." }),
    },
    resolve: (_root, args, ctx) => labelInstance(ctx.viewer.userId, localId(args.id, "Instance"), args.label ?? null),
  }),
);

builder.queryField("instances", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection({
    type: "Instance",
    cursor: "id",
    description: "The caller's instances, newest first; destroyed ones only when `status` asks for them.",
    args: {
      status: t.arg({ type: [InstanceStatus], description: "Only instances in these statuses (DESTROYED ones only when named here)." }),
      label: t.arg.string({ description: "Only instances with exactly this label." }),
    },
    resolve: (query, _root, args, ctx) =>
      prisma.instance.findMany({
        ...query,
        where: instancesWhere(ctx.viewer.userId, { status: args.status, label: args.label }),
        orderBy: { id: "desc" },
      }),
    totalCount: (_root, args, ctx) => prisma.instance.count({ where: instancesWhere(ctx.viewer.userId, { status: args.status, label: args.label }) }),
  }, { name: "InstanceConnection", description: "A page of instances." }, { name: "InstanceEdge" }),
);

builder.queryField("instance", (t) =>
  t.withAuth({ permission: "READ" }).prismaField({
    type: "Instance",
    description: "One of the caller's instances; another account's id is NOT_FOUND.",
    args: { id: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }) },
    resolve: async (query, _root, args, ctx) => {
      const id = localId(args.id, "Instance");
      const instance = Number.isSafeInteger(id)
        ? await prisma.instance.findFirst({ ...query, where: { id, clientId: ctx.viewer.userId } })
        : null;
      if (!instance) throw new NotFoundError("Instance");
      return instance;
    },
  }),
);

builder.subscriptionField("instanceStatus", (t) =>
  t.withAuth({ permission: "READ" }).prismaField({
    type: "Instance",
    description:
      "The instance (or, without `instanceId`, each of the caller's instances that are not destroyed) as it is now, then again after every change of its status or status message.",
    args: { instanceId: t.arg.globalID({ description: 'One instance, such as "Instance:7"; omitted: every live one.' }) },
    subscribe: async (_root, args, ctx) => {
      const userId = ctx.viewer.userId;
      const only = args.instanceId ? localId(args.instanceId, "Instance", "instanceId") : null;
      if (only !== null && !(await prisma.instance.findFirst({ where: { id: only, clientId: userId }, select: { id: true } }))) {
        throw new NotFoundError("Instance");
      }
      const events = eventStream("instanceStatus", userId, { merge: (a, b) => ({ instanceIds: [...a.instanceIds, ...b.instanceIds] }) });
      return flatMapStream(events, async (event) => {
        if (event) return [...new Set(event.instanceIds)].filter((id) => only === null || id === only);
        if (only !== null) return [only];
        const current = await prisma.instance.findMany({ where: instancesWhere(userId, {}), select: { id: true }, orderBy: { id: "asc" } });
        return current.map((instance) => instance.id);
      });
    },
    resolve: (query, instanceId: number, _args, ctx) =>
      prisma.instance.findFirstOrThrow({ ...query, where: { id: instanceId, clientId: ctx.viewer.userId } }),
  }),
);
