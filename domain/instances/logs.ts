import { randomUUID } from "node:crypto";
import { z } from "zod";
import { prisma } from "../../infra/db.ts";
import { type EventPayload, eventStream, flatMapStream, listen, type LogRequest, publish } from "../../infra/pubsub.ts";
import { redis, redisKey } from "../../infra/redis.ts";
import { recordId } from "../apiKeys.ts";
import { AppError, NotFoundError } from "../errors.ts";
import { parseInput } from "../validation.ts";
import { instanceOnMachine } from "./service.ts";

/*
 * A container's stdout and stderr. The logs stay on the host: the API asks the machine's agent for
 * them (a `logRequests` event), the agent uploads the lines (uploadInstanceLogs) into a short-lived
 * Redis key per batch, and an `instanceLogs` event tells the waiting request which batches are its
 * own. A follow request has a lease the subscription renews while it is open; the agent stops
 * following once it lapses, so a vanished API process leaves no follower behind.
 */

export const MAX_TAIL_LINES = 5000;
/** Bytes of lines in one answer or upload. */
export const MAX_LOG_BYTES = 1_000_000;
/** How long a one-off request waits for the agent. */
const ANSWER_TIMEOUT_MS = 10_000;
/** A follow request lapses this long after its last renewal; the subscription renews it every third of that. */
export const FOLLOW_LEASE_SECONDS = 30;
/** Uploads and their request records outlive any reader by this much. */
const KEEP_SECONDS = 60;

/** The agent did not answer (offline, disconnected, or the instance has no container there). */
export class LogsUnavailableError extends AppError {
  constructor(message: string) {
    super(message, "LOGS_UNAVAILABLE");
  }
}

const tailSchema = z.object({
  instanceId: recordId,
  tail: z.number().int().min(1, "at least 1 line").max(MAX_TAIL_LINES, `at most ${MAX_TAIL_LINES} lines`),
});
const followSchema = tailSchema.extend({ tail: z.number().int().min(0).max(MAX_TAIL_LINES, `at most ${MAX_TAIL_LINES} lines`) });

/** The owner's instance (an instance key's userId is its owner's) that still has a container somewhere. */
async function readableInstance(userId: number, instanceId: number): Promise<{ id: number; machineId: number }> {
  const instance = await prisma.instance.findFirst({ where: { id: instanceId, clientId: userId }, select: { id: true, machineId: true, status: true } });
  if (!instance) throw new NotFoundError("Instance");
  if (instance.status === "DESTROYED") throw new LogsUnavailableError("The instance is destroyed: its container and logs are gone");
  return instance;
}

const requestKey = (requestId: string) => redisKey("logs", "request", requestId);
const batchKey = (requestId: string, batch: number) => redisKey("logs", "batch", requestId, String(batch));

/** Records the request (so that only it can be answered) and sends it to the machine's agent. */
async function sendRequest(machineId: number, request: LogRequest): Promise<void> {
  const ttl = request.follow ? FOLLOW_LEASE_SECONDS + KEEP_SECONDS : KEEP_SECONDS;
  await redis.set(requestKey(request.requestId), String(request.instanceId), "EX", ttl);
  publish("logRequests", machineId, { requests: [request] });
}

/** The lines of this request's batches, in order; each batch is read once. */
async function takeBatches(requestId: string, payload: EventPayload<"instanceLogs"> | null | undefined): Promise<string[][]> {
  const batches = (payload?.batches ?? []).filter(([id]) => id === requestId).map(([, batch]) => batch).sort((a, b) => a - b);
  if (batches.length === 0) return [];
  const texts = await Promise.all(batches.map((batch) => redis.getdel(batchKey(requestId, batch))));
  return texts.filter((text): text is string => text !== null).map((text) => JSON.parse(text) as string[]);
}

const mergeBatches = (a: EventPayload<"instanceLogs">, b: EventPayload<"instanceLogs">) => ({ batches: [...a.batches, ...b.batches] });

