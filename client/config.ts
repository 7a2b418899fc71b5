import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { DEFAULT_URL } from "./client.ts";

/** What `set api-key` stores; flags and environment variables take precedence. */
export interface ConfigFile {
  apiKey?: string;
  url?: string;
}

export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "gpu-marketplace", "config.json");
}

export async function readConfig(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw error;
  }
  try {
    return JSON.parse(text) as ConfigFile;
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}

/** Merges `changes` into the file, which holds a secret: readable by its owner only (0600). */
export async function writeConfig(path: string, changes: ConfigFile): Promise<void> {
  const config = { ...(await readConfig(path)), ...changes };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // writeFile's mode applies only to a new file.
  await chmod(path, 0o600);
}

export interface Settings {
  url: string;
  apiKey?: string;
}

/** Flag, then environment variable, then config file, then the default. */
export async function resolveSettings(flags: { url?: string; apiKey?: string }, env: NodeJS.ProcessEnv, configPath: string): Promise<Settings> {
  const config = await readConfig(configPath);
  return {
    url: flags.url ?? env.GM_API_URL ?? config.url ?? DEFAULT_URL,
    apiKey: flags.apiKey ?? env.GM_API_KEY ?? config.apiKey,
  };
}
