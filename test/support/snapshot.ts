import { prisma } from "../../infra/db.ts";

/** Every row of every table, as one string: equal snapshots mean nothing was written. */
export async function databaseSnapshot(): Promise<string> {
  const tables = await prisma.$queryRaw<{ tablename: string }[]>`
    SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY tablename`;
  const dump: Record<string, unknown[]> = {};
  for (const { tablename } of tables) {
    const rows = await prisma.$queryRawUnsafe<Record<string, unknown>[]>(`SELECT * FROM "${tablename}" ORDER BY 1`);
    // Authenticating a key stamps its last use (and moves a session's expiry); that is bookkeeping,
    // not a change by the caller.
    dump[tablename] = rows.map(({ last_used_at: _used, ...row }) => (row.scope === "SESSION" ? { ...row, expires_at: null } : row));
  }
  return JSON.stringify(dump, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
}
