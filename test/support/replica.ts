import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type LocalService, makeReachableDir, postgresRunAs, ROOT_HOME, runPostgres } from "../../infra/local-services.ts";

const execFileAsync = promisify(execFile);

/** The newest PostgreSQL of the machine's packages that has pg_basebackup (the embedded package's has not). */
async function systemPostgresBin(): Promise<string> {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? (await readdir(root)).sort((a, b) => Number(b) - Number(a)) : [];
  const version = versions.find((v) => existsSync(join(root, v, "bin", "pg_basebackup")));
  if (!version) throw new Error("no /usr/lib/postgresql/<version>/bin/pg_basebackup: install the Debian package `postgresql`");
  return join(root, version, "bin");
}

export interface ReplicatedPostgres {
  primary: LocalService;
  replica: LocalService;
  /** Removes both clusters (after stopping what still runs). */
  remove(): Promise<void>;
}

/**
 * A primary (wal_level=replica, trust auth on loopback) and a streaming standby made from it with
 * `pg_basebackup -R`, each its own server on a free port, from the machine's PostgreSQL binaries; as
 * root both run as the postgres account (see infra/local-services.ts). Durability is off: test data.
 */
export async function startReplicatedPostgres(): Promise<ReplicatedPostgres> {
  const bin = await systemPostgresBin();
  const account = await postgresRunAs();
  let base: string;
  if (account) {
    await makeReachableDir(join(ROOT_HOME, "replica-tests"));
    base = await mkdtemp(join(ROOT_HOME, "replica-tests", "pair-"));
    await chown(base, account.uid, account.gid);
  } else {
    base = await mkdtemp(join(tmpdir(), "replica-pair-"));
  }
  const run = (tool: string, args: string[]) => execFileAsync(join(bin, tool), args, { ...account, env: { ...process.env, LC_MESSAGES: "C" } });
  const url = (port: number) => `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=100", "shared_buffers=32MB"];
  const primaryDir = join(base, "primary");
  const replicaDir = join(base, "replica");
  await mkdir(primaryDir, { mode: 0o700 });
  if (account) await chown(primaryDir, account.uid, account.gid);
  await run("initdb", [`--pgdata=${primaryDir}`, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C"]);
  const primary = await runPostgres(bin, primaryDir, account, url, [...settings, "wal_level=replica", "max_wal_senders=4"]);
  let replica: LocalService | undefined;
  try {
    const { port } = new URL(primary.url);
    await run("pg_basebackup", ["-h", "127.0.0.1", "-p", port, "-U", "postgres", "-D", replicaDir, "-R", "-X", "stream", "-c", "fast"]);
    replica = await runPostgres(bin, replicaDir, account, url, [...settings, "hot_standby=on", "hot_standby_feedback=on"]);
  } catch (error) {
    await primary.stop();
    await rm(base, { recursive: true, force: true });
    throw error;
  }
  return {
    primary,
    replica,
    remove: async () => {
      await Promise.all([primary.stop(), replica.stop()]);
      await rm(base, { recursive: true, force: true });
    },
  };
}
