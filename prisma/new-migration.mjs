// Usage: npm run migration:new -- <name>   (DATABASE_URL: any reachable PostgreSQL; nothing is written to it)
// Writes prisma/migrations/<timestamp>_<name>/migration.sql with the SQL that takes the schema as of
// the last migration (kept in prisma/migrations/schema.snapshot.prisma) to prisma/schema.prisma.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { currentSchemaText, diffSql } from "./prisma6.mjs";

const name = process.argv[2];
if (!name || !/^[a-z0-9_]+$/.test(name)) {
  console.error("Usage: npm run migration:new -- <snake_case_name>");
  process.exit(2);
}
const migrationsDir = fileURLToPath(new URL("./migrations/", import.meta.url));
const snapshot = join(migrationsDir, "schema.snapshot.prisma");
const current = currentSchemaText();
const databaseUrl = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const sql = diffSql(existsSync(snapshot) ? readFileSync(snapshot, "utf8") : null, current, databaseUrl);
if (!/^(CREATE|ALTER|DROP)/m.test(sql)) {
  console.log("Schema unchanged since the last migration: nothing written.");
  process.exit(0);
}
const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
const dir = join(migrationsDir, `${stamp}_${name}`);
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "migration.sql"), sql);
writeFileSync(snapshot, current);
console.log(`Wrote ${dir}/migration.sql`);
