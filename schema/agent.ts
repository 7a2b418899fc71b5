import {
  type AssignmentView,
  type MachineAssignmentsView,
  machineAssignments,
} from "../domain/agent/assignments.ts";
import type { RegistryAuth } from "../domain/registryCredentials.ts";
import type { LaunchFailureCause as LaunchFailureCauseValue } from "../domain/agent/failures.ts";
import { machineHeartbeat } from "../domain/agent/liveness.ts";
import { reportInstanceState, reportUsage } from "../domain/agent/reports.ts";
import type { UsageCharge } from "../domain/billing/usage.ts";
import { agentMachine } from "../domain/authorization.ts";
import { IllegalTransitionError } from "../domain/errors.ts";
import type { PortMapping } from "../domain/instances/ports.ts";
import { issueContainerApiKey } from "../domain/instances/service.ts";
import { eventStream } from "../infra/pubsub.ts";
import { IssuedApiKeyRef } from "./apiKey.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { EnvVar, InstanceRef, LaunchMode } from "./instance.ts";
import { MachineRef } from "./machine.ts";

/*
 * The host agent's side of the API (the realtime contract): its machine's desired state as a
 * subscription, and its reports. All of it for the machine's own MACHINE key only.
 */

const LaunchFailureCause = builder.enumType("LaunchFailureCause", {
  description: "Why the agent says a launch failed.",
  values: {
    IMAGE_UNAVAILABLE: { description: "The registry refused the pull: no such image, or not the client's to pull." },
    NO_GPU_RUNTIME: { description: "The machine's container engine cannot hand out GPUs (no NVIDIA container runtime)." },
  } satisfies Record<LaunchFailureCauseValue, { description: string }>,
});

const AssignmentState = builder.enumType("AssignmentState", {
  description: "What the agent makes of the container.",
  values: {
    RUNNING: { description: "Run it (start it if it is not running)." },
    STOPPED: { description: "Stop it, keeping it and its disk until the instance is destroyed." },
  } as const,
});

const ReportedInstanceState = builder.enumType("ReportedInstanceState", {
  description: "The agent's report of a container.",
  values: {
    RUNNING: { description: "It runs: moves a LOADING instance to RUNNING." },
    EXITED: { description: "It ended by itself." },
    STOPPED: { description: "A stop was done." },
    FAILED: { description: "It could not be launched (pull or create failed)." },
  } as const,
});

const RegistryAuthRef = builder.objectRef<RegistryAuth>("RegistryAuth").implement({
  description: "Credentials to pull a private image; sent only to the agent of the machine running the instance.",
  fields: (t) => ({
    registry: t.exposeString("registry", { description: "The registry host[:port]." }),
    username: t.exposeString("username", { description: "The registry user name." }),
    password: t.exposeString("password", { description: "The password or token, decrypted for the pull." }),
  }),
});

const AssignedPort = builder.objectRef<PortMapping>("AssignedPort").implement({
  description: "A container port and the external port it was given; hostPort null for an identity port (70000 and above), which the agent maps.",
  fields: (t) => ({
    containerPort: t.exposeInt("containerPort", { description: "The port inside the container." }),
    protocol: t.exposeString("protocol", { description: "The transport: tcp or udp." }),
    hostPort: t.exposeInt("hostPort", { nullable: true, description: "The external port to publish it on; null: the agent picks (identity ports)." }),
  }),
});

