import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}

/** The real agent program (agent/cli.ts), with the process runtime unless told otherwise, against a real API. */
export function spawnAgent(options: {
  api: string;
  key: string;
  machineId: number;
  stateDir: string;
  runtime?: "process" | "docker";
  extraArgs?: string[];
}): AgentProcess {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "agent/cli.ts",
      "--api",
      options.api,
      "--key",
      options.key,
      "--machine",
      String(options.machineId),
      "--runtime",
      options.runtime ?? "process",
      "--state-dir",
      options.stateDir,
      "--poll-seconds",
      "0.2",
      "--heartbeat-seconds",
      "1",
      "--backoff-max-seconds",
      "1",
      ...(options.extraArgs ?? []),
    ],
    { cwd: root, env: { ...process.env, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/**
 * Every live process whose environment says it belongs to the container `label` of the API at
 * `apiUrl` (labels repeat across test databases; API ports do not).
 */
export async function processesOf(label: string, apiUrl: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, "utf8").catch(() => "");
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const vars = environ.split("\0");
    if (vars.includes(`CONTAINER_LABEL=${label}`) && vars.includes(`API_URL=${apiUrl}`) && !/\) Z /.test(stat)) pids.push(Number(entry));
  }
  return pids;
}

/** Polls `check` until it returns something other than undefined/false. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface ApiProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  output(): string;
}

/** A separate API process (test/support/api-server.ts) on the test file's database and Redis prefix. */
export function spawnApi(): Promise<ApiProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/api-server.ts"], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let output = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk;
      const line = output.split("\n").find((l) => l.startsWith('{"url"'));
      if (line) resolve({ child, url: JSON.parse(line).url, exited, output: () => output });
    });
    void exited.then((code) => reject(new Error(`API process exited with ${code}:\n${output}`)));
  });
}
