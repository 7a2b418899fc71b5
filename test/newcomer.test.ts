import { execFile } from "node:child_process";
import { cp, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify, stripVTControlCharacters } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { embeddedClusterDir } from "../infra/local-services.ts";
import { spawnNpm } from "./support/start-process.ts";

// The README's two commands in a fresh clone inside a directory only its owner may enter (as root,
// embedded PostgreSQL runs as another account), with DATABASE_URL and REDIS_URL unset.
// `npm install` runs for real but offline over a (hard-linked) copy of this checkout's node_modules: downloading
// every package again would test the registry, not the checkout. `npm test` runs one small file: the
// whole suite already runs around this one, and what is under test is the commands' set-up
// (embedded PostgreSQL, private Redis, migrations), not the other files.
const exec = promisify(execFile);
const checkout = fileURLToPath(new URL("..", import.meta.url));
const STEP_MS = 300_000;

describe("a fresh clone in a private (0700) directory", () => {
  let home: string;
  let project: string;
  // Only what a newcomer's shell has: no DATABASE_URL, REDIS_URL or test-runner variables.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "info" };

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "newcomer-"));
    project = join(home, "project");
    await exec("git", ["clone", "--quiet", checkout, project]);
    // The code under test: this checkout's uncommitted changes and new (not ignored) files go along.
    const { stdout: diff } = await exec("git", ["diff", "HEAD", "--binary"], { cwd: checkout, maxBuffer: 64 << 20 });
    if (diff) {
      const apply = execFile("git", ["apply", "--whitespace=nowarn", "-"], { cwd: project });
      apply.stdin!.end(diff);
      await new Promise<void>((resolve, reject) => apply.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`git apply: ${code}`)))));
    }
    const { stdout: untracked } = await exec("git", ["ls-files", "--others", "--exclude-standard", "-z"], { cwd: checkout });
    for (const file of untracked.split("\0").filter(Boolean)) await cp(join(checkout, file), join(project, file), { recursive: true });
    // Hard links make the copy instant; nothing below writes into an installed package's files.
    await exec("cp", ["-al", join(checkout, "node_modules"), join(project, "node_modules")]).catch(() =>
      cp(join(checkout, "node_modules"), join(project, "node_modules"), { recursive: true, verbatimSymlinks: true }),
    );
  }, STEP_MS);

  afterAll(async () => {
    if (!project) return;
    // As root the clusters live outside the checkout; they go with it.
    const clusters = await Promise.all([embeddedClusterDir(join(project, ".data", "test")), embeddedClusterDir(join(project, ".data"))]);
    for (const dir of [...clusters, home]) await rm(dir, { recursive: true, force: true });
  }, STEP_MS);

  it("is private: only its owner may enter", async () => {
    expect((await stat(home)).mode & 0o777).toBe(0o700);
  });

  it("`npm install` then `npm test` pass", async () => {
    const install = spawnNpm(["install", "--offline", "--no-audit", "--no-fund"], { cwd: project, env });
    expect(await install.exited, install.output()).toBe(0);

    const test = spawnNpm(["test", "--", "test/health.test.ts"], { cwd: project, env });
    expect(await test.exited, test.output()).toBe(0);
    expect(stripVTControlCharacters(test.output())).toMatch(/Tests\s+\d+ passed/);
  }, 2 * STEP_MS);

  it("`npm start` serves the demo and stops with exit code 0", async () => {
    const start = spawnNpm(["start", "--silent"], { cwd: project, env: { ...env, PORT: "0" } });
    try {
      const url = String((await start.waitForLog((line) => typeof line.url === "string", STEP_MS)).url);
      expect((await fetch(new URL("/healthz", url))).status).toBe(200);
      const clientKey = start.logs().find((line) => line.email === "client@demo.local")?.key;
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
        body: JSON.stringify({ query: "{ me { email } }" }),
      });
      expect(await response.json()).toEqual({ data: { me: { email: "client@demo.local" } } });
    } finally {
      start.child.kill("SIGTERM");
    }
    expect(await start.exited, start.output()).toBe(0);
  }, 2 * STEP_MS);
});
