import type { Redis } from "ioredis";
import { logger } from "./logger.ts";
import { redisConnection, redisKey } from "./redis.ts";

/*
 * Cross-process events over Redis pub/sub: every API process, worker and the benchmark publish and
 * subscribe through here. Events carry ids only; subscription fields refetch what the client
 * selects. Each event key is one Redis channel (under the project's Redis prefix: channels are
 * global to a Redis server, so test files and deployments sharing one never meet), and one message
 * carries every id an action concerns: a metering tick that moves 5,000 balances publishes one
 * message, not 5,000, and each process parses it once and hands each id's payload to its own
 * listeners. Publishing is fire-and-forget after the transaction commits: a subscriber that misses
 * an event (its socket dropped) gets the current state when it subscribes again, because every
 * subscription starts with it.
 */
export type Events = {
  /** Instances of the account whose status or message changed. */
  instanceStatus: [userId: number, event: { instanceIds: number[] }];
  /**
   * The account's balance moved: by a payment or payout (`immediate`, never held back), by the
   * metering tick that charged up to `meteredUntil` (epoch seconds), or by a usage report.
   */
  balance: [userId: number, event: { immediate: boolean; meteredUntil?: number }];
  /** The desired state of the machine's instances changed (or may have: subscribers refetch it). */
  assignments: [machineId: number, event: { machineId: number }];
  /** Bids of the account whose standing or price to win a clearing changed. */
  bids: [userId: number, event: { instanceIds: number[] }];
  /** A clearing of the machine committed: its order book may have changed (one event per clearing). */
  orderBook: [machineId: number, event: { machineId: number }];
  /** Asks the machine's agent for instances' logs (domain/instances/logs.ts). */
  logRequests: [machineId: number, event: { requests: LogRequest[] }];
  /** The agent uploaded log lines for these requests: [requestId, batch] pairs, read from Redis. */
  instanceLogs: [instanceId: number, event: { batches: [requestId: string, batch: number][] }];
};

export interface LogRequest {
  requestId: string;
  instanceId: number;
  /** Lines from the end to send first (0: none). */
  tail: number;
  /** Keep sending new lines until the request's lease runs out (renewed by sending it again). */
  follow: boolean;
}
export type EventKey = keyof Events;
export type EventPayload<K extends EventKey> = Events[K][1];
/** What goes over the wire: each id with its payload. */
type Message<K extends EventKey> = [id: number, payload: EventPayload<K>][];
type Listener = (payload: any) => void;

interface Connections {
  publishClient: Redis;
  subscribeClient: Redis;
  /** Local listeners by `<key>:<id>`. */
  listeners: Map<string, Set<Listener>>;
  /** The SUBSCRIBE of each key's channel, sent with the key's first listener. */
  subscribed: Map<EventKey, Promise<void>>;
}

let connections: Connections | undefined;

export function eventChannel(key: EventKey): string {
  return redisKey("events", key);
}

/** The two Redis connections, opened on first use (a process that never publishes opens none). */
function open(): Connections {
  if (connections) return connections;
  // Auto-pipelined: the publishes of one event-loop turn (a request's two events, a clearing batch's
  // four, those of concurrent requests) go out as one socket write.
  const publishClient = redisConnection({ lazyConnect: false, enableAutoPipelining: true });
  // No ready check: its INFO would fail on a connection whose queued SUBSCRIBEs went out first
  // (ioredis "Connection in subscriber mode").
  const subscribeClient = redisConnection({ lazyConnect: false, enableReadyCheck: false });
  for (const client of [publishClient, subscribeClient]) {
    client.on("error", (err) => logger.warn({ err: err.message }, "pubsub redis connection error"));
  }
  const listeners = new Map<string, Set<Listener>>();
  const channelPrefix = redisKey("events", "");
  subscribeClient.on("message", (channel: string, message: string) => {
    const key = channel.slice(channelPrefix.length);
    for (const [id, payload] of JSON.parse(message) as Message<EventKey>) {
      const topicListeners = listeners.get(`${key}:${id}`);
      if (topicListeners) for (const listener of topicListeners) listener(payload);
    }
  });
  connections = { publishClient, subscribeClient, listeners, subscribed: new Map() };
  return connections;
}

