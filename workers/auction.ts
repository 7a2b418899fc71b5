import { pathToFileURL } from "node:url";
import { logger } from "../infra/logger.ts";
import { type StartedWorker, startWorker } from "../infra/queues.ts";
import { AUCTION_QUEUE, type ClearingChange, clearMachinesNow, requeueStaleClearings } from "../domain/auction/service.ts";

export type AuctionWorker = StartedWorker<{ machineId: number }>;

/** Clearing jobs one worker process holds at once: the most machines one of its transactions clears together. */
export const AUCTION_WORKER_CONCURRENCY = 32;

interface Caller {
  resolve(changes: ClearingChange[]): void;
  reject(err: unknown): void;
}

/**
 * Group commit of clearings: the machines handed in while a transaction clears wait and are then
 * cleared together in the next one (clearMachinesNow), so a burst of clearings costs a few
 * transactions rather than one each. One batch runs at a time; each caller gets its own machine's
 * outcome.
 */
function clearingBatcher(): (machineId: number) => Promise<ClearingChange[]> {
  const waiting = new Map<number, Caller[]>();
  let running = false;
  const run = async () => {
    running = true;
    while (waiting.size) {
      const batch = new Map(waiting);
      waiting.clear();
      const cleared = await clearMachinesNow([...batch.keys()]);
      for (const [machineId, callers] of batch) {
        const outcome = cleared.get(machineId)!;
        for (const caller of callers) outcome.then(caller.resolve, caller.reject);
      }
    }
    running = false;
  };
  return (machineId) => {
    const outcome = new Promise<ClearingChange[]>((resolve, reject) => waiting.set(machineId, [...(waiting.get(machineId) ?? []), { resolve, reject }]));
    if (!running) void run();
    return outcome;
  };
}

/**
 * The auction worker: clears the machines of the jobs it holds, together (clearingBatcher). Jobs
 * are deduplicated per machine, so one machine is never cleared twice at once. A worker killed
 * mid-clearing loses nothing: the clearing's transaction rolls back, the jobs are found stalled
 * after their locks expire, and the machines stay flagged for the maintenance job besides.
 */
export async function startAuctionWorker(options: { concurrency?: number } = {}): Promise<AuctionWorker> {
  const clear = clearingBatcher();
  const auction = await startWorker<{ machineId: number }, number[]>(
    AUCTION_QUEUE,
    async (job) => {
      const changes = await clear(job.data.machineId);
      if (changes.length) logger.debug({ machineId: job.data.machineId, changes }, "machine cleared");
      // The instances whose status changed, for "completed" listeners (the benchmark times them).
      return changes.map((change) => change.instanceId);
    },
    {
      concurrency: options.concurrency ?? AUCTION_WORKER_CONCURRENCY,
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
