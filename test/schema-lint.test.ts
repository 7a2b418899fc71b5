import { spawnSync } from "node:child_process";
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

it("graphql-schema-linter's default rules find nothing in the printed schema: every type, field, argument and enum value is described", async () => {
  expect(lint(await printedSchema())).toEqual([]);
});

it("the linter reports an undescribed field", () => {
  const findings = lint('"""The root."""\ntype Query {\n  """Described."""\n  a: Int\n  b: Int\n}\n');
  expect(findings).toContain("fields-have-descriptions: The field `Query.b` is missing a description.");
  expect(findings).not.toContain("fields-have-descriptions: The field `Query.a` is missing a description.");
});