const AssignmentRef = builder.objectRef<AssignmentView>("Assignment").implement({
  description: "One instance the machine should hold.",
  fields: (t) => ({
    instanceId: t.globalID({ description: "The instance.", resolve: (a) => ({ type: "Instance", id: a.instanceId }) }),
    containerLabel: t.exposeString("containerLabel", { description: "The container's name, also CONTAINER_LABEL inside it." }),
    desiredState: t.expose("desiredState", { type: AssignmentState, description: "Run it or keep it stopped." }),
    image: t.exposeString("image", { description: "The Docker image reference to run." }),
    launchMode: t.expose("launchMode", { type: LaunchMode, description: "How the container is entered." }),
    onstart: t.exposeString("onstart", { nullable: true, description: "The script to run when the container starts." }),
    env: t.field({ type: [EnvVar], description: "The container's environment variables.", resolve: (a) => a.env }),
    ports: t.exposeStringList("ports", { description: "The ports asked for, as written." }),
    portMappings: t.field({ type: [AssignedPort], description: "Every port to publish, the launch mode's own included.", resolve: (a) => a.portMappings }),
    sshKeys: t.exposeStringList("sshKeys", { description: "OpenSSH public keys that may log in as root; changes reach the running container." }),
    jupyterToken: t.exposeString("jupyterToken", { nullable: true, description: "JUPYTER mode: the server's token." }),
    jupyterBasePath: t.exposeString("jupyterBasePath", { description: "JUPYTER mode: the server's base URL path (the API proxies it)." }),
    args: t.exposeStringList("args", { description: "ENTRYPOINT mode: arguments after the image." }),
    registryAuth: t.field({
      type: RegistryAuthRef,
      nullable: true,
      description: "Credentials to pull a private image with; only the agent of the machine running the instance receives them.",
      resolve: (a) => a.registryAuth,
    }),
    rebootCount: t.exposeInt("rebootCount", { description: "A container started at a lower count is restarted (its data kept)." }),
    recycleCount: t.exposeInt("recycleCount", { description: "A container created at a lower count is removed and created again from a fresh pull." }),
    diskGb: t.exposeInt("diskGb", { description: "Disk to give the container, GB." }),
    numGpus: t.exposeInt("numGpus", { description: "GPUs the instance rents." }),
    gpuIndices: t.exposeIntList("gpuIndices", {
      description: "The machine's GPUs (0-based) the container gets, and only those; empty when it should not run.",
    }),
    cpuCores: t.exposeFloat("cpuCores", { description: "CPU cores the container may use: its share of the machine's." }),
    memoryMb: t.exposeInt("memoryMb", { description: "RAM limit of the container, MB: its share of the machine's." }),
    preemptGraceSeconds: t.exposeInt("preemptGraceSeconds", {
      description: "Seconds between SIGTERM and SIGKILL when this instance is stopped or preempted.",
    }),
    statusMessage: t.exposeString("statusMessage", { nullable: true, description: "Why the instance is in its status, for the container's logs." }),
  }),
});

const MachineAssignmentsRef = builder.objectRef<MachineAssignmentsView>("MachineAssignments").implement({
  description: "A machine's whole desired state.",
  fields: (t) => ({
    machineId: t.globalID({ description: "The machine.", resolve: (state) => ({ type: "Machine", id: state.machineId }) }),
    revision: t.string({
      description:
        "Increases with every change of the machine's desired state (a bigint as a decimal string); an agent ignores a state older than one it has applied.",
      resolve: (state) => state.revision.toString(),
    }),
    instances: t.field({
      type: [AssignmentRef],
      description: "Every instance the machine should hold; destroyed ones are absent, so their containers are removed.",
      resolve: (state) => state.instances,
    }),
    selfTests: t.globalIDList({
      description: "Self-tests requested and not yet reported (MachineSelfTest ids): the agent runs each once and answers with reportSelfTest.",
      resolve: (state) => state.selfTests.map((id) => ({ type: "MachineSelfTest", id })),
    }),
  }),
});

builder.subscriptionField("assignments", (t) =>
  t.withAuth({ agent: true }).field({
    type: MachineAssignmentsRef,
    description:
      "For the machine's agent (its MACHINE key): the machine's whole desired state on subscribe, then the whole state again after every change. Level-triggered: a reconnecting agent loses nothing.",
    args: { machineId: t.arg.globalID({ required: true, description: "The agent's own machine." }) },
    subscribe: (_root, args, ctx) => {
      const machineId = agentMachine(ctx.viewer, localId(args.machineId, "Machine", "machineId"));
      return eventStream("assignments", machineId, { merge: (a) => a });
    },
    // Refetched for every event: the state is level-triggered, so coalesced events lose nothing.
    resolve: (_event, args) => machineAssignments(localId(args.machineId, "Machine", "machineId")),
  }),
);

