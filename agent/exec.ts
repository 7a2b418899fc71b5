import { spawn } from "node:child_process";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion; `onLine` sees each stdout line as it arrives (e.g. pull progress);
 * `input` is written to its stdin (secrets stay out of argv).
 */
export function run(command: string, args: string[], onLine?: (line: string) => void, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = "";
    let stderr = "";
    let pending = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk;
      if (!onLine) return;
      const lines = (pending + chunk.toString()).split(/\r?\n|\r/);
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) onLine(line);
    });
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => {
      if (onLine && pending.trim()) onLine(pending);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like run, but a non-zero exit is an error carrying the command's stderr. */
export async function runOk(command: string, args: string[], onLine?: (line: string) => void, input?: string): Promise<string> {
  const result = await run(command, args, onLine, input);
  if (result.code !== 0) {
    throw new Error(`${command} ${args[0] ?? ""} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result.stdout;
}
