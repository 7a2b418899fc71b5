import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { printedSchema, schemaFile } from "../schema/print.ts";

it("schema.graphql is the printed Pothos schema (run `npm run schema:print` when this fails)", async () => {
  expect(readFileSync(schemaFile, "utf8")).toBe(await printedSchema());
});