const MachineMetricsInput = builder.inputType("MachineMetricsInput", {
  description: "What the agent measured; per-GPU lists are in GPU order.",
  fields: (t) => ({
    gpuUtilization: t.floatList({ description: "Percent." }),
    gpuTemperatureC: t.floatList({ description: "Degrees Celsius." }),
    gpuMemoryUsedMb: t.intList({ description: "VRAM in use, MB." }),
    cpuLoad: t.float({ description: "1-minute load average." }),
    diskFreeGb: t.float({ description: "Free disk for rentals, GB." }),
    containerGpus: t.boolean({
      description:
        "Whether the container engine can hand GPUs to containers (an NVIDIA container toolkit). false: the machine's offers are not rentable, unless gpulessTestMode.",
    }),
    gpulessTestMode: t.boolean({
      description:
        "The agent runs GPU rentals on an engine that cannot hand out GPUs (its documented test mode): containers get their device list in their environment and labels, without isolation, and say so (GPU_ISOLATION=none).",
    }),
  }),
});

const PortMappingInput = builder.inputType("PortMappingInput", {
  description: "A port of the container and the external port it is published on.",
  fields: (t) => ({
    containerPort: t.int({ required: true, description: "The port inside the container." }),
    protocol: t.string({ required: true, description: "The transport: tcp or udp." }),
    hostPort: t.int({ required: true, description: "The external port on the machine." }),
  }),
});

const MachineMetrics = builder
  .objectRef<{
    gpuUtilization?: number[];
    gpuTemperatureC?: number[];
    gpuMemoryUsedMb?: number[];
    cpuLoad?: number;
    diskFreeGb?: number;
    containerGpus?: boolean;
    gpulessTestMode?: boolean;
  }>(
    "MachineMetrics",
  )
  .implement({
    description: "What the agent reported with its last heartbeat; per-GPU lists are in GPU order. Host only.",
    fields: (t) => ({
      gpuUtilization: t.floatList({ nullable: true, description: "GPU utilization, percent.", resolve: (m) => m.gpuUtilization ?? null }),
      gpuTemperatureC: t.floatList({ nullable: true, description: "GPU temperature, degrees Celsius.", resolve: (m) => m.gpuTemperatureC ?? null }),
      gpuMemoryUsedMb: t.intList({ nullable: true, description: "VRAM in use, MB.", resolve: (m) => m.gpuMemoryUsedMb ?? null }),
      cpuLoad: t.float({ nullable: true, description: "1-minute load average.", resolve: (m) => m.cpuLoad ?? null }),
      diskFreeGb: t.float({ nullable: true, description: "Free disk, GB.", resolve: (m) => m.diskFreeGb ?? null }),
      containerGpus: t.boolean({
        nullable: true,
        description: "Whether the container engine can hand GPUs to containers.",
        resolve: (m) => m.containerGpus ?? null,
      }),
      gpulessTestMode: t.boolean({
        nullable: true,
        description: "The agent runs GPU rentals without GPU isolation (its test mode).",
        resolve: (m) => m.gpulessTestMode ?? null,
      }),
    }),
  });

builder.prismaObjectFields("Machine", (t) => ({
  lastHeartbeatAt: t.expose("lastHeartbeatAt", {
    type: "DateTime",
    nullable: true,
    description: "The agent's last heartbeat; null until its agent first connects.",
  }),
  metrics: t.field({
    type: MachineMetrics,
    nullable: true,
    description: "What the agent reported with its last heartbeat.",
    select: { metrics: true },
    resolve: (machine) => machine.metrics as never,
  }),
}));

