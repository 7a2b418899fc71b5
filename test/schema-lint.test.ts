import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { expect, it } from "vitest";
import { printedSchema } from "../schema/print.ts";

const linterCli = createRequire(import.meta.url).resolve("graphql-schema-linter/lib/cli.js");

/** graphql-schema-linter's findings on a schema, with its default rules, as "rule: message". */
function lint(schema: string): string[] {
  const run = spawnSync(process.execPath, [linterCli, "--stdin", "--format", "json"], { input: schema, encoding: "utf8" });
  if (run.status !== 0 && run.status !== 1) throw new Error(`graphql-schema-linter failed (${run.status}): ${run.stderr}`);
  return (JSON.parse(run.stdout) as { errors: { rule: string; message: string }[] }).errors.map((e) => `${e.rule}: ${e.message}`);
}

// Findings not yet fixed; the list only shrinks: anything not on it fails.
const knownFindings = new Set(
  readFileSync(new URL("./support/schema-lint-known.txt", import.meta.url), "utf8").split("\n").filter(Boolean),
);

it("graphql-schema-linter's default rules find nothing new in the printed schema (describe every type, field, argument and enum value)", async () => {
  expect(lint(await printedSchema()).filter((finding) => !knownFindings.has(finding))).toEqual([]);
});

it("the linter reports an undescribed field", () => {
  const findings = lint('"""The root."""\ntype Query {\n  """Described."""\n  a: Int\n  b: Int\n}\n');
  expect(findings).toContain("fields-have-descriptions: The field `Query.b` is missing a description.");
  expect(findings).not.toContain("fields-have-descriptions: The field `Query.a` is missing a description.");
});
