import { vi } from "vitest";
import { EventEmitter, on } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { GraphQLError } from "graphql";
import { createSchema, createYoga } from "graphql-yoga";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import type { Assignment } from "../../agent/api.ts";

/**
 * A stand-in for the API's side of the realtime contract (/tmp/realtime-contract.md, issue 5), for
 * testing the agent while the real server is built: the same SDL shapes, in-memory state, graphql-ws
 * closing with 4403 on a bad key. Survives restarts on the same port (state is kept).
 */

const typeDefs = /* GraphQL */ `
  type Query { ok: Boolean }
  enum AssignmentState { RUNNING STOPPED }
  enum LaunchMode { SSH JUPYTER ENTRYPOINT }
  enum ReportedInstanceState { RUNNING EXITED STOPPED FAILED }
  enum LaunchFailureCause { IMAGE_UNAVAILABLE NO_GPU_RUNTIME }
  type EnvVar { key: String! value: String! }
  type RegistryAuth { registry: String! username: String! password: String! }
  type AssignedPort { containerPort: Int! protocol: String! hostPort: Int }
  input PortMappingInput { containerPort: Int! protocol: String! hostPort: Int! }
  type Assignment {
    instanceId: ID!
    containerLabel: String!
    desiredState: AssignmentState!
    image: String!
    launchMode: LaunchMode!
    onstart: String
    env: [EnvVar!]!
    ports: [String!]!
    portMappings: [AssignedPort!]!
    sshKeys: [String!]!
    jupyterToken: String
    jupyterBasePath: String!
    args: [String!]!
    registryAuth: RegistryAuth
    rebootCount: Int!
    recycleCount: Int!
    diskGb: Int!
    numGpus: Int!
    gpuIndices: [Int!]!
    cpuCores: Float!
    memoryMb: Int!
    preemptGraceSeconds: Int!
    statusMessage: String
  }
  type MachineAssignments { machineId: ID! revision: String! instances: [Assignment!]! selfTests: [ID!]! }
  type LogRequest { requestId: String! instanceId: ID! containerLabel: String! tail: Int! follow: Boolean! leaseSeconds: Int! }
  type Subscription { assignments(machineId: ID!): MachineAssignments! logRequests(machineId: ID!): LogRequest! }

  interface Error { code: String! message: String! }
  type NotFoundError implements Error { code: String! message: String! }
  type Instance { id: ID! }
  type Machine { id: ID! }
  type Usage { rxBytes: String! txBytes: String! }
  type IssuedContainerKey { token: String! }
  type MutationReportInstanceStateSuccess { data: Instance! }
  union MutationReportInstanceStateResult = MutationReportInstanceStateSuccess | NotFoundError
  type MutationMachineHeartbeatSuccess { data: Machine! }
  union MutationMachineHeartbeatResult = MutationMachineHeartbeatSuccess | NotFoundError
  type MutationReportUsageSuccess { data: Usage! }
  union MutationReportUsageResult = MutationReportUsageSuccess | NotFoundError
  type MutationIssueContainerApiKeySuccess { data: IssuedContainerKey! }
  union MutationIssueContainerApiKeyResult = MutationIssueContainerApiKeySuccess | NotFoundError
  input MachineMetricsInput {
    gpuUtilization: [Float!]
    gpuTemperatureC: [Float!]
    gpuMemoryUsedMb: [Int!]
    cpuLoad: Float
    diskFreeGb: Float
    containerGpus: Boolean
    gpulessTestMode: Boolean
  }
  type Mutation {
    reportInstanceState(
      instanceId: ID!
      status: ReportedInstanceState!
      message: String
      ports: [PortMappingInput!]
      failureCause: LaunchFailureCause
    ): MutationReportInstanceStateResult!
    machineHeartbeat(machineId: ID!, metrics: MachineMetricsInput, publicAddress: String): MutationMachineHeartbeatResult!
    reportUsage(instanceId: ID!, rxBytes: String!, txBytes: String!): MutationReportUsageResult!
    issueContainerApiKey(instanceId: ID!): MutationIssueContainerApiKeyResult!
  }
`;

export interface Report {
  instanceId: string;
  status: string;
  message: string | null;
  at: number;
}

