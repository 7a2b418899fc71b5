import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";
import { type StartProcess, spawnStart } from "./support/start-process.ts";

// `npm start` against an empty database of the test server: it migrates, loads the demo data,
// serves, prints working demo keys, and stops cleanly on SIGTERM; a second start loads nothing twice.
const database = `t_${inject("runId")}_start_${randomBytes(3).toString("hex")}`;
const databaseUrl = withDatabase(inject("serverUrl"), database);
const env = { DATABASE_URL: databaseUrl, REDIS_URL: inject("redisUrl"), REDIS_PREFIX: database, PORT: "0" };

interface Running {
  process: StartProcess;
  url: string;
  keys: Record<string, string>;
}

async function start(): Promise<Running> {
  const process = spawnStart(env);
  const url = String((await process.waitForLog((line) => typeof line.url === "string")).url);
  const keys = Object.fromEntries(
    process
      .logs()
      .filter((line) => typeof line.key === "string")
      .map((line) => [line.email as string, line.key as string]),
  );
  return { process, url, keys };
}

async function gql(url: string, query: string, key?: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as { data?: any; errors?: { extensions?: { code?: string } }[] };
}

async function stop(running: Running): Promise<number | null> {
  running.process.child.kill("SIGTERM");
  const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000).unref());
  return (await Promise.race([running.process.exited, timeout])) as number | null;
}

async function count(table: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return Number((await client.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
  } finally {
    await client.end();
  }
}

describe("npm start", () => {
  beforeAll(() => adminQuery(inject("serverUrl"), `CREATE DATABASE ${database}`));
  // The database goes with the run's others; the queues the started workers left in Redis go here.
  afterAll(async () => {
    const redis = new Redis(env.REDIS_URL);
    const keys = await redis.keys(`${database}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  let firstKeys: Record<string, string>;
  let machines: number;

  it("serves the API with the demo data and stops with exit code 0 on SIGTERM", async () => {
    const running = await start();
    try {
      expect(running.process.logs().some((line) => line.msg === "empty database: demo data loaded")).toBe(true);
      const health = await fetch(new URL("/healthz", running.url));
      expect(health.status).toBe(200);

      const me = await gql(running.url, "{ me { email balance } }", running.keys["client@demo.local"]);
      expect(me).toEqual({ data: { me: { email: "client@demo.local", balance: "100.00" } } });
      const offers = await gql(running.url, "{ offers(first: 20) { edges { node { gpuName numGpus } } } }");
      expect(offers.data.offers.edges.length).toBe(20);

      firstKeys = running.keys;
      machines = await count("machine");
      expect(machines).toBeGreaterThanOrEqual(45);
    } finally {
      expect(await stop(running)).toBe(0);
    }
    expect(running.process.logs().at(-1)?.msg).toBe("stopped");
  });

  it("starts again on the same database without loading the demo twice, with fresh keys", async () => {
    const running = await start();
    try {
      expect(running.process.output()).not.toContain("demo data loaded");
      expect(await count("machine")).toBe(machines);
      expect(await count("user_account")).toBe(2);
      const me = await gql(running.url, "{ me { email } }", running.keys["host@demo.local"]);
      expect(me.data.me.email).toBe("host@demo.local");
      const stale = await gql(running.url, "{ me { email } }", firstKeys["host@demo.local"]);
      expect(stale.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    } finally {
      expect(await stop(running)).toBe(0);
    }
  });

  it("prints readable lines on a terminal, not JSON, with the addresses and the demo keys", async () => {
    // `script` gives npm start a pseudo-terminal; Ctrl-C on it stops the server as at a keyboard. Its
    // command runs under $SHELL -c; `exec` keeps that shell out of the terminal's foreground group, since a
    // non-interactive dash dies of the Ctrl-C itself (exit 130) while npm and the server stop cleanly.
    const child = spawn("script", ["-qec", "exec npm start --silent", "/dev/null"], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, SHELL: "/bin/sh", LOG_LEVEL: "info", NODE_ENV: "development", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let raw = "";
    child.stdout!.on("data", (chunk: Buffer) => (raw += chunk.toString()));
    const text = () => stripVTControlCharacters(raw).replaceAll("\r\n", "\n");
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await vi.waitFor(() => expect(text()).toMatch(/API and GraphiQL at http:\/\/127\.0\.0\.1:\d+\/graphql/), { timeout: 60_000, interval: 100 });
      expect(text()).toMatch(/demo client API key[^\n]*\n\s+email: "client@demo\.local"\n\s+key: "gmk_/);
      expect(text()).not.toContain('{"level"');
    } finally {
      child.stdin!.write("\x03");
    }
    expect(await exited, text()).toBe(0);
    expect(text()).toContain("INFO: stopped");
  });
});
