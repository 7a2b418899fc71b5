import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../prisma/generated/client/client.ts";
import { config } from "./config.ts";

/**
 * Session settings of the connections that serve requests: those run short index scans on cores
 * shared by many requests at once, where a parallel plan (chosen on a misestimate, as for the offer
 * search's bound on a larger disk at a million offers) spends more starting workers than it saves
 * (bench/RESULTS.md, offer search).
 */
export const REQUEST_SESSION_OPTIONS = "-c max_parallel_workers_per_gather=0";

/** Prisma's pg adapter, keeping the pool of its current connection (a disconnect ends it, a connect makes another) for driverRows. */
class PoolKeepingPrismaPg extends PrismaPg {
  pool: pg.Pool | undefined;

  override async connect() {
    const adapter = await super.connect();
    this.pool = adapter.underlyingDriver();
    return adapter;
  }
}

const adapters = new WeakMap<PrismaClient, PoolKeepingPrismaPg>();

/** A Prisma client on a pg pool of these settings; every client of the app is made here, so driverRows can use its pool. */
export function prismaClient(pool: pg.PoolConfig, options: { transactionOptions?: { maxWait: number; timeout: number } } = {}): PrismaClient {
  const adapter = new PoolKeepingPrismaPg(pool);
  const client = new PrismaClient({ ...options, adapter });
  adapters.set(client, adapter);
  return client;
}

export const prisma = prismaClient(
  { connectionString: config().DATABASE_URL, max: 20, options: REQUEST_SESSION_OPTIONS },
  // Under a burst (32 bidders on a saturated box) a transaction may wait more than Prisma's default 2 s
  // for one of the 20 connections, and then more than its default 5 s run time for a machine's lock
  // behind 50 others: it should wait its turn, not fail the request with an internal error.
  { transactionOptions: { maxWait: 10_000, timeout: 30_000 } },
);

/**
 * Metering's own small pool: its ticks never wait behind request traffic (or a flood of it) for one
 * of the 20 connections above. Connects on first use, so processes that do not meter open none.
 */
export const meteringPrisma = prismaClient({ connectionString: config().DATABASE_URL, max: 2 });

/** Row values as the driver reads them, except int8, which is a bigint (as Prisma reads it) rather than a string. */
const DRIVER_TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8 ? BigInt : pg.types.getTypeParser(oid, format as "text")) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * The rows of a statement as the pg driver reads them, on the connections of `db` (a client made by
 * prismaClient): for reads of many rows, whose conversion by Prisma's raw queries costs more CPU than
 * the driver's own parsing (the offer search's pages of 100 offers of 45 columns).
 */
export async function driverRows<T>(db: Db, statement: { text: string; values: unknown[] }): Promise<T[]> {
  const adapter = adapters.get(db);
  if (!adapter) throw new Error("driverRows needs a client made by prismaClient");
  if (!adapter.pool || adapter.pool.ending) await db.$connect();
  const { rows } = await adapter.pool!.query<T & pg.QueryResultRow>({ text: statement.text, values: statement.values, types: DRIVER_TYPES });
  return rows;
}

export type Db = typeof prisma;
/** A client or an interactive transaction: domain services accept either. */
export type Tx = Omit<Db, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;

/** PostgreSQL's codes for a CHECK constraint violated and a bigint out of range. */
const BOUND_ERRORS = new Set(["23514", "22003"]);

/** Whether `error` is a value past a bound the database enforces (a CHECK constraint, or int8 overflow). */
export function isBoundViolation(error: unknown): boolean {
  const meta = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } })?.meta;
  return BOUND_ERRORS.has(String(meta?.driverAdapterError?.cause?.originalCode));
}

/** Whether `error` is a unique-index violation, from the query builder (P2002) or a raw statement (PostgreSQL's 23505). */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, meta } = error as { code?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  return code === "P2002" || meta?.driverAdapterError?.cause?.originalCode === "23505";
}
