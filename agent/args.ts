import { parseArgs } from "node:util";
import { z } from "zod";

export const USAGE = `Usage: npm run agent -- --api URL --key KEY --machine Machine:12 [options]

  --api URL                 the API's GraphQL endpoint (env AGENT_API_URL), e.g. http://127.0.0.1:4000/graphql
  --key KEY                 the machine's API key from registerMachine (env AGENT_API_KEY)
  --machine ID              the machine, "Machine:12" or 12 (env AGENT_MACHINE_ID)
  --runtime docker|process  default: docker when a docker engine answers, else process (env AGENT_RUNTIME)
  --heartbeat-seconds N     heartbeat and usage interval (default 15; env AGENT_HEARTBEAT_SECONDS)
  --poll-seconds N          how often containers are checked for having ended (default 5)
  --state-dir DIR           the agent's state (default ~/.gpu-agent/machine-<id>; env AGENT_STATE_DIR)
  --container-api-url URL   API_URL inside containers (default: --api)
  --backoff-max-seconds N   cap of the reconnect backoff (default 30)
  --allow-gpuless           GPU-less test mode (env AGENT_ALLOW_GPULESS=1): run GPU rentals on an engine that
                            cannot hand out GPUs, without isolation (device list in the container's env and
                            labels, GPU_ISOLATION=none); without it they are refused and the API stops
                            offering the machine. For tests and demos only.
  --public-address ADDR     the address renters connect to (env AGENT_PUBLIC_ADDRESS; default: the address
                            this host reaches the API from); the host's setMachineNetwork address wins
  --recheck-minutes N       how often the hardware is measured again and changes reported (default 60; 0: never);
                            only for machines registered with \`register\`
  --speed-test-mb N         MB written to disk and sent each way over the network by a re-check (default 32)
  --help

With --state-dir of a machine registered by \`npm run agent -- register\`, --api, --key, --machine and
--public-address come from the state directory.

Usage: npm run agent -- register --help   measure this machine, register and list it`;

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);

const argsSchema = z.object({
  api: z.url({ protocol: /^https?$/, error: "--api must be an http(s) URL such as http://127.0.0.1:4000/graphql" }),
  key: z.string({ error: "--key (or AGENT_API_KEY) is required" }).min(1, "--key must not be empty"),
  machine: z
    .string({ error: "--machine (or AGENT_MACHINE_ID) is required, e.g. Machine:12" })
    .regex(/^(Machine:)?\d+$/, "--machine must be a machine id such as Machine:12")
    .transform((id) => (id.startsWith("Machine:") ? id : `Machine:${id}`)),
  runtime: z.enum(["docker", "process"]).optional(),
  heartbeatSeconds: seconds(15),
  pollSeconds: seconds(5),
  backoffMaxSeconds: seconds(30),
  stateDir: z.string().optional(),
  containerApiUrl: z.url().optional(),
  publicAddress: z.string().min(1).optional(),
  recheckMinutes: z.coerce.number().nonnegative().default(60),
  speedTestMb: z.coerce.number().int().positive().default(32),
  allowGpuless: z.boolean(),
});
export type AgentArgs = z.infer<typeof argsSchema>;

/** The command line, falling back to AGENT_* environment variables; throws a readable message. */
export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv): AgentArgs | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      api: { type: "string" },
      key: { type: "string" },
      machine: { type: "string" },
      "machine-id": { type: "string" },
      runtime: { type: "string" },
      "heartbeat-seconds": { type: "string" },
      "poll-seconds": { type: "string" },
      "backoff-max-seconds": { type: "string" },
      "state-dir": { type: "string" },
      "container-api-url": { type: "string" },
      "public-address": { type: "string" },
      "recheck-minutes": { type: "string" },
      "speed-test-mb": { type: "string" },
      "allow-gpuless": { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return "help";
  const parsed = argsSchema.safeParse({
    api: values.api ?? env.AGENT_API_URL,
    key: values.key ?? env.AGENT_API_KEY,
    machine: values.machine ?? values["machine-id"] ?? env.AGENT_MACHINE_ID,
    runtime: values.runtime ?? env.AGENT_RUNTIME,
    heartbeatSeconds: values["heartbeat-seconds"] ?? env.AGENT_HEARTBEAT_SECONDS,
    pollSeconds: values["poll-seconds"],
    backoffMaxSeconds: values["backoff-max-seconds"],
    stateDir: values["state-dir"] ?? env.AGENT_STATE_DIR,
    containerApiUrl: values["container-api-url"],
    publicAddress: values["public-address"] ?? env.AGENT_PUBLIC_ADDRESS,
    recheckMinutes: values["recheck-minutes"],
    speedTestMb: values["speed-test-mb"],
    allowGpuless: values["allow-gpuless"] ?? ["1", "true", "yes"].includes((env.AGENT_ALLOW_GPULESS ?? "").toLowerCase()),
  });
  if (!parsed.success) {
    const flag = (path: PropertyKey[]) => `--${String(path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new Error(
      parsed.error.issues
        .map((issue) => (issue.message.startsWith("--") ? issue.message : `${flag(issue.path)}: ${issue.message}`))
        .join("\n"),
    );
  }
  return parsed.data;
}
