import { config } from "../infra/config.ts";
import { type StartedWorker, producerQueue, startWorker } from "../infra/queues.ts";
import { attemptAutoBill } from "../domain/payments/autoBilling.ts";
import { watchBalances } from "../domain/payments/balanceWatch.ts";
import type { JobDefinition } from "./index.ts";

/** One job per auto-billing payment: its charge attempts, retried with backoff. */
export const AUTO_BILL_QUEUE = "auto-billing";

/**
 * Enqueues a charge job per payment, once: the job id is the payment's, so the watch enqueueing a
 * PENDING payment again while its job exists adds nothing.
 */
export async function enqueueAutoBills(paymentIds: number[]): Promise<void> {
  if (!paymentIds.length) return;
  const { AUTO_BILL_ATTEMPTS, AUTO_BILL_RETRY_DELAY_MS } = config();
  // Fails while Redis is away: the payment stays PENDING and the next watch enqueues it.
  const q = producerQueue(AUTO_BILL_QUEUE);
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

/** The charge attempts; the last one allowed records the failure (domain/payments/autoBilling.ts). */
export function startAutoBillingWorker(): Promise<StartedWorker<{ paymentId: number }>> {
  return startWorker<{ paymentId: number }>(
    AUTO_BILL_QUEUE,
    (job) => attemptAutoBill(job.data.paymentId, job.attemptsMade + 1 >= (job.opts.attempts ?? 1)),
    { concurrency: 4, failedLevel: "warn", describe: (job) => ({ paymentId: job.data.paymentId }) },
  );
}