export function publish<K extends EventKey>(key: K, id: number, payload: EventPayload<K>): void {
  publishEach(key, [id], () => payload);
}

/** Publishes `payload` once per distinct id, all in one message: one event per affected account or machine, never per row. */
export function publishEach<K extends EventKey>(key: K, ids: Iterable<number>, payload: (id: number) => EventPayload<K>): void {
  const message: Message<K> = [...new Set(ids)].map((id) => [id, payload(id)]);
  if (message.length === 0) return;
  open()
    .publishClient.publish(eventChannel(key), JSON.stringify(message))
    .catch((err: Error) => logger.warn({ err: err.message, key }, "pubsub publish failed"));
}

/** How many listeners this process holds (subscriptions open on it), for diagnostics and leak checks. */
export function listenerCount(): number {
  let count = 0;
  for (const topicListeners of connections?.listeners.values() ?? []) count += topicListeners.size;
  return count;
}

/** Calls `listener` with each payload published for `id` from now on; returns its removal. */
function addListener<K extends EventKey>(key: K, id: number, listener: (payload: EventPayload<K>) => void): { ready: Promise<void>; remove(): void } {
  const { subscribeClient, listeners, subscribed } = open();
  let ready = subscribed.get(key);
  if (!ready) {
    ready = subscribeClient.subscribe(eventChannel(key)).then(() => undefined);
    // A failed SUBSCRIBE is tried again by the next listener.
    ready.catch((err: Error) => {
      logger.warn({ err: err.message, key }, "pubsub subscribe failed");
      subscribed.delete(key);
    });
    subscribed.set(key, ready);
  }
  const topic = `${key}:${id}`;
  let topicListeners = listeners.get(topic);
  if (!topicListeners) listeners.set(topic, (topicListeners = new Set()));
  topicListeners.add(listener);
  return {
    ready,
    remove() {
      topicListeners.delete(listener);
      if (topicListeners.size === 0 && listeners.get(topic) === topicListeners) listeners.delete(topic);
    },
  };
}

/**
 * Events of one topic for a subscription, coalesced: `next()` resolves with every payload that
 * arrived since the previous call merged by `merge`, so a slow client gets the latest state once
 * instead of a queue of stale ones. `ready` resolves once Redis has confirmed the channel
 * subscription: an event published after that is never missed, so a subscription reads its initial
 * state after awaiting it.
 */
export interface TopicListener<P> {
  ready: Promise<void>;
  next(): Promise<P>;
  /** Resolves once something has arrived that `drain()` would return (at once if it already has). */
  arrival(): Promise<void>;
  /** What arrived since the last `next()` or `drain()`, without waiting. */
  drain(): P | undefined;
  /** When the first of the payloads that the last `next()` or `drain()` returned arrived (Date.now()). */
  readonly arrivedAt: number;
  close(): void;
}

export function listen<K extends EventKey>(
  key: K,
  id: number,
  merge: (a: EventPayload<K>, b: EventPayload<K>) => EventPayload<K>,
): TopicListener<EventPayload<K>> {
  let pending: EventPayload<K> | undefined;
  let pendingSince = 0;
  let arrivedAt = 0;
  let wake: (() => void) | undefined;
  let closed = false;
  const subscription = addListener(key, id, (payload) => {
    if (pending === undefined) pendingSince = Date.now();
    pending = pending === undefined ? payload : merge(pending, payload);
    wake?.();
  });
  const take = () => {
    const value = pending;
    pending = undefined;
    arrivedAt = pendingSince;
    return value;
  };
  const arrival = async () => {
    while (pending === undefined && !closed) await new Promise<void>((resolve) => (wake = resolve));
  };
  return {
    ready: subscription.ready,
    get arrivedAt() {
      return arrivedAt;
    },
    arrival,
    async next() {
      await arrival();
      return take()!;
    },
    drain: take,
    close() {
      closed = true;
      subscription.remove();
      wake?.();
    },
  };
}

