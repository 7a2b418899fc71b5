import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { developmentRegistryKey, REGISTRY_KEY_FILE } from "../infra/developmentKey.ts";
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

  it("production without REGISTRY_CREDENTIALS_KEY stops the start with a message naming it", async () => {
    const started = spawnStart({ NODE_ENV: "production", REGISTRY_CREDENTIALS_KEY: undefined, PORT: "0" });
    expect(await started.exited).toBe(1);
    const fatal = started.logs().find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(/^Invalid environment: .*\bREGISTRY_CREDENTIALS_KEY: required in production/);
    expect(started.output()).not.toContain("API and GraphiQL at");
  });
});

describe("the development registry credentials key", () => {
  it("is made once, kept in the data directory, and the same after a restart (also when two starts race)", async () => {
    const dataDir = join(await mkdtemp(join(tmpdir(), "dev-key-")), ".data");
    try {
      const [first, racing] = await Promise.all([developmentRegistryKey(dataDir), developmentRegistryKey(dataDir)]);
      expect(Buffer.from(first, "base64")).toHaveLength(32);
      expect(racing).toBe(first);
      expect((await stat(join(dataDir, REGISTRY_KEY_FILE))).mode & 0o777).toBe(0o600);
      expect((await readFile(join(dataDir, REGISTRY_KEY_FILE), "utf8")).trim()).toBe(first);
      expect(await developmentRegistryKey(dataDir)).toBe(first);
      // Another data directory, another key.
      expect(await developmentRegistryKey(`${dataDir}-other`)).not.toBe(first);
    } finally {
      await rm(join(dataDir, ".."), { recursive: true, force: true });
    }
  });
});