export interface FakeApi {
  url: string;
  machineId: string;
  key: string;
  reports: Report[];
  heartbeats: { machineId: string; metrics: Record<string, unknown> | null; at: number }[];
  usage: { instanceId: string; rxBytes: string; txBytes: string }[];
  /** The last key issued per instance id. */
  issuedKeys: Map<string, string>;
  /** How many assignments subscriptions were made (re-subscribes count). */
  subscriptions: number;
  /** Instance ids issueContainerApiKey was called for, in order (before it answers). */
  issueRequests: string[];
  /** Awaited before issueContainerApiKey answers: a test can hold a launch half-way. */
  beforeIssue: (instanceId: string) => Promise<void>;
  /** Replaces the desired state: a new revision, published to subscribers. */
  setInstances(instances: Assignment[]): void;
  /** Publishes a state as is (e.g. a stale revision) without changing the current one. */
  publish(revision: bigint, instances: Assignment[]): void;
  /** Drops every socket and stops listening (the "server died" fault). */
  kill(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  waitFor<T>(check: () => T | undefined | false, timeoutMs?: number): Promise<T>;
}

export function assignment(id: number, overrides: Partial<Assignment> = {}): Assignment {
  return {
    instanceId: `Instance:${id}`,
    containerLabel: `C.${id}`,
    desiredState: "RUNNING",
    image: "demo/image:latest",
    launchMode: "ENTRYPOINT",
    onstart: null,
    env: [],
    ports: [],
    portMappings: [],
    sshKeys: [],
    jupyterToken: null,
    jupyterBasePath: `/jupyter/${id}/`,
    args: [],
    rebootCount: 0,
    recycleCount: 0,
    diskGb: 10,
    numGpus: 1,
    gpuIndices: [],
    cpuCores: 4,
    memoryMb: 16_000,
    preemptGraceSeconds: 1,
    statusMessage: null,
    ...overrides,
  };
}

export async function startFakeApi(options: { machineId?: string; key?: string } = {}): Promise<FakeApi> {
  const machineId = options.machineId ?? "Machine:12";
  const key = options.key ?? "machine-key";
  const changes = new EventEmitter();
  let revision = 1n;
  let instances: Assignment[] = [];
  const state = () => ({ machineId, revision: String(revision), instances, selfTests: [] });

  const authorized = (authorization: unknown) => authorization === `Bearer ${key}`;
  const notFound = (what: string) => ({ __typename: "NotFoundError", code: "NOT_FOUND", message: `${what} not found` });
  const known = (instanceId: string) => instances.some((i) => i.instanceId === instanceId);

  const schema = createSchema({
    typeDefs,
    resolvers: {
      Subscription: {
        assignments: {
          subscribe: async function* (_: unknown, args: { machineId: string }) {
            if (args.machineId !== machineId) throw new GraphQLError("Machine not found", { extensions: { code: "NOT_FOUND" } });
            fake.subscriptions++;
            const abort = new AbortController();
            const events = on(changes, "state", { signal: abort.signal }); // listening before the first yield: nothing lost
            try {
              yield state();
              for await (const [published] of events) yield published;
            } finally {
              abort.abort();
            }
          },
          resolve: (payload: unknown) => payload,
        },
        // None are sent: subscribed only as the real API is.
        logRequests: {
          subscribe: async function* () {
            const abort = new AbortController();
            try {
              for await (const [request] of on(changes, "logRequest", { signal: abort.signal })) yield request;
            } finally {
              abort.abort();
            }
          },
          resolve: (payload: unknown) => payload,
        },
      },
      Mutation: {
        reportInstanceState: (_: unknown, args: { instanceId: string; status: string; message?: string | null }) => {
          fake.reports.push({ instanceId: args.instanceId, status: args.status, message: args.message ?? null, at: Date.now() });
          return known(args.instanceId) ? { __typename: "MutationReportInstanceStateSuccess", data: { id: args.instanceId } } : notFound("Instance");
        },
        machineHeartbeat: (_: unknown, args: { machineId: string; metrics: Record<string, unknown> | null }) => {
          fake.heartbeats.push({ machineId: args.machineId, metrics: args.metrics, at: Date.now() });
          return args.machineId === machineId ? { __typename: "MutationMachineHeartbeatSuccess", data: { id: machineId } } : notFound("Machine");
        },
        reportUsage: (_: unknown, args: { instanceId: string; rxBytes: string; txBytes: string }) => {
          fake.usage.push(args);
          return { __typename: "MutationReportUsageSuccess", data: args };
        },
        issueContainerApiKey: async (_: unknown, args: { instanceId: string }) => {
          fake.issueRequests.push(args.instanceId);
          await fake.beforeIssue(args.instanceId);
          if (!known(args.instanceId)) return notFound("Instance");
          const token = `instance-key-${args.instanceId}-${Math.random().toString(36).slice(2)}`;
          fake.issuedKeys.set(args.instanceId, token);
          return { __typename: "MutationIssueContainerApiKeySuccess", data: { token } };
        },
      },
    },
  });

  const yoga = createYoga({
    schema,
    logging: false,
    maskedErrors: false,
    context: ({ request }) => {
      if (!authorized(request.headers.get("authorization"))) {
        throw new GraphQLError("The API key is unknown, revoked or expired", { extensions: { code: "UNAUTHENTICATED", http: { status: 401 } } });
      }
      return {};
    },
  });

  let server: Server;
  let wsServer: WebSocketServer;
  let port = 0;
  const listen = async () => {
    server = createServer(yoga);
    wsServer = new WebSocketServer({ server, path: "/graphql" });
    // onConnect false: graphql-ws closes the socket with 4403 Forbidden.
    useServer({ schema, onConnect: (ctx) => authorized(ctx.connectionParams?.authorization) }, wsServer);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  };
  await listen();

  const fake: FakeApi = {
    url: `http://127.0.0.1:${port}/graphql`,
    machineId,
    key,
    reports: [],
    heartbeats: [],
    usage: [],
    issuedKeys: new Map(),
    subscriptions: 0,
    issueRequests: [],
    beforeIssue: async () => {},
    setInstances(next) {
      instances = next;
      revision++;
      changes.emit("state", state());
    },
    publish(at, published) {
      changes.emit("state", { machineId, revision: String(at), instances: published, selfTests: [] });
    },
    async kill() {
      for (const client of wsServer.clients) client.terminate();
      wsServer.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    restart: listen,
    waitFor(check, timeoutMs = 10_000) {
      return vi.waitFor(
        () => {
          const value = check();
          if (value === undefined || value === false) throw new Error(`not met within ${timeoutMs}ms`);
          return value;
        },
        { timeout: timeoutMs, interval: 25 },
      );
    },
  };
  return fake;
}
