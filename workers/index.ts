import { logger } from "../infra/logger.ts";
import { type ScheduledJob, closeProducers, producerQueue, startWorker, upsertScheduler } from "../infra/queues.ts";
import { maintainInstances } from "../domain/instances/expiry.ts";
import { expireListings, rollListingEndDates } from "../domain/machines.ts";
import { startAuctionWorker } from "./auction.ts";
import { balanceWatchJob, startAutoBillingWorker } from "./auto-billing.ts";
import { machineLivenessJob } from "./machine-liveness.ts";
import { marketSamplerJob } from "./market-sampler.ts";
import { meteringJob } from "./metering.ts";
import { notificationsJob } from "./notifications.ts";
import { payoutsJob } from "./payouts.ts";

/** A periodic job: its scheduler (infra/queues.ts) and what its worker runs. */
export interface JobDefinition extends ScheduledJob {
  process(): Promise<unknown>;
}

/** Every background job of the system; later issues add auctions and metering here. */
export const jobs: JobDefinition[] = [
  // Rolls rolling end dates forward first, so such a listing never lapses; then expires the rest.
  { name: "offer-expiry", everyMs: 60_000, process: async () => ({ rolled: await rollListingEndDates(), expired: await expireListings() }) },
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

/**
 * Upserts each job's scheduler and starts its worker, then the auction and auto-billing workers.
 * The schedulers are upserted from this one place, so several processes starting together keep a
 * single schedule per job.
 */
export async function startWorkers(definitions: JobDefinition[] = jobs): Promise<Workers> {
  const workers: { close(): Promise<void> }[] = [];
  for (const job of definitions) {
    await upsertScheduler(producerQueue(job.name), job);
    workers.push(
      await startWorker(job.name, async () => {
        const result = await job.process();
        logger.debug({ job: job.name, result }, "job done");
        return result;
      }),
    );
  }
  workers.push(await startAuctionWorker(), await startAutoBillingWorker());
  return {
    async close() {
      // Workers first: each finishes its current job before closing.
      await Promise.all(workers.map((worker) => worker.close()));
      await closeProducers();
    },
  };
}
