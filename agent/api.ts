import { z } from "zod";
import type { LaunchFailureCause } from "./runtime.ts";

/**
 * The agent's side of the realtime contract (issue 5): the documents it sends and the shape it
 * expects back. Everything the API sends is parsed here, so the rest of the agent works on checked data.
 */

export const ASSIGNMENTS_SUBSCRIPTION = /* GraphQL */ `
  subscription Assignments($machineId: ID!) {
    assignments(machineId: $machineId) {
      machineId
      revision
      instances {
        instanceId
        containerLabel
        desiredState
        image
        launchMode
        onstart
        env { key value }
        ports
        portMappings { containerPort protocol hostPort }
        sshKeys
        jupyterToken
        jupyterBasePath
        args
        registryAuth { registry username password }
        rebootCount
        recycleCount
        diskGb
        numGpus
        gpuIndices
        cpuCores
        memoryMb
        preemptGraceSeconds
        statusMessage
      }
      selfTests
    }
  }
`;

export const LOG_REQUESTS_SUBSCRIPTION = /* GraphQL */ `
  subscription LogRequests($machineId: ID!) {
    logRequests(machineId: $machineId) { requestId instanceId containerLabel tail follow leaseSeconds }
  }
`;

export const logRequestSchema = z.object({
  requestId: z.string().min(1),
  instanceId: z.string().min(1),
  containerLabel: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "a container label such as C.34"),
  tail: z.number().int().nonnegative(),
  follow: z.boolean(),
  leaseSeconds: z.number().int().positive(),
});
export type LogRequest = z.infer<typeof logRequestSchema>;

const assignmentSchema = z.object({
  instanceId: z.string().min(1),
  containerLabel: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "a container label such as C.34"),
  desiredState: z.enum(["RUNNING", "STOPPED"]),
  image: z.string(),
  launchMode: z.enum(["SSH", "JUPYTER", "ENTRYPOINT"]),
  onstart: z.string().nullable(),
  env: z.array(z.object({ key: z.string().min(1), value: z.string() })),
  ports: z.array(z.string()),
  portMappings: z.array(
    z.object({ containerPort: z.number().int().positive(), protocol: z.enum(["tcp", "udp"]), hostPort: z.number().int().min(1).max(65_535).nullable() }),
  ),
  sshKeys: z.array(z.string()),
  jupyterToken: z.string().nullable(),
  jupyterBasePath: z.string().regex(/^\/[A-Za-z0-9/_-]*$/, "a URL path"),
  args: z.array(z.string()),
  registryAuth: z.object({ registry: z.string().min(1), username: z.string().min(1), password: z.string().min(1) }).nullable().optional(),
  rebootCount: z.number().int().nonnegative(),
  recycleCount: z.number().int().nonnegative(),
  diskGb: z.number().int().nonnegative(),
  numGpus: z.number().int().nonnegative(),
  gpuIndices: z.array(z.number().int().nonnegative()),
  cpuCores: z.number().nonnegative(),
  memoryMb: z.number().int().nonnegative(),
  preemptGraceSeconds: z.number().int().nonnegative(),
  statusMessage: z.string().nullable().optional(),
});
export type Assignment = z.infer<typeof assignmentSchema>;

export const machineAssignmentsSchema = z.object({
  machineId: z.string(),
  revision: z.string().regex(/^\d+$/, "a decimal bigint"),
  instances: z.array(assignmentSchema),
  selfTests: z.array(z.string().min(1)).default([]),
});
export type MachineAssignments = z.infer<typeof machineAssignmentsSchema>;

export type ReportedInstanceState = "RUNNING" | "EXITED" | "STOPPED" | "FAILED";

export interface ReportDetails {
  message?: string;
  /** RUNNING: the container's port mappings. */
  ports?: { containerPort: number; protocol: "tcp" | "udp"; hostPort: number }[];
  /** FAILED: what the agent found caused it (the API checks the claim). */
  failureCause?: LaunchFailureCause;
}

