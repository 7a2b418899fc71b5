import { Queue, Worker } from "bullmq";
import { config } from "../infra/config.ts";
import { logger } from "../infra/logger.ts";
import { redisConnection, redisKey } from "../infra/redis.ts";
import { attemptAutoBill } from "../domain/payments/autoBilling.ts";
import { watchBalances } from "../domain/payments/balanceWatch.ts";
import type { JobDefinition } from "./index.ts";

/** One job per auto-billing payment: its charge attempts, retried with backoff. */
export const AUTO_BILL_QUEUE = "auto-billing";

let queue: Queue | undefined;

function autoBillQueue(): Queue {
  // Producers fail fast while Redis is away; the payment stays PENDING and the next watch enqueues it.
  queue ??= new Queue(AUTO_BILL_QUEUE, { connection: redisConnection({ enableOfflineQueue: false }), prefix: redisKey("bull") });
  return queue;
}

/**
 * Enqueues a charge job per payment, once: the job id is the payment's, so the watch enqueueing a
 * PENDING payment again while its job exists adds nothing.
 */
export async function enqueueAutoBills(paymentIds: number[]): Promise<void> {
  if (!paymentIds.length) return;
  const { AUTO_BILL_ATTEMPTS, AUTO_BILL_RETRY_DELAY_MS } = config();
  const q = autoBillQueue();
  await q.waitUntilReady();
  await q.addBulk(
    paymentIds.map((paymentId) => ({
      name: "charge",
      data: { paymentId },
      opts: {
        jobId: `auto-bill-${paymentId}`,
        attempts: AUTO_BILL_ATTEMPTS,
        backoff: { type: "exponential", delay: AUTO_BILL_RETRY_DELAY_MS },
        removeOnComplete: 1000,
        removeOnFail: 1000,
      },
    })),
  );
}

export async function closeAutoBillQueue(): Promise<void> {
  const q = queue;
  queue = undefined;
  await q?.close();
}

/** Every 5 seconds: crossings of the alert and auto-billing thresholds (domain/payments/balanceWatch.ts). */
export const balanceWatchJob: JobDefinition = {
  name: "balance-watch",
  everyMs: 5_000,
  process: async () => {
    const result = await watchBalances();
    await enqueueAutoBills(result.autoBills);
    return result;
  },
};

export interface AutoBillingWorker {
  close(): Promise<void>;
}

/** The charge attempts; the last one allowed records the failure (domain/payments/autoBilling.ts). */
export async function startAutoBillingWorker(): Promise<AutoBillingWorker> {
  const connection = redisConnection();
  const worker = new Worker<{ paymentId: number }>(
    AUTO_BILL_QUEUE,
    (job) => attemptAutoBill(job.data.paymentId, job.attemptsMade + 1 >= (job.opts.attempts ?? 1)),
    { connection, prefix: redisKey("bull"), concurrency: 4 },
  );
  worker.on("failed", (job, err) =>
    logger.warn({ paymentId: job?.data.paymentId, attempt: job?.attemptsMade, err: err.message }, "auto-billing attempt failed"),
  );
  worker.on("error", (err) => logger.error({ err }, "auto-billing worker error"));
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      await connection.quit();
    },
  };
}
