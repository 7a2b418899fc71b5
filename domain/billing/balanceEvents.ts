import { prisma } from "../../infra/db.ts";
import { publishEach } from "../../infra/pubsub.ts";
import type { TickResult } from "./metering.ts";

/**
 * After a metering tick commits: one balance event per account it charged or credited (the clients
 * and hosts of the time accruals overlapping the tick's window: the open ones from their narrow
 * table, and those closed since the window's start), whatever the number of their
 * instances. Ticks come once a second, each event names the second it metered up to, and the balance
 * subscription delivers one event per metered second, so a metered balance never floods its subscribers.
 */
export async function publishMeteredBalances<T extends TickResult>(tick: T): Promise<T> {
  if (tick.from === null || tick.to === null) return tick;
  const accounts = await prisma.$queryRawUnsafe<{ id: number }[]>(
    `SELECT DISTINCT unnest(ARRAY[client_id, host_id]) AS id
       FROM (SELECT client_id, host_id FROM open_time_accrual WHERE started_sec < $2
             UNION ALL
             SELECT client_id, host_id FROM time_accrual WHERE ended_at > to_timestamp($1) AND started_at < to_timestamp($2)) a`,
    tick.from,
    tick.to,
  );
  const meteredUntil = tick.to;
  publishEach("balance", accounts.map((account) => account.id), () => ({ immediate: false, meteredUntil }));
  return tick;
}
