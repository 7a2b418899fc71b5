import {
  FOLLOW_LEASE_SECONDS,
  followInstanceLogs,
  instanceLogs,
  LogsUnavailableError,
  MAX_LOG_BYTES,
  MAX_TAIL_LINES,
  uploadInstanceLogs,
} from "../domain/instances/logs.ts";
import { containerLabel } from "../domain/instances/service.ts";
import { agentMachine } from "../domain/authorization.ts";
import { eventStream, flatMapStream, type LogRequest } from "../infra/pubsub.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";
import { ownerOrOwnKey } from "./instance.ts";

builder.objectType(LogsUnavailableError, {
  name: "LogsUnavailableError",
  interfaces: [ErrorInterface],
  description: "The machine's agent did not answer in time (offline, or the container is gone).",
});

const InstanceLogsRef = builder.objectRef<{ instanceId: number; lines: string[] }>("InstanceLogs").implement({
  description: "Lines of a container's stdout and stderr, oldest first.",
  fields: (t) => ({
    instanceId: t.globalID({ description: "The instance.", resolve: (logs) => ({ type: "Instance", id: logs.instanceId }) }),
    lines: t.exposeStringList("lines", { description: "The lines, without their line breaks." }),
  }),
});

const TAIL_DESCRIPTION = `Lines from the end, 1 to ${MAX_TAIL_LINES} (at most ${MAX_LOG_BYTES / 1_000_000} MB in all).`;

builder.queryField("instanceLogs", (t) =>
  t.withAuth(ownerOrOwnKey("READ", "instanceId")).field({
    type: InstanceLogsRef,
    description:
      "The last lines of the container's stdout and stderr, read from the host by its agent now. The owner's keys and the instance's own key only; LogsUnavailableError when the agent does not answer.",
    errors: { types: [LogsUnavailableError] },
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      tail: t.arg.int({ defaultValue: 100, description: TAIL_DESCRIPTION }),
    },
    resolve: async (_root, args, ctx) => {
      const instanceId = localId(args.instanceId, "Instance", "instanceId");
      return { instanceId, lines: await instanceLogs(ctx.viewer.userId, instanceId, args.tail ?? 100) };
    },
  }),
);

builder.subscriptionField("instanceLogs", (t) =>
  t.withAuth(ownerOrOwnKey("READ", "instanceId")).field({
    type: InstanceLogsRef,
    description:
      "Follows the container's stdout and stderr: the last `tail` lines first, then new lines in batches as they are written, while subscribed. The owner's keys and the instance's own key only.",
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      tail: t.arg.int({ defaultValue: 100, description: `${TAIL_DESCRIPTION} 0 sends only new lines.` }),
    },
    subscribe: (_root, args, ctx) => followInstanceLogs(ctx.viewer.userId, localId(args.instanceId, "Instance", "instanceId"), args.tail ?? 100),
    resolve: (lines: string[], args) => ({ instanceId: localId(args.instanceId, "Instance", "instanceId"), lines }),
  }),
);

const LogRequestRef = builder.objectRef<LogRequest>("LogRequest").implement({
  description: "The API asks the agent for an instance's logs; the agent answers with uploadInstanceLogs.",
  fields: (t) => ({
    requestId: t.exposeString("requestId", { description: "To pass back to uploadInstanceLogs." }),
    instanceId: t.globalID({ description: "The instance whose logs are asked for.", resolve: (request) => ({ type: "Instance", id: request.instanceId }) }),
    containerLabel: t.string({ description: "Its container's name.", resolve: (request) => containerLabel(request.instanceId) }),
    tail: t.exposeInt("tail", { description: "Lines from the end to upload first; 0 for none." }),
    follow: t.exposeBoolean("follow", { description: "Then upload new lines as they come, until the lease lapses." }),
    leaseSeconds: t.int({
      description: "A follow ends this long after the request was last received; the API repeats it while someone reads.",
      resolve: () => FOLLOW_LEASE_SECONDS,
    }),
  }),
});

builder.subscriptionField("logRequests", (t) =>
  t.withAuth({ agent: true }).field({
    type: LogRequestRef,
    description: "For the machine's agent (its MACHINE key): requests for its instances' logs, as they are made.",
    args: { machineId: t.arg.globalID({ required: true, description: "The agent's own machine." }) },
    subscribe: (_root, args, ctx) => {
      const machineId = agentMachine(ctx.viewer, localId(args.machineId, "Machine", "machineId"));
      // Every request counts, so none is merged away; the first item only says the channel is listening.
      const stream = eventStream("logRequests", machineId, { merge: (a, b) => ({ requests: [...a.requests, ...b.requests] }) });
      return flatMapStream(stream, async (event) => event?.requests ?? []);
    },
    resolve: (request: LogRequest) => request,
  }),
);

builder.mutationField("uploadInstanceLogs", (t) =>
  t.withAuth({ agent: true }).field({
    type: "Int",
    description: `The agent's answer to a LogRequest: lines of the container's output, at most ${MAX_TAIL_LINES} and ${MAX_LOG_BYTES} bytes an upload. Returns how many were taken.`,
    errors: {},
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      requestId: t.arg.string({ required: true, description: "The LogRequest's requestId." }),
      lines: t.arg.stringList({ required: true, description: "Log lines, oldest first, without their line breaks." }),
    },
    resolve: (_root, args, ctx) =>
      uploadInstanceLogs(ctx.viewer.machineId, {
        instanceId: localId(args.instanceId, "Instance", "instanceId"),
        requestId: args.requestId,
        lines: args.lines,
      }),
  }),
);
