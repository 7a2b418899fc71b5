// Prisma 6.19's `migrate diff` is the one schema differ that runs offline here (see DEVELOPERS.md):
// it needs a `url` in the datasource (Prisma 7 forbids it), a js-engine config with an adapter, and
// engine paths that point at any existing file. This module wraps those quirks for the scripts and tests.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
export const schemaPath = join(root, "prisma/schema.prisma");

/** The datamodel of a Prisma 7 schema, as a file Prisma 6.19 accepts. */
function datamodelFile(dir, name, schemaText) {
  const withoutGenerators = schemaText.replace(/^generator\s+\w+\s*\{[^}]*\}\s*$/gm, "");
  const withUrl = withoutGenerators.replace(
    /(datasource\s+\w+\s*\{[^}]*provider\s*=\s*"postgresql")/,
    '$1\n  url = "postgresql://unused@127.0.0.1/unused"',
  );
  const file = join(dir, name);
  writeFileSync(file, withUrl);
  return file;
}

/**
 * SQL that takes a database from `fromSchemaText` (or from nothing) to `toSchemaText`. The js engine
 * opens a connection through the adapter even for a pure diff, so a reachable database is needed.
 */
export function diffSql(fromSchemaText, toSchemaText, databaseUrl) {
  const dir = mkdtempSync(join(tmpdir(), "prisma-diff-"));
  writeFileSync(
    join(dir, "prisma.config.mjs"),
    `import { defineConfig } from ${JSON.stringify(join(root, "node_modules/prisma6/config.js"))};
import { PrismaPg } from ${JSON.stringify(join(root, "node_modules/@prisma/adapter-pg/dist/index.mjs"))};
export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => new PrismaPg({ connectionString: ${JSON.stringify(databaseUrl)} }),
});
`,
  );
  const to = datamodelFile(dir, "to.prisma", toSchemaText);
  const from = fromSchemaText === null ? ["--from-empty"] : ["--from-schema-datamodel", datamodelFile(dir, "from.prisma", fromSchemaText)];
  return execFileSync(
    process.execPath,
    [join(root, "node_modules/prisma6/build/index.js"), "migrate", "diff", ...from, "--to-schema-datamodel", to, "--script", "--config", join(dir, "prisma.config.mjs")],
    {
      cwd: dir,
      encoding: "utf8",
      env: {
        ...process.env,
        PRISMA_QUERY_ENGINE_LIBRARY: process.execPath,
        PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
        PRISMA_HIDE_UPDATE_MESSAGE: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
}

export function currentSchemaText() {
  return readFileSync(schemaPath, "utf8");
}
