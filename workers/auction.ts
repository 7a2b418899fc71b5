import { pathToFileURL } from "node:url";
import { logger } from "../infra/logger.ts";
import { type StartedWorker, startWorker } from "../infra/queues.ts";
import { AUCTION_QUEUE, clearMachineNow, requeueStaleClearings } from "../domain/auction/service.ts";

export type AuctionWorker = StartedWorker<{ machineId: number }>;

/**
 * The auction worker: clears one machine per job. Jobs are deduplicated per machine, so one machine
 * is never cleared twice at once; different machines clear in parallel. A worker killed mid-clearing
 * loses nothing: the clearing's transaction rolls back, the job is found stalled after its lock
 * expires, and the machine stays flagged for the maintenance job besides.
 */
export async function startAuctionWorker(options: { concurrency?: number } = {}): Promise<AuctionWorker> {
  const auction = await startWorker<{ machineId: number }, number[]>(
    AUCTION_QUEUE,
    async (job) => {
      const changes = await clearMachineNow(job.data.machineId);
      if (changes.length) logger.debug({ machineId: job.data.machineId, changes }, "machine cleared");
      // The instances whose status changed, for "completed" listeners (the benchmark times them).
      return changes.map((change) => change.instanceId);
    },
    {
      concurrency: options.concurrency ?? 8,
      // Clearing takes milliseconds: a dead worker's job is taken over within seconds.
      lockDuration: 10_000,
      stalledInterval: 5_000,
      removeOnComplete: { count: 0 },
      describe: (job) => ({ machineId: job.data.machineId }),
    },
  );
  // Clearings requested before this start (a crash, a restart) run now rather than at the next sweep.
  await requeueStaleClearings(0);
  return auction;
}

// `node --import tsx workers/auction.ts`: the auction worker alone, as a separate process (more
// workers scale the auction out; deduplication keeps each machine's clearings one at a time).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const auction = await startAuctionWorker();
  logger.info("auction worker started");
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void auction.close().finally(() => process.exit(0)));
  }
}
