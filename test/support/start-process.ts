import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** A pino log line of the started process. */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface StartProcess {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** The JSON log lines on stdout so far. */
  logs(): LogLine[];
  /** Resolves with the first log line matching `predicate`; rejects when the process exits first. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/** Runs `npm start`, the README's first command, with the given environment. */
export function spawnStart(env: Record<string, string | undefined>): StartProcess {
  return spawnNpm(["start", "--silent"], { cwd: root, env: { ...process.env, LOG_LEVEL: "info", ...env } });
}

/** Runs npm with exactly `env` in `cwd`, its output collected as for `npm start`. */
export function spawnNpm(args: string[], options: { cwd: string; env: Record<string, string | undefined> }): StartProcess {
  const child = spawn("npm", args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const logs = () =>
    text
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as LogLine);
  return {
    child,
    output: () => text,
    logs,
    exited,
    waitForLog(predicate, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = logs().find(predicate);
          if (found) finish(() => resolve(found));
        };
        const finish = (settle: () => void) => {
          listeners.delete(check);
          clearTimeout(timer);
          settle();
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no such log line in:\n${text}`))), timeoutMs);
        listeners.add(check);
        void exited.then((code) => finish(() => reject(new Error(`exited with ${code} before the log line:\n${text}`))));
        check();
      });
    },
  };
}
