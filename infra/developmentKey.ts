import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The file in the data directory that keeps the development REGISTRY_CREDENTIALS_KEY across restarts. */
export const REGISTRY_KEY_FILE = "registry-credentials.key";

/**
 * The key that encrypts saved registry passwords when none is configured outside production: made
 * once (32 random bytes, base64) and kept in `dataDir`, so that a restart can still decrypt what was
 * saved. Two starts racing each other end up with the same key (the file is created exclusively).
 */
export async function developmentRegistryKey(dataDir: string): Promise<string> {
  const file = join(dataDir, REGISTRY_KEY_FILE);
  const stored = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (stored !== null) return stored.trim();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return (await readFile(file, "utf8")).trim();
}
