import pg from "pg";
import { describe, expect, it } from "vitest";
import { meterUpTo } from "../domain/billing/metering.ts";
import { RateLimitedError } from "../domain/errors.ts";
import { hashPassword, verifyPassword } from "../domain/passwordHashing.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";

/** What a flood of requests must not take from everyone else. */

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