builder.mutationField("reportInstanceState", (t) =>
  t.withAuth({ agent: true }).field({
    type: InstanceRef,
    description:
      "The agent's report of a container's state (MACHINE key of the instance's machine). LOADING becomes RUNNING only through a RUNNING report; a repeated report changes nothing.",
    errors: { types: [IllegalTransitionError] },
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      status: t.arg({ type: ReportedInstanceState, required: true, description: "What became of the container." }),
      message: t.arg.string({ description: "Why, for its owner, such as the pull error." }),
      ports: t.arg({ type: [PortMappingInput], description: "The container's actual port mappings, once it runs." }),
      failureCause: t.arg({
        type: LaunchFailureCause,
        description:
          "FAILED only: what the agent found caused it. The API checks the claim (a pull refusal against the image having run, within a daily bound; a missing GPU runtime against the machine's heartbeat) before sparing the machine's reliability.",
      }),
    },
    resolve: (_root, args, ctx) =>
      reportInstanceState(ctx.viewer.machineId, {
        instanceId: localId(args.instanceId, "Instance", "instanceId"),
        status: args.status,
        message: args.message,
        ports: args.ports as { containerPort: number; protocol: "tcp" | "udp"; hostPort: number }[] | null | undefined,
        failureCause: args.failureCause,
      }),
  }),
);

builder.mutationField("machineHeartbeat", (t) =>
  // A plain field over the updated row: agents select only __typename, and a planned Prisma query
  // for that would be an empty select, which Prisma refuses.
  t.withAuth({ agent: true }).field({
    type: MachineRef,
    description: `Liveness and metrics from the machine's agent (its MACHINE key). Without a heartbeat for MACHINE_OFFLINE_AFTER_SECONDS the machine goes offline; the next one brings it back.`,
    errors: {},
    args: {
      machineId: t.arg.globalID({ required: true, description: "The agent's own machine." }),
      metrics: t.arg({ type: MachineMetricsInput, description: "What the agent measured now." }),
      publicAddress: t.arg.string({ description: "The address the agent sees itself at; renters connect to it unless the host declared one." }),
    },
    resolve: (_root, args, ctx) =>
      machineHeartbeat(agentMachine(ctx.viewer, localId(args.machineId, "Machine", "machineId")), args.metrics, undefined, args.publicAddress),
  }),
);

const UsageReportRef = builder.objectRef<UsageCharge>("UsageReport").implement({
  description: "What a usage report added: the bytes above the highest counters seen before, and their charge.",
  fields: (t) => ({
    rxBytes: t.string({ description: "Bytes received since the last counted report, as a decimal string.", resolve: (usage) => usage.rxBytes.toString() }),
    txBytes: t.string({ description: "Bytes sent since the last counted report, as a decimal string.", resolve: (usage) => usage.txBytes.toString() }),
    charged: t.field({ type: "Money", description: "Dollars charged for them.", resolve: (usage) => usage.chargedMicros }),
  }),
});

builder.mutationField("reportUsage", (t) =>
  t.withAuth({ agent: true }).field({
    type: UsageReportRef,
    description:
      "The container's bandwidth counters since it started, as decimal strings (MACHINE key of the instance's machine). Only growth is charged, so a repeated report never double counts.",
    errors: {},
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      rxBytes: t.arg.string({ required: true, description: "Bytes received." }),
      txBytes: t.arg.string({ required: true, description: "Bytes sent." }),
    },
    resolve: (_root, args, ctx) =>
      reportUsage(ctx.viewer.machineId, {
        instanceId: localId(args.instanceId, "Instance", "instanceId"),
        rxBytes: args.rxBytes,
        txBytes: args.txBytes,
      }),
  }),
);

builder.mutationField("issueContainerApiKey", (t) =>
  t.withAuth({ agent: true }).field({
    type: IssuedApiKeyRef,
    description:
      "A fresh INSTANCE-scoped key for the container's environment (CONTAINER_API_KEY), revoking the previous one. MACHINE key of the instance's machine only.",
    errors: {},
    args: { instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }) },
    resolve: async (_root, args, ctx) =>
      (await issueContainerApiKey(ctx.viewer.machineId, localId(args.instanceId, "Instance", "instanceId"))).apiKey,
  }),
);
