import { describe, expect, it } from "vitest";
import { spawnStart } from "./support/start-process.ts";

describe.concurrent("configuration validated at start", () => {
  it.each([
    ["PORT", "abc"],
    ["DATABASE_URL", "not-a-url"],
    ["REDIS_PREFIX", "has:colon"],
  ])("%s=%s stops the start with exit code 1 and a message naming it", async (name, value) => {
    const started = spawnStart({ [name]: value, PORT: name === "PORT" ? value : "0" });
    expect(await started.exited).toBe(1);
    const fatal = started.logs().find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(new RegExp(`^Invalid environment: .*\\b${name}\\b`));
    expect(started.output()).not.toContain("API and GraphiQL at");
  });
});
