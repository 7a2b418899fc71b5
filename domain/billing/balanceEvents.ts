import { publishEach } from "../../infra/pubsub.ts";
import type { TickResult } from "./metering.ts";

/**
 * After a metering tick commits: one balance event per account whose balance it moved (the
 * clients of its phase it charged and their hosts), whatever the number of their instances. Each
 * phase is metered once a second, each event names the second it metered up to, and the balance
 * subscription delivers one event per metered second, so a metered balance never floods its
 * subscribers.
 */
export function publishMeteredBalances<T extends TickResult>(tick: T): T {
  if (tick.to === null) return tick;
  const meteredUntil = tick.to;
  publishEach("balance", tick.accounts, () => ({ immediate: false, meteredUntil }));
  return tick;
}
