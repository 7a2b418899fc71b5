import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { closeAuctionQueue } from "../domain/auction/service.ts";
import { meterUpTo } from "../domain/billing/metering.ts";
import { prisma } from "../infra/db.ts";

/** What a flood of requests must not take from everyone else. */
afterAll(() => closeAuctionQueue());

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
