// The console's production build, made when it is missing or older than its sources, so that
// `npm install && npm start` serves it with no other command.
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(WEB, "..", "..");
export const CONSOLE_DIST = join(WEB, "dist");
const STAMP = join(CONSOLE_DIST, ".built");

/** What the bundle is made from: its sources, the generated documents, its config and the lockfile. */
const INPUTS = [join(WEB, "src"), join(WEB, "index.html"), join(WEB, "vite.config.ts"), join(WEB, "build.ts"), join(ROOT, "package-lock.json")];

async function newestChange(path: string): Promise<number> {
  const info = await stat(path).catch(() => null);
  if (!info) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  const entries = await readdir(path);
  const times = await Promise.all(entries.map((entry) => newestChange(join(path, entry))));
  return Math.max(info.mtimeMs, ...times);
}

export async function consoleIsFresh(): Promise<boolean> {
  const built = await stat(STAMP).catch(() => null);
  if (!built) return false;
  const newest = Math.max(...(await Promise.all(INPUTS.map(newestChange))));
  return newest <= built.mtimeMs;
}

/**
 * Builds into a directory of its own and swaps it in, so that two processes building at once (test
 * files, a start) never serve a half-written bundle. Returns whether it built.
 */
export async function ensureConsoleBuilt(): Promise<boolean> {
  if (await consoleIsFresh()) return false;
  const started = new Date();
  const { build } = await import("vite");
  const outDir = `${CONSOLE_DIST}.${process.pid}.${Date.now()}`;
  // Vite and the React plugin follow NODE_ENV: a build from a test run (NODE_ENV=test) would ship
  // React's development build.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    await build({ configFile: join(WEB, "vite.config.ts"), mode: "production", logLevel: "warn", build: { outDir, emptyOutDir: true } });
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  // Stamped with the start: a source saved during the build makes it stale.
  await writeFile(join(outDir, ".built"), started.toISOString());
  await utimes(join(outDir, ".built"), started, started);
  const old = `${outDir}.old`;
  await rename(CONSOLE_DIST, old).catch(() => undefined);
  await mkdir(WEB, { recursive: true });
  await rename(outDir, CONSOLE_DIST).catch(async (error: NodeJS.ErrnoException) => {
    // Another process swapped its build in first: theirs is as fresh.
    if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    await rm(outDir, { recursive: true, force: true });
  });
  await rm(old, { recursive: true, force: true });
  return true;
}
