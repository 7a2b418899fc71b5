import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Runs worker scripts as real child processes (so that tests can kill -9 them), each resolved
 * once it logs `readyLine`; whatever is still alive is killed after the file's tests.
 */
export function useWorkerProcesses() {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return function startWorkerProcess(script: string, readyLine: string, env: Record<string, string> = {}): Promise<ChildProcess> {
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let output = "";
    return new Promise((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes(readyLine)) resolve(child);
      });
      child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
      child.once("exit", (code, signal) => reject(new Error(`${script} exited with ${code ?? signal}:\n${output}`)));
    });
  };
}
