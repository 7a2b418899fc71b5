import { Queue, Worker } from "bullmq";
import { config } from "../infra/config.ts";
import { logger } from "../infra/logger.ts";
import { redisConnection } from "../infra/redis.ts";
import { closeAuctionQueue } from "../domain/auction/service.ts";
import { maintainInstances } from "../domain/instances/expiry.ts";
import { startAuctionWorker } from "./auction.ts";
import { balanceWatchJob, closeAutoBillQueue, startAutoBillingWorker } from "./auto-billing.ts";
import { machineLivenessJob } from "./machine-liveness.ts";
import { marketSamplerJob } from "./market-sampler.ts";
import { meteringJob } from "./metering.ts";
import { notificationsJob } from "./notifications.ts";
import { expireOffers } from "./offer-expiry.ts";
import { payoutsJob } from "./payouts.ts";

/** A queue with its worker, and the scheduler that feeds it when the job is periodic. */
export interface JobDefinition {
  /** Queue name and job scheduler id (no `:`). */
  name: string;
  /** Every this many milliseconds, or on a cron `pattern` (UTC). */
  everyMs?: number;
  pattern?: string;
  /** Attempts of a failed job, the first retry after backoffMs (doubling); one attempt without. */
  retry?: { attempts: number; backoffMs: number };
  process(): Promise<unknown>;
}

/** Every background job of the system; later issues add auctions and metering here. */
export const jobs: JobDefinition[] = [
  { name: "offer-expiry", everyMs: 60_000, process: () => expireOffers() },
  // Ends contracts at their end date and requeues lost clearings.
  { name: "instance-maintenance", everyMs: 5_000, process: () => maintainInstances() },
  meteringJob,
  machineLivenessJob,
  balanceWatchJob,
  notificationsJob,
  payoutsJob,
  marketSamplerJob,
];

export interface Workers {
  close(): Promise<void>;
}

/** BullMQ prefix: the project's Redis prefix, so that test files and deployments never share queues. */
export function queuePrefix(): string {
  return `${config().REDIS_PREFIX}:bull`;
}

/**
 * Upserts each job's scheduler and starts its worker. The schedulers are upserted from this one
 * place, so several processes starting together keep a single schedule per job.
 */
export async function startWorkers(definitions: JobDefinition[] = jobs): Promise<Workers> {
  const connection = redisConnection();
  const prefix = queuePrefix();
  const queues: Queue[] = [];
  const workers: Worker[] = [];
  for (const job of definitions) {
    const queue = new Queue(job.name, { connection, prefix });
    queues.push(queue);
    await queue.upsertJobScheduler(
      job.name,
      job.pattern ? { pattern: job.pattern, tz: "UTC" } : { every: job.everyMs },
      {
        name: job.name,
        data: {},
        opts: {
          removeOnComplete: 100,
          removeOnFail: 500,
          ...(job.retry ? { attempts: job.retry.attempts, backoff: { type: "exponential", delay: job.retry.backoffMs } } : {}),
        },
      },
    );
    const worker = new Worker(
      job.name,
      async () => {
        const result = await job.process();
        logger.debug({ job: job.name, result }, "job done");
        return result;
      },
      { connection, prefix },
    );
    worker.on("failed", (failed, err) => logger.error({ job: job.name, id: failed?.id, err }, "job failed"));
    worker.on("error", (err) => logger.error({ job: job.name, err }, "worker error"));
    workers.push(worker);
  }
  const auction = await startAuctionWorker();
  const autoBilling = await startAutoBillingWorker();
  return {
    async close() {
      // Workers first: each finishes its current job before closing.
      await Promise.all([auction.close(), autoBilling.close(), ...workers.map((worker) => worker.close())]);
      await Promise.all([closeAuctionQueue(), closeAutoBillQueue(), ...queues.map((queue) => queue.close())]);
      await connection.quit();
    },
  };
}
