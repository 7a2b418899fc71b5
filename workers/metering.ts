import { pathToFileURL } from "node:url";
import { logger } from "../infra/logger.ts";
import { type StartedWorker, producerQueue, startWorker, upsertScheduler } from "../infra/queues.ts";
import { publishMeteredBalances } from "../domain/billing/balanceEvents.ts";
import { stopExhaustedAccounts, stopHeldAccounts } from "../domain/billing/exhaustion.ts";
import { METERING_PHASES, type TickResult, meterOldestPhase } from "../domain/billing/metering.ts";
import type { JobDefinition } from "./index.ts";

/**
 * One metering tick: charge the due phase up to now (domain/billing/metering.ts), stop the
 * accounts it charged that ran out and those it put on hold, and publish a balance event for each account it moved.
 */
export async function runMetering(now = new Date()): Promise<TickResult & { stopped: number }> {
  const tick = await meterOldestPhase(now);
  const stopped =
    (tick.accounts.length ? await stopExhaustedAccounts(now, tick.accounts) : 0) + (tick.held.length ? await stopHeldAccounts(tick.held, now) : 0);
  return publishMeteredBalances({ ...tick, stopped });
}

/**
 * Every second for each phase, a phase every 1000 / METERING_PHASES ms. A tick charges whatever
 * elapsed since its phase's clock, so late, lost, retried or duplicated jobs change when a balance
 * moves, never by how much.
 */
export const meteringJob: JobDefinition = { name: "metering", everyMs: 1000 / METERING_PHASES, process: () => runMetering() };

/**
 * The metering worker alone (its own process in the fault test and where it is scaled apart). The
 * scheduler is upserted again whenever Redis comes back, because a Redis restarted without
 * persistence has forgotten it.
 */
export async function startMeteringWorker(): Promise<StartedWorker<unknown>> {
  const queue = producerQueue(meteringJob.name);
  const upsert = () => upsertScheduler(queue, meteringJob).catch((err) => logger.warn({ err }, "could not upsert the metering scheduler"));
  await upsertScheduler(queue, meteringJob);
  return startWorker(meteringJob.name, () => meteringJob.process(), {
    // A killed worker's tick is taken over quickly; running it twice is harmless (the clock row serializes ticks).
    lockDuration: 5_000,
    stalledInterval: 2_000,
    onReconnect: () => void upsert(),
  });
}

// `node --import tsx workers/metering.ts`: the metering worker as a separate process.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const metering = await startMeteringWorker();
  logger.info("metering worker started");
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void metering.close().finally(() => process.exit(0)));
  }
}
