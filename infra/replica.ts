import { AppError } from "../domain/errors.ts";
import { PrismaClient } from "../prisma/generated/client/client.ts";
import { config } from "./config.ts";
import { type Db, prisma, prismaClient, REQUEST_SESSION_OPTIONS } from "./db.ts";
import { logger } from "./logger.ts";

/**
 * Reads that may be a moment stale (offer search, price history, market stats) go to the streaming
 * replica at DATABASE_REPLICA_URL while it is within REPLICA_MAX_LAG_MS of the primary; everything
 * else, and every read that must see its own writes, uses the primary (infra/db.ts).
 *
 * Lag is measured by WAL position, not by the replica's last replayed commit time (which grows on an
 * idle primary): each probe records the primary's current WAL position with the time it was read,
 * then reads how far the replica has replayed. The replica holds everything the primary had at the
 * latest recorded time whose position it has replayed, so its lag is at most now minus that time.
 * A replica that falls behind, stops answering or was promoted is left out until a probe finds it
 * fresh again; a read that fails on it is run again on the primary.
 */

interface Sample {
  at: number;
  lsn: bigint;
}

interface ReplicaState {
  client: PrismaClient;
  maxLagMs: number;
  /** Primary WAL positions of the last probes, oldest first (positions never decrease). */
  samples: Sample[];
  /** Time of the latest sample the replica had replayed when last probed; 0 when it is unusable. */
  freshAt: number;
  usable: boolean;
  timer: NodeJS.Timeout;
  probing: boolean;
}

let state: ReplicaState | undefined;

/** "16/B374D848" → its byte position. */
function parseLsn(lsn: string): bigint {
  const [high, low] = lsn.split("/");
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

function replicaState(): ReplicaState | undefined {
  if (state) return state;
  const { DATABASE_REPLICA_URL, REPLICA_MAX_LAG_MS } = config();
  if (!DATABASE_REPLICA_URL) return undefined;
  const client = prismaClient({ connectionString: DATABASE_REPLICA_URL, max: 20, connectionTimeoutMillis: REPLICA_MAX_LAG_MS, options: REQUEST_SESSION_OPTIONS });
  const intervalMs = Math.min(1000, Math.max(50, REPLICA_MAX_LAG_MS / 4));
  state = { client, maxLagMs: REPLICA_MAX_LAG_MS, samples: [], freshAt: 0, usable: false, probing: false, timer: setInterval(() => void probe(), intervalMs) };
  state.timer.unref();
  void probe();
  return state;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function probe(): Promise<void> {
  const current = state;
  if (!current || current.probing) return;
  current.probing = true;
  try {
    const [{ lsn: primaryLsn }] = await prisma.$queryRaw<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`;
    const at = Date.now();
    current.samples.push({ at, lsn: parseLsn(primaryLsn) });
    const [replica] = await withTimeout(
      current.client.$queryRaw<{ standby: boolean; lsn: string | null }[]>`SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS lsn`,
      current.maxLagMs,
    );
    if (!replica.standby || replica.lsn === null) throw new Error("DATABASE_REPLICA_URL is not a streaming replica (it is not in recovery)");
    const replayed = parseLsn(replica.lsn);
    const latest = current.samples.findLast((sample) => sample.lsn <= replayed);
    if (latest) current.freshAt = Math.max(current.freshAt, latest.at);
    // Samples older than the one the replica holds, or too old to make it fresh, are no longer needed.
    const keepFrom = Math.max(latest?.at ?? 0, at - 2 * current.maxLagMs);
    current.samples = current.samples.filter((sample) => sample.at >= keepFrom);
    setUsable(current, true);
  } catch (error) {
    setUsable(current, false, error);
  } finally {
    current.probing = false;
  }
}

function setUsable(current: ReplicaState, usable: boolean, error?: unknown): void {
  if (!usable) current.freshAt = 0;
  if (current.usable !== usable) {
    if (usable) logger.info("read replica in use");
    else logger.warn({ err: error }, "read replica unusable: its reads go to the primary");
  }
  current.usable = usable;
}

/** The replica when it is usable and within the lag bound now. */
function freshReplica(): PrismaClient | undefined {
  const current = replicaState();
  if (!current?.usable || Date.now() - current.freshAt > current.maxLagMs) return undefined;
  return current.client;
}

/**
 * Runs `read` on the replica when one is configured and fresh, on the primary otherwise, and again on
 * the primary when it fails on the replica for any reason other than the caller's own input (an
 * AppError), so that a replica going away costs no request an error.
 */
export async function onReadReplica<T>(read: (db: Db) => Promise<T>): Promise<T> {
  const replica = freshReplica();
  if (!replica) return read(prisma);
  try {
    return await read(replica);
  } catch (error) {
    if (error instanceof AppError) throw error;
    if (state) setUsable(state, false, error);
    return read(prisma);
  }
}

/** For /healthz: whether replica reads are configured, in use now, and the replica's lag bound as last measured. */
export function readReplicaStatus(): { inUse: boolean; lagMs: number | null } | undefined {
  const current = replicaState();
  if (!current) return undefined;
  return { inUse: freshReplica() !== undefined, lagMs: current.usable ? Date.now() - current.freshAt : null };
}

export async function closeReadReplica(): Promise<void> {
  const current = state;
  if (!current) return;
  state = undefined;
  clearInterval(current.timer);
  await current.client.$disconnect();
}
