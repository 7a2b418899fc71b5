import { pathToFileURL } from "node:url";
import { Queue, Worker } from "bullmq";
import { logger } from "../infra/logger.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
import { stopExhaustedAccounts } from "../domain/billing/exhaustion.ts";
import { type TickResult, meterUpTo } from "../domain/billing/metering.ts";
import type { JobDefinition } from "./index.ts";

/** One metering tick: charge up to now (domain/billing/metering.ts), then stop accounts that ran out. */
export async function runMetering(now = new Date()): Promise<TickResult & { stopped: number }> {
  const tick = await meterUpTo(now);
  const stopped = await stopExhaustedAccounts(now);
  return { ...tick, stopped };
}

/**
 * Every second. A tick charges whatever elapsed since the clock, so late, lost, retried or
 * duplicated jobs change when the balance moves, never by how much.
 */
export const meteringJob: JobDefinition = { name: "metering", everyMs: 1000, process: () => runMetering() };

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