/** The last `tail` lines of the container's output, as the agent reads them now. */
export async function instanceLogs(userId: number, id: number, tail: number): Promise<string[]> {
  const input = parseInput(tailSchema, { instanceId: id, tail });
  const instance = await readableInstance(userId, input.instanceId);
  const requestId = randomUUID();
  const listener = listen("instanceLogs", instance.id, mergeBatches);
  try {
    await listener.ready;
    await sendRequest(instance.machineId, { requestId, instanceId: instance.id, tail: input.tail, follow: false });
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([listener.arrival(), new Promise((resolve) => (timer = setTimeout(resolve, deadline - Date.now())))]);
      clearTimeout(timer);
      const answer = await takeBatches(requestId, listener.drain());
      if (answer.length > 0) return answer.flat();
      if (Date.now() >= deadline) {
        throw new LogsUnavailableError(`The machine's agent did not answer within ${ANSWER_TIMEOUT_MS / 1000} seconds; it may be offline`);
      }
    }
  } finally {
    listener.close();
    await redis.del(requestKey(requestId));
  }
}

/**
 * The last `tail` lines (none for 0), then new lines as the container writes them, in batches, until
 * the subscriber leaves.
 */
export async function followInstanceLogs(userId: number, id: number, tail: number): Promise<AsyncIterableIterator<string[]>> {
  const input = parseInput(followSchema, { instanceId: id, tail });
  const instance = await readableInstance(userId, input.instanceId);
  const request: LogRequest = { requestId: randomUUID(), instanceId: instance.id, tail: input.tail, follow: true };
  let renewal: NodeJS.Timeout | undefined;
  const events = eventStream("instanceLogs", instance.id, { merge: mergeBatches });
  const lines = flatMapStream(events, async (event) => {
    if (event === null) {
      // Listening: ask now, and again before the lease lapses (a renewal sends no tail again).
      await sendRequest(instance.machineId, request);
      renewal = setInterval(() => {
        sendRequest(instance.machineId, { ...request, tail: 0 }).catch(() => {});
      }, (FOLLOW_LEASE_SECONDS * 1000) / 3);
      return [];
    }
    return (await takeBatches(request.requestId, event)).filter((batch) => batch.length > 0);
  });
  const iterator: AsyncIterableIterator<string[]> = {
    next: () => lines.next(),
    async return() {
      clearInterval(renewal);
      await redis.del(requestKey(request.requestId)).catch(() => {});
      return lines.return!();
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

const uploadSchema = z.object({
  instanceId: recordId,
  requestId: z.string().uuid(),
  lines: z
    .array(z.string())
    .max(MAX_TAIL_LINES, `at most ${MAX_TAIL_LINES} lines an upload`)
    .refine((lines) => lines.reduce((bytes, line) => bytes + Buffer.byteLength(line) + 1, 0) <= MAX_LOG_BYTES, `at most ${MAX_LOG_BYTES} bytes an upload`),
});

/** The agent's answer to a request for an instance of its machine; a request the API did not make is NotFound. */
export async function uploadInstanceLogs(machineId: number, input: z.input<typeof uploadSchema>): Promise<number> {
  const data = parseInput(uploadSchema, input);
  const instance = await instanceOnMachine(machineId, data.instanceId);
  if ((await redis.get(requestKey(data.requestId))) !== String(instance.id)) throw new NotFoundError("LogRequest");
  const batch = await redis.incr(redisKey("logs", "batches", data.requestId));
  await redis.expire(redisKey("logs", "batches", data.requestId), FOLLOW_LEASE_SECONDS + KEEP_SECONDS);
  await redis.set(batchKey(data.requestId, batch), JSON.stringify(data.lines), "EX", KEEP_SECONDS);
  publish("instanceLogs", instance.id, { batches: [[data.requestId, batch]] });
  return data.lines.length;
}
