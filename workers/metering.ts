import { pathToFileURL } from "node:url";
import { Queue, Worker } from "bullmq";
import { logger } from "../infra/logger.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
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

export interface MeteringWorker {
  close(): Promise<void>;
}

/**
 * The metering worker alone (its own process in the fault test and where it is scaled apart). The
 * scheduler is upserted again whenever Redis comes back, because a Redis restarted without
 * persistence has forgotten it.
 */
export async function startMeteringWorker(): Promise<MeteringWorker> {
  const connection = redisConnection();
  const prefix = redisKey("bull");
  const queue = new Queue(meteringJob.name, { connection, prefix });
  const upsert = () =>
    queue.upsertJobScheduler(
      meteringJob.name,
      { every: meteringJob.everyMs },
      { name: meteringJob.name, data: {}, opts: { removeOnComplete: 100, removeOnFail: 500 } },
    );
  await upsert();
  connection.on("ready", () => void upsert().catch((err) => logger.warn({ err }, "could not upsert the metering scheduler")));
  const worker = new Worker(meteringJob.name, () => meteringJob.process(), {
    connection,
    prefix,
    // A killed worker's tick is taken over quickly; running it twice is harmless (the clock row serializes ticks).
    lockDuration: 5_000,
    stalledInterval: 2_000,
  });
  worker.on("failed", (job, err) => logger.error({ id: job?.id, err }, "metering tick failed"));
  worker.on("error", (err) => logger.error({ err }, "metering worker error"));
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      await queue.close();
      await connection.quit();
    },
  };
}

// `node --import tsx workers/metering.ts`: the metering worker as a separate process.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const metering = await startMeteringWorker();
  logger.info("metering worker started");
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void metering.close().finally(() => process.exit(0)));
  }
}