export interface StreamOptions<P> {
  /** Coalesces payloads that arrive while the subscriber is busy (or throttled). */
  merge(a: P, b: P): P;
  /**
   * Items that arrive closer than `minGapMs` after the previous one are held until then, merged
   * with whatever arrives meanwhile, unless `passes` (given the previous item delivered) lets the
   * merged payload through at once.
   */
  throttle?: { minGapMs: number; passes(payload: P, previous: P | undefined): boolean };
}

/**
 * `generator` as an async iterator whose `return()` ends it at once even while it awaits: it calls
 * `interrupt` first, which must settle whatever the generator awaits (an async generator's own
 * `return()` waits for its pending step). No promise is raced against a long-lived one per item:
 * each such race would keep a reaction on the long-lived promise until it settles.
 */
function interruptible<T>(generator: AsyncGenerator<T, void>, interrupt: () => unknown): AsyncIterableIterator<T> {
  return {
    next: () => generator.next(),
    async return() {
      await interrupt();
      return generator.return();
    },
    async throw(error: unknown) {
      await interrupt();
      return generator.throw(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * A subscription's source: `null` first, once the channel is subscribed (the subscriber reads its
 * initial state then, so nothing published afterwards is missed), then the coalesced payloads.
 * A client's unsubscribe ends it at once, even while no event comes.
 */
export function eventStream<K extends EventKey>(
  key: K,
  id: number,
  options: StreamOptions<EventPayload<K>>,
): AsyncIterableIterator<EventPayload<K> | null> {
  // Listening starts with the first `next()`: a stream ended before it never listens.
  let listener: TopicListener<EventPayload<K>> | undefined;
  let closed = false;
  async function* events(): AsyncGenerator<EventPayload<K> | null, void> {
    if (closed) return;
    listener = listen(key, id, options.merge);
    try {
      await listener.ready;
      if (closed) return;
      yield null;
      const throttle = options.throttle;
      // When the previous item arrived (or was released by the throttle): arrival, not delivery, so
      // that a subscriber whose deliveries lag (a busy process) is not held back by that lag as well.
      // The initial state does not count against the throttle.
      let last = Number.NEGATIVE_INFINITY;
      let previous: EventPayload<K> | undefined;
      for (;;) {
        await listener.arrival(); // settles on close too
        let payload = listener.drain();
        if (closed || payload === undefined) return;
        let released = listener.arrivedAt;
        while (throttle && !throttle.passes(payload, previous) && released < last + throttle.minGapMs) {
          let timer: NodeJS.Timeout | undefined;
          const gapOver = new Promise((resolve) => (timer = setTimeout(resolve, last + throttle.minGapMs - Date.now())));
          await Promise.race([listener.arrival(), gapOver]);
          clearTimeout(timer);
          if (closed) return;
          const more = listener.drain();
          if (more !== undefined) payload = options.merge(payload, more);
          released = Date.now();
        }
        last = released;
        previous = payload;
        yield payload;
      }
    } finally {
      listener.close();
    }
  }
  return interruptible(events(), () => {
    closed = true;
    listener?.close();
  });
}

/** Each item of `source` mapped to zero or more items; ending it (unsubscribe) ends `source` at once too. */
export function flatMapStream<S, T>(source: AsyncIterable<S>, map: (item: S) => Promise<T[]>): AsyncIterableIterator<T> {
  const items = source[Symbol.asyncIterator]();
  async function* mapped(): AsyncGenerator<T, void> {
    try {
      for (;;) {
        const next = await items.next();
        if (next.done) return;
        yield* await map(next.value);
      }
    } finally {
      await items.return?.();
    }
  }
  return interruptible(mapped(), () => items.return?.());
}

/** Closes the pubsub connections (process shutdown, tests). */
export async function closePubSub(): Promise<void> {
  const open = connections;
  connections = undefined;
  if (open) await Promise.allSettled([open.publishClient.quit(), open.subscribeClient.quit()]);
}
