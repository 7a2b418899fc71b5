import { type Job, type Processor, Queue, Worker, type WorkerOptions } from "bullmq";
import type { Redis } from "ioredis";
import { logger } from "./logger.ts";
import { redisConnection, redisKey } from "./redis.ts";

/*
 * Every BullMQ queue and worker is made here: one prefix, one way to produce, schedule and consume,
 * every connection error logged rather than left unhandled.
 */

/** BullMQ prefix: the project's Redis prefix, so that test files and deployments never share queues. */
export function queuePrefix(): string {
  return redisKey("bull");
}

const producers = new Map<string, { queue: Queue; connection: Redis }>();

/**
 * The process's producer for the queue `name`, made on first use. Producers fail fast while Redis
 * is away (enableOfflineQueue off) instead of queueing commands: their callers keep every job
 * recoverable without Redis (a flag on the row, a PENDING payment) and catch the failure.
 */
export function producerQueue(name: string): Queue {
  let producer = producers.get(name);
  if (!producer) {
    const connection = redisConnection({ enableOfflineQueue: false });
    const queue = new Queue(name, { connection, prefix: queuePrefix() });
    connection.on("error", (err) => logger.warn({ err: err.message, queue: name }, "producer connection error"));
    queue.on("error", (err) => logger.warn({ err: err.message, queue: name }, "producer error"));
    producer = { queue, connection };
    producers.set(name, producer);
  }
  return producer.queue;
}

/** Closes the producers made so far (the next use makes new ones). */
export async function closeProducers(): Promise<void> {
  const all = [...producers.values()];
  producers.clear();
  await Promise.all(
    all.map(async ({ queue, connection }) => {
      await queue.close();
      connection.disconnect();
    }),
  );
}

/** A periodic job: its queue, scheduler id and worker share the name. */
export interface ScheduledJob {
  /** Queue name and job scheduler id (no `:`). */
  name: string;
  /** Every this many milliseconds, or on a cron `pattern` (UTC). */
  everyMs?: number;
  pattern?: string;
  /** Attempts of a failed job, the first retry after backoffMs (doubling); one attempt without. */
  retry?: { attempts: number; backoffMs: number };
}

/**
 * Creates or updates the job's scheduler. A scheduler makes its next job only when the last one
 * starts, so upserting it again (several processes starting together) keeps a single schedule.
 */
export async function upsertScheduler(queue: Queue, job: ScheduledJob): Promise<void> {
  await queue.upsertJobScheduler(job.name, job.pattern ? { pattern: job.pattern, tz: "UTC" } : { every: job.everyMs }, {
    name: job.name,
    data: {},
    opts: {
      removeOnComplete: 100,
      removeOnFail: 500,
      ...(job.retry ? { attempts: job.retry.attempts, backoff: { type: "exponential", delay: job.retry.backoffMs } } : {}),
    },
  });
}

export interface StartedWorker<Data> {
  worker: Worker<Data>;
  /** Lets the current jobs finish, then closes the worker's connection. */
  close(): Promise<void>;
}

/**
 * A worker on the queue `name` with its own connection, its failures logged (`failedLevel`: warn
 * where a failed attempt is retried as a matter of course), ready when it resolves.
 */
export async function startWorker<Data, Result = unknown>(
  name: string,
  processor: Processor<Data, Result>,
  options: Omit<WorkerOptions, "connection" | "prefix"> & {
    failedLevel?: "warn" | "error";
    /** What the failure log says about the job. */
    describe?: (job: Job<Data>) => object;
    /** Called each time the worker's connection is ready again after losing Redis. */
    onReconnect?: () => void;
  } = {},
): Promise<StartedWorker<Data>> {
  const { failedLevel = "error", describe = (job: Job<Data>) => ({ id: job.id }), onReconnect, ...workerOptions } = options;
  const connection = redisConnection();
  const worker = new Worker<Data, Result>(name, processor, { ...workerOptions, connection, prefix: queuePrefix() });
  worker.on("failed", (job, err) =>
    logger[failedLevel]({ queue: name, ...(job ? describe(job) : {}), attempt: job?.attemptsMade, err }, "job failed"),
  );
  worker.on("error", (err) => logger.error({ queue: name, err }, "worker error"));
  await worker.waitUntilReady();
  if (onReconnect) connection.on("ready", onReconnect);
  return {
    worker: worker as unknown as Worker<Data>,
    async close() {
      await worker.close();
      await connection.quit();
    },
  };
}
