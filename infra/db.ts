import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../prisma/generated/client/client.ts";
import { config } from "./config.ts";

/**
 * Session settings of the connections that serve requests: those run short index scans on cores
 * shared by many requests at once, where a parallel plan (chosen on a misestimate, as for the offer
 * search's bound on a larger disk at a million offers) spends more starting workers than it saves
 * (bench/RESULTS.md, offer search).
 */
export const REQUEST_SESSION_OPTIONS = "-c max_parallel_workers_per_gather=0";

export const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: config().DATABASE_URL, max: 20, options: REQUEST_SESSION_OPTIONS }),
  // Under a burst (32 bidders on a saturated box) a transaction may wait more than Prisma's default 2 s
  // for one of the 20 connections, and then more than its default 5 s run time for a machine's lock
  // behind 50 others: it should wait its turn, not fail the request with an internal error.
  transactionOptions: { maxWait: 10_000, timeout: 30_000 },
});

/**
 * Metering's own small pool: its ticks never wait behind request traffic (or a flood of it) for one
 * of the 20 connections above. Connects on first use, so processes that do not meter open none.
 */
export const meteringPrisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: config().DATABASE_URL, max: 2 }),
});

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
