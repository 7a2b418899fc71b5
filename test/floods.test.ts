import { randomBytes } from "node:crypto";
import pg from "pg";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { describe, expect, it } from "vitest";
import { meterUpTo } from "../domain/billing/metering.ts";
import { RateLimitedError } from "../domain/errors.ts";
import { hashPassword, passwordWorkInLine, verifyPassword } from "../domain/passwordHashing.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { redis, redisKey } from "../infra/redis.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";

/** What a flood of requests must not take from everyone else. */

const app = useTestApp();

/** The request pool's size (infra/db.ts). */
const REQUEST_POOL = 20;

describe("metering under request load", () => {
  it("charges while every request connection is taken", async () => {
    // Another session holds a lock; REQUEST_POOL transactions of the request pool wait for it,
    // holding every connection of that pool.
    await meterUpTo(new Date());
    const holder = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await holder.connect();
    await holder.query("SELECT pg_advisory_lock(4242)");
    const waiting = Array.from({ length: REQUEST_POOL }, () =>
      prisma.$transaction((tx) => tx.$queryRawUnsafe("SELECT pg_advisory_xact_lock(4242)"), { maxWait: 60_000, timeout: 60_000 }).catch(() => null),
    );
    await expect
      .poll(async () => Number((await holder.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).rows[0].count))
      .toBe(REQUEST_POOL);
    // A request now would wait for a connection; metering does not.
    const tick = await meterUpTo(new Date(Date.now() + 5_000));
    expect(tick.to).not.toBeNull();
    await holder.query("SELECT pg_advisory_unlock_all()");
    await Promise.all(waiting);
    await holder.end();
  });
});

describe("password hashing under a login flood", () => {
  it("runs a bounded number at once, queues a bounded number, and refuses the rest at once", async () => {
    const { PASSWORD_HASHES_AT_ONCE, PASSWORD_HASH_QUEUE } = config();
    const stored = await hashPassword("s3cret-password");
    const flood = PASSWORD_HASHES_AT_ONCE + PASSWORD_HASH_QUEUE + 12;
    const outcomes = await Promise.allSettled(Array.from({ length: flood }, () => verifyPassword(stored, "wrong-password")));
    const refused = outcomes.filter((outcome) => outcome.status === "rejected");
    expect(refused).toHaveLength(12);
    for (const outcome of refused) expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(RateLimitedError);
    expect(outcomes.filter((outcome) => outcome.status === "fulfilled" && outcome.value === false)).toHaveLength(flood - 12);
    // Nothing is left holding a slot.
    expect(await verifyPassword(stored, "s3cret-password")).toBe(true);
  });
});

const LOGIN = `mutation ($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename ... on Error { code } }
}`;

describe("a login flood from many addresses", () => {
  it("leaves /healthz answering while logins wait, and refuses what the hashing line cannot hold at once, counting it against nobody", async () => {
    const { PASSWORD_HASHES_AT_ONCE, PASSWORD_HASH_QUEUE, LOGIN_ATTEMPTS_PER_MINUTE } = config();
    const capacity = PASSWORD_HASHES_AT_ONCE + PASSWORD_HASH_QUEUE;
    const flood = capacity + 48;
    const addresses = Array.from({ length: flood }, (_, i) => `127.9.${Math.floor(i / 200)}.${(i % 200) + 2}`);
    let answered = 0;
    const logins = addresses.map(async (address) => {
      const result = await app.gqlFrom(address, LOGIN, { email: `nobody-${randomBytes(6).toString("hex")}@example.com`, password: "guess-guess" });
      answered++;
      return { address, outcome: result.data?.login?.code ?? result.errors?.[0]?.extensions?.code };
    });
    // The line fills up; health is asked while it is still full.
    await expect.poll(passwordWorkInLine, { timeout: 20_000, interval: 5 }).toBeGreaterThanOrEqual(capacity);
    const health = await fetch(`${app.baseUrl}/healthz`);
    const inLineAtHealth = passwordWorkInLine();
    const answeredAtHealth = answered;
    expect(health.status).toBe(200);
    expect(inLineAtHealth).toBeGreaterThan(0);
    expect(answeredAtHealth).toBeLessThan(flood);
    const outcomes = await Promise.all(logins);
    const refused = outcomes.filter((login) => login.outcome === "RATE_LIMITED");
    expect(refused.length).toBeGreaterThan(0);
    expect(outcomes.every((login) => login.outcome === "RATE_LIMITED" || login.outcome === "INVALID_CREDENTIALS")).toBe(true);
    // A login refused for load counted against no address: each one still has its whole minute's budget.
    const byIp = new RateLimiterRedis({ storeClient: redis, keyPrefix: redisKey("ratelimit", "login-ip"), points: LOGIN_ATTEMPTS_PER_MINUTE, duration: 60 });
    // The server sees an IPv4 client as the address itself or IPv4-mapped, as it listens.
    const spent = async (address: string) => ((await byIp.get(address)) ?? (await byIp.get(`::ffff:${address}`)))?.consumedPoints ?? 0;
    for (const { address } of refused) expect(await spent(address)).toBe(0);
    for (const { address } of outcomes.filter((login) => login.outcome === "INVALID_CREDENTIALS")) expect(await spent(address)).toBe(1);
  }, 120_000);
});

const SSH_KEYS = `{ me { sshKeys { nodes { id } } } }`;

describe("concurrent HTTP operations of one key", () => {
  it("runs HTTP_MAX_OPERATIONS_PER_KEY at once and refuses one more with 429 RATE_LIMITED; other keys go on; the slots free when answered", async () => {
    const { HTTP_MAX_OPERATIONS_PER_KEY } = config();
    const [busy, other] = [await createAccount("busy"), await createAccount("other")];
    // Reading SSH keys waits while another session holds the table locked.
    const holder = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query("LOCK TABLE ssh_key IN ACCESS EXCLUSIVE MODE");
    const held = Array.from({ length: HTTP_MAX_OPERATIONS_PER_KEY }, () => app.gql(SSH_KEYS, {}, busy.key));
    await expect
      .poll(async () => Number((await holder.query("SELECT count(*) FROM pg_locks WHERE relation = 'ssh_key'::regclass AND NOT granted")).rows[0].count))
      .toBe(HTTP_MAX_OPERATIONS_PER_KEY);
    // Every one of them is still waiting: one more is refused at once.
    const response = await fetch(app.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${busy.key}` },
      body: JSON.stringify({ query: "{ me { email } }" }),
    });
    expect(response.status).toBe(429);
    const refused = (await response.json()) as { data?: unknown; errors: { extensions: { code: string } }[] };
    expect(refused.errors[0].extensions.code).toBe("RATE_LIMITED");
    expect(refused.data ?? null).toBeNull();
    expect((await app.gql("{ me { email } }", {}, other.key)).data.me.email).toMatch(/^other-/);
    await holder.query("COMMIT");
    await holder.end();
    for (const result of await Promise.all(held)) expect(result.data.me.sshKeys.nodes).toEqual([]);
    expect((await app.gql("{ me { email } }", {}, busy.key)).data.me.email).toMatch(/^busy-/);
  });
});
