import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { generate } from "@graphql-codegen/cli";
import { expect, it } from "vitest";
import config from "../codegen.ts";

// The generated clients (CLI and web console) are committed; this fails when schema.graphql or a
// document changed without `npm run codegen`.
it.each(Object.keys(config.generates))("%s is what codegen makes from schema.graphql and its documents", async (target) => {
  const outputs: { filename: string; content: string }[] = await generate(
    { ...config, generates: { "fresh-codegen/": config.generates[target]! }, silent: true, cwd: process.cwd() },
    false,
  );
  const fresh = Object.fromEntries(outputs.map((o) => [basename(o.filename), o.content]));
  const committed = Object.fromEntries(
    await Promise.all((await readdir(target)).map(async (name) => [name, await readFile(join(target, name), "utf8")] as const)),
  );
  expect(Object.keys(committed).sort(), `files in ${target} (run npm run codegen)`).toEqual(Object.keys(fresh).sort());
  for (const [name, content] of Object.entries(fresh)) {
    expect(committed[name], `${target}${name} is stale: run npm run codegen`).toBe(content);
  }
}, 60_000);
