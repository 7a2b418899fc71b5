import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { lexicographicSortSchema, printSchema } from "graphql";

export const schemaFile = fileURLToPath(new URL("../schema.graphql", import.meta.url));

export async function printedSchema(): Promise<string> {
  const { schema } = await import("./index.ts");
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(schemaFile, await printedSchema());
  console.log(`Wrote ${schemaFile}`);
}
