import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startAgent } from "./agent.ts";
import { type AgentArgs, parseAgentArgs, USAGE } from "./args.ts";
import type { Runtime } from "./runtime.ts";
import { DockerRuntime, dockerAnswers } from "./runtimes/docker.ts";
import { ProcessRuntime } from "./runtimes/process.ts";

async function main() {
  let args: AgentArgs | "help";
  try {
    args = parseAgentArgs(process.argv.slice(2), process.env);
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