export interface MachineMetrics {
  gpuUtilization?: number[];
  gpuTemperatureC?: number[];
  gpuMemoryUsedMb?: number[];
  cpuLoad?: number;
  diskFreeGb?: number;
  /** Whether the container engine can hand out GPUs. */
  containerGpus?: boolean;
  /** It cannot, and the agent runs GPU rentals anyway, without isolation (--allow-gpuless). */
  gpulessTestMode?: boolean;
}

export interface SelfTestCheckReport {
  name: "GPU_VISIBLE" | "CUDA" | "DISK_WRITE" | "DISK_READ" | "NETWORK_DOWN" | "NETWORK_UP" | "CONTAINER_START";
  passed: boolean;
  value: number | null;
  unit: string | null;
  message: string;
}

/** The API refused the key: retrying cannot help, so the agent stops. */
export class AuthRejectedError extends Error {
  constructor(detail: string) {
    super(`The API rejected the agent's key (${detail}); check --key / AGENT_API_KEY and --machine`);
    this.name = "AuthRejectedError";
  }
}

/** The API could not be reached or answered garbage: worth retrying later, not a verdict on the request. */
export class TransientApiError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "TransientApiError";
  }
}

/** A mutation's typed error (a member of its result union): delivered, but refused. */
export interface RefusedResult {
  code: string;
  message: string;
}

/** Top-level error codes that say "later", not "no". */
const TRANSIENT_CODES = new Set(["INTERNAL_SERVER_ERROR", "RATE_LIMITED"]);
const ERROR_FIELDS = "... on Error { code message }";

/** GraphQL over HTTP for the agent's mutations; the subscription goes over graphql-ws (connection.ts). */
export class AgentApi {
  constructor(
    readonly url: string,
    private readonly key: string,
  ) {}

