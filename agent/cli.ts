import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { startAgent } from "./agent.ts";
import { type AgentArgs, parseAgentArgs, USAGE } from "./args.ts";
import { detectMachine } from "./detect.ts";
import { DetectionError } from "./hardware.ts";
import { parseRegisterArgs, readSavedConfig, REGISTER_USAGE, type RegisterArgs, registerThisMachine, REPORTED_SPECS_FILE } from "./register.ts";
import type { Runtime } from "./runtime.ts";
import { DockerRuntime, dockerAnswers } from "./runtimes/docker.ts";
import { ProcessRuntime } from "./runtimes/process.ts";

/** `register`: measure, register, save the key, list. A DetectionError (no GPU, bad output) registers nothing. */
async function register(argv: string[]) {
  let args: RegisterArgs | "help";
  try {
    args = parseRegisterArgs(argv, process.env);
  } catch (error) {
    process.stderr.write(`agent register: ${(error as Error).message}\n\n${REGISTER_USAGE}\n`);
    process.exit(2);
  }
  if (args === "help") {
    process.stdout.write(`${REGISTER_USAGE}\n`);
    return;
  }
  try {
    process.stdout.write(`${await registerThisMachine(args)}\n`);
  } catch (error) {
    const code = error instanceof DetectionError ? ` [${error.code}]` : "";
    process.stderr.write(`agent register${code}: ${(error as Error).message}\nNothing was registered.\n`);
    process.exitCode = 1;
  }
}

/** The environment with what `register` saved in the state directory as fallbacks (the real environment wins). */
async function withSavedConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
  const stateDir = parseArgs({ args: argv, options: { "state-dir": { type: "string" } }, strict: false }).values["state-dir"];
  const dir = typeof stateDir === "string" ? stateDir : env.AGENT_STATE_DIR;
  const saved = dir ? await readSavedConfig(dir) : null;
  if (!saved) return env;
  return {
    AGENT_API_URL: saved.api,
    AGENT_API_KEY: saved.key,
    AGENT_MACHINE_ID: saved.machine,
    ...(saved.publicAddress ? { AGENT_PUBLIC_ADDRESS: saved.publicAddress } : {}),
    ...env,
  };
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === "register") return register(argv.slice(1));
  let args: AgentArgs | "help";
  try {
    args = parseAgentArgs(argv, await withSavedConfig(argv, process.env));
  } catch (error) {
    process.stderr.write(`agent: ${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (args === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = pino({ level: process.env.LOG_LEVEL ?? "info", base: { pid: process.pid } });
  const stateDir = args.stateDir ?? join(homedir(), ".gpu-agent", `machine-${args.machine.slice("Machine:".length)}`);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const runtimeName = args.runtime ?? ((await dockerAnswers()) ? "docker" : "process");
  const runtime: Runtime =
    runtimeName === "docker"
      ? new DockerRuntime(join(stateDir, "docker"), logger)
      : new ProcessRuntime(join(stateDir, "processes"), logger);
  // Said at start: whether SSH-mode images without an OpenSSH server can run here.
  if (runtime instanceof DockerRuntime) await runtime.sshBundle();

  // Machines registered by `register` keep their measured specs in the state directory: re-checked against them.
  const reportedPath = join(stateDir, REPORTED_SPECS_FILE);
  const { api, key } = args;
  const speedTestBytes = args.speedTestMb * 1024 * 1024;
  const recheck =
    args.recheckMinutes > 0 && existsSync(reportedPath)
      ? { intervalMs: args.recheckMinutes * 60_000, reportedPath, detect: () => detectMachine({ apiUrl: api, key, dataDir: stateDir, diskTestBytes: speedTestBytes, networkTestBytes: speedTestBytes }) }
      : undefined;
  const agent = startAgent({
    apiUrl: args.api,
    key: args.key,
    machineId: args.machine,
    runtime,
    heartbeatSeconds: args.heartbeatSeconds,
    pollSeconds: args.pollSeconds,
    backoff: { initialMs: 500, maxMs: args.backoffMaxSeconds * 1000 },
    ...(args.containerApiUrl ? { containerApiUrl: args.containerApiUrl } : {}),
    ...(args.publicAddress ? { publicAddress: args.publicAddress } : {}),
    allowGpuless: args.allowGpuless,
    diskPath: stateDir,
    ...(recheck ? { recheck } : {}),
    logger,
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void agent.stop());
  try {
    await agent.done;
  } catch (error) {
    process.stderr.write(`agent: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}

await main();
