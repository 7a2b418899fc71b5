import { execFileSync } from "node:child_process";
import pg from "pg";
import { inject, it, expect } from "vitest";
// @ts-expect-error plain ESM helper without types
import { currentSchemaText, diffSql } from "../prisma/prisma6.mjs";
import { MIGRATIONS_TABLE } from "../infra/migrate.ts";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";

/**
 * Every table, column, constraint, index and enum of a database, as comparable text. The pricing
 * history's price_* tables are left out: they are partitioned, which schema.prisma cannot express,
 * so a hand-written migration alone defines them (prisma/migrations/20261127095000_price_history).
 * So are CHECK constraints (Prisma writes none; the money bounds are hand-written SQL in
 * prisma/migrations/*_money_bounds), which the last test checks on their own.
 */
async function describeSchema(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const queries = [
      `SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(character_maximum_length::text, '') || ' ' ||
              coalesce(numeric_precision::text, '') || ' ' || coalesce(datetime_precision::text, '') || ' ' || is_nullable || ' ' ||
              coalesce(column_default, '') || ' ' || udt_name
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '${MIGRATIONS_TABLE}' AND table_name NOT LIKE 'price\\_%'`,
      `SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype <> 'c'
          AND conrelid::regclass::text <> '${MIGRATIONS_TABLE}' AND conrelid::regclass::text NOT LIKE 'price\\_%'`,
      `SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '${MIGRATIONS_TABLE}' AND tablename NOT LIKE 'price\\_%'`,
      `SELECT t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
         FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname`,
      `SELECT c.relname || ' ' || c.relkind::text FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE '${MIGRATIONS_TABLE}%' AND c.relname NOT LIKE 'price\\_%'`,
    ];
    const lines: string[] = [];
    for (const sql of queries) {
      const { rows } = await client.query<Record<string, string>>(sql);
      lines.push(...rows.map((row) => Object.values(row)[0]));
    }
    return lines.sort();
  } finally {
    await client.end();
  }
}

it("the committed migrations yield exactly the schema that schema.prisma describes", async () => {
  const serverUrl = inject("serverUrl");
  const expected = `t_${inject("runId")}_prisma_expected`;
  await adminQuery(serverUrl, `CREATE DATABASE ${expected}`);
  const sql: string = diffSql(null, currentSchemaText(), withDatabase(serverUrl, expected));
  const client = new pg.Client({ connectionString: withDatabase(serverUrl, expected) });
  await client.connect();
  await client.query(sql);
  await client.end();

  // This file's own database was cloned from the template the project's migrator built.
  const migrated = await describeSchema(process.env.DATABASE_URL!);
  expect(migrated.length).toBeGreaterThan(50);
  expect(migrated).toEqual(await describeSchema(withDatabase(serverUrl, expected)));
}, 60_000);

it("the migration snapshot matches schema.prisma, so the next migration diffs from the right base", () => {
  const snapshot = execFileSync("cat", ["prisma/migrations/schema.snapshot.prisma"], { encoding: "utf8" });
  expect(snapshot).toBe(currentSchemaText());
});

it("the migrated database enforces the money bounds", async () => {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL! });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace`);
    expect(rows.map((row) => row.name)).toEqual(
      expect.arrayContaining(["user_account_balance_bounds", "ledger_entry_amount_bounds", "payment_amount_positive", "instance_price_bounds", "open_time_accrual_rate_bounds"]),
    );
  } finally {
    await client.end();
  }
});