  /** Throws on transport failures and top-level errors (callers retry on their next pass). */
  async request<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.key}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(15_000),
    }).catch((error: unknown) => {
      throw new TransientApiError(`The API at ${this.url} did not answer: ${(error as Error).message}`, { cause: error });
    });
    if (response.status === 401 || response.status === 403) throw new AuthRejectedError(`HTTP ${response.status}`);
    if (response.status >= 500) throw new TransientApiError(`The API answered HTTP ${response.status}`);
    const body = (await response.json().catch(() => null)) as {
      data?: T;
      errors?: { message: string; extensions?: { code?: string } }[];
    } | null;
    if (!body) throw new TransientApiError(`The API answered HTTP ${response.status} without a GraphQL body`);
    const first = body.errors?.[0];
    if (first) {
      const code = first.extensions?.code ?? "";
      if (code === "UNAUTHENTICATED") throw new AuthRejectedError(first.message);
      if (TRANSIENT_CODES.has(code)) throw new TransientApiError(`GraphQL error: ${first.message}`);
      throw new Error(`GraphQL error: ${first.message}`);
    }
    if (!body.data) throw new Error("The API answered without data");
    return body.data;
  }

  /** Runs a mutation whose result is a union; a member implementing Error is the typed refusal. */
  private async mutate(field: string, query: string, variables: Record<string, unknown>) {
    const data = await this.request<Record<string, { code?: string; message?: string; data?: unknown }>>(query, variables);
    const result = data[field]!;
    const refused: RefusedResult | null =
      result.code === undefined ? null : { code: result.code, message: result.message ?? "" };
    return { refused, data: result.data };
  }

  /** null when the API accepted the report, else its typed refusal. */
  async reportInstanceState(instanceId: string, status: ReportedInstanceState, details: ReportDetails = {}) {
    const { refused } = await this.mutate(
      "reportInstanceState",
      `mutation ($instanceId: ID!, $status: ReportedInstanceState!, $message: String, $ports: [PortMappingInput!], $failureCause: LaunchFailureCause) {
        reportInstanceState(instanceId: $instanceId, status: $status, message: $message, ports: $ports, failureCause: $failureCause) {
          __typename ${ERROR_FIELDS}
        }
      }`,
      { instanceId, status, message: details.message ?? null, ports: details.ports ?? null, failureCause: details.failureCause ?? null },
    );
    return refused;
  }

  async machineHeartbeat(machineId: string, metrics: MachineMetrics, publicAddress: string | null) {
    const { refused } = await this.mutate(
      "machineHeartbeat",
      `mutation ($machineId: ID!, $metrics: MachineMetricsInput, $publicAddress: String) {
        machineHeartbeat(machineId: $machineId, metrics: $metrics, publicAddress: $publicAddress) { __typename ${ERROR_FIELDS} }
      }`,
      { machineId, metrics, publicAddress },
    );
    return refused;
  }

  async reportUsage(instanceId: string, rxBytes: bigint, txBytes: bigint) {
    const { refused } = await this.mutate(
      "reportUsage",
      `mutation ($instanceId: ID!, $rxBytes: String!, $txBytes: String!) {
        reportUsage(instanceId: $instanceId, rxBytes: $rxBytes, txBytes: $txBytes) { __typename ${ERROR_FIELDS} }
      }`,
      { instanceId, rxBytes: rxBytes.toString(), txBytes: txBytes.toString() },
    );
    return refused;
  }

  /** Lines answering a log request; the typed refusal (an expired request) or null. */
  async uploadInstanceLogs(instanceId: string, requestId: string, lines: string[]) {
    const { refused } = await this.mutate(
      "uploadInstanceLogs",
      `mutation ($instanceId: ID!, $requestId: String!, $lines: [String!]!) {
        uploadInstanceLogs(instanceId: $instanceId, requestId: $requestId, lines: $lines) { __typename ${ERROR_FIELDS} }
      }`,
      { instanceId, requestId, lines },
    );
    return refused;
  }

  /** A self-test's checks; the typed refusal (already reported, unknown test) or null. */
  async reportSelfTest(selfTestId: string, checks: SelfTestCheckReport[]) {
    const { refused } = await this.mutate(
      "reportSelfTest",
      `mutation ($selfTestId: ID!, $checks: [SelfTestCheckInput!]!) {
        reportSelfTest(selfTestId: $selfTestId, checks: $checks) { __typename ${ERROR_FIELDS} }
      }`,
      { selfTestId, checks },
    );
    return refused;
  }

  /** The container's instance-scoped key; throws when the API refuses (the launch then fails). */
  async issueContainerApiKey(instanceId: string): Promise<string> {
    const { refused, data } = await this.mutate(
      "issueContainerApiKey",
      `mutation ($instanceId: ID!) {
        issueContainerApiKey(instanceId: $instanceId) {
          __typename
          ... on MutationIssueContainerApiKeySuccess { data { token } }
          ${ERROR_FIELDS}
        }
      }`,
      { instanceId },
    );
    if (refused) throw new Error(`issueContainerApiKey refused: ${refused.message}`);
    const token = (data as { token?: unknown } | undefined)?.token;
    if (typeof token !== "string") throw new Error("issueContainerApiKey returned no token");
    return token;
  }

  /** Registers this host's machine (the key is the host's account key); the refusal is returned, not thrown. */
  async registerMachine(input: Record<string, unknown>) {
    return this.mutate(
      "registerMachine",
      `mutation ($input: RegisterMachineInput!) {
        registerMachine(input: $input) {
          __typename
          ... on MutationRegisterMachineSuccess { data { machine { id } apiKey { token } } }
          ${ERROR_FIELDS}
        }
      }`,
      { input },
    ) as Promise<{ refused: RefusedResult | null; data?: { machine: { id: string }; apiKey: { token: string } } }>;
  }

  /** Lists (or relists) a machine at the given prices (the host's account key). */
  async listMachine(input: Record<string, unknown>) {
    return this.mutate(
      "listMachine",
      `mutation ($input: ListMachineInput!) {
        listMachine(input: $input) {
          __typename
          ... on MutationListMachineSuccess { data { id endDate } }
          ${ERROR_FIELDS}
        }
      }`,
      { input },
    ) as Promise<{ refused: RefusedResult | null; data?: { id: string; endDate: string } }>;
  }

  /** Reports the machine's re-checked specs; null when accepted, else the typed refusal. */
  async updateMachine(input: Record<string, unknown>): Promise<RefusedResult | null> {
    const { refused } = await this.mutate(
      "updateMachine",
      `mutation ($input: UpdateMachineInput!) {
        updateMachine(input: $input) { __typename ${ERROR_FIELDS} }
      }`,
      { input },
    );
    return refused;
  }
}
