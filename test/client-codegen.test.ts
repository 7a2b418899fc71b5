import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { generate } from "@graphql-codegen/cli";
import { expect, it } from "vitest";
import config from "../codegen.ts";

const GENERATED = "client/generated/";

// The generated client is committed; this fails when schema.graphql or client/operations changed without `npm run codegen`.
it("client/generated/ is what codegen makes from schema.graphql and client/operations", async () => {
  const target = config.generates[GENERATED];
  expect(target).toBeDefined();
  const outputs: { filename: string; content: string }[] = await generate(
    { ...config, generates: { "fresh-codegen/": target! }, silent: true, cwd: process.cwd() },
    false,
  );
  const fresh = Object.fromEntries(outputs.map((o) => [basename(o.filename), o.content]));
  const committed = Object.fromEntries(
    await Promise.all((await readdir(GENERATED)).map(async (name) => [name, await readFile(join(GENERATED, name), "utf8")] as const)),
  );
  expect(Object.keys(committed).sort(), "files in client/generated/ (run npm run codegen)").toEqual(Object.keys(fresh).sort());
  for (const [name, content] of Object.entries(fresh)) {
    expect(committed[name], `client/generated/${name} is stale: run npm run codegen`).toBe(content);
  }
}, 60_000);
