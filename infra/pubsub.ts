import { createRedisEventTarget } from "@graphql-yoga/redis-event-target";
import { createPubSub, type PubSub, Repeater } from "graphql-yoga";
import type { Redis } from "ioredis";
import { logger } from "./logger.ts";
import { redisConnection, redisKey } from "./redis.ts";

/*
 * Cross-process events over Redis pub/sub: every API process, worker and the benchmark publish and
 * subscribe through here. Events carry ids only; subscription fields refetch what the client
 * selects. Topics are `<key>:<id>` under the project's Redis prefix (channels are global to a Redis
 * server, so test files and deployments sharing one never meet). Publishing is fire-and-forget after
 * the transaction commits: a subscriber that misses an event (its socket dropped) gets the current
 * state when it subscribes again, because every subscription starts with it.
 */
export type Events = {
  /** Instances of the account whose status or message changed. */
  instanceStatus: [userId: number, event: { instanceIds: number[] }];
  /** The account's balance moved; `immediate` (payments) skips the one-per-second coalescing. */
  balance: [userId: number, event: { immediate: boolean }];
  /** The desired state of the machine's instances changed (or may have: subscribers refetch it). */
  assignments: [machineId: number, event: { machineId: number }];
};
export type EventKey = keyof Events;
export type EventPayload<K extends EventKey> = Events[K][1];

interface Connections {
  pubsub: PubSub<Events>;
  subscribeClient: Redis;
  close(): Promise<void>;
}

let connections: Connections | undefined;

function channel(topic: string): string {
  return redisKey("events", topic);
}

/** The pubsub and its two Redis connections, opened on first use (a process that never publishes opens none). */
function open(): Connections {
  if (connections) return connections;
  const publishClient = redisConnection({ lazyConnect: false });
  // No ready check: its INFO would fail on a connection whose queued SUBSCRIBEs went out first
  // (ioredis "Connection in subscriber mode"), which happens when many subscribe at start.
  const subscribeClient = redisConnection({ lazyConnect: false, enableReadyCheck: false });
  for (const client of [publishClient, subscribeClient]) {
    client.on("error", (err) => logger.warn({ err: err.message }, "pubsub redis connection error"));
  }
  // The event target fires its Redis commands without awaiting them: a failure (Redis away, or a
  // subscriber leaving after shutdown) is logged here instead of becoming an unhandled rejection.
  const logged = (command: string) => (err: Error) => logger.warn({ err: err.message, command }, "pubsub command failed");
  const target = createRedisEventTarget<CustomEvent>({
    publishClient: { publish: (channel: string, message: string) => publishClient.publish(channel, message).catch(logged("publish")) } as never,
    subscribeClient: {
      on: (event: string, listener: (...args: any[]) => void) => subscribeClient.on(event, listener),
      subscribe: (channel: string) => subscribeClient.subscribe(channel).catch(logged("subscribe")),
      unsubscribe: (channel: string) => subscribeClient.unsubscribe(channel).catch(logged("unsubscribe")),
    } as never,
  });
  // The prefix is added on the way to Redis and is invisible to publishers and subscribers.
  const prefixed = {
    addEventListener: (topic: string, listener: EventListener) => target.addEventListener(channel(topic), listener as never),
    removeEventListener: (topic: string, listener: EventListener) => target.removeEventListener(channel(topic), listener as never),
    dispatchEvent: (event: CustomEvent) => target.dispatchEvent(new CustomEvent(channel(event.type), { detail: event.detail })),
  };
  connections = {
    pubsub: createPubSub<Events>({ eventTarget: prefixed as never }),
    subscribeClient,
    async close() {
      await Promise.allSettled([publishClient.quit(), subscribeClient.quit()]);
    },
  };
  return connections;
}

export function publish<K extends EventKey>(key: K, id: number, payload: EventPayload<K>): void {
  (open().pubsub.publish as (key: string, id: number, payload: unknown) => void)(key, id, payload);
}

/** Publishes `payload` once per distinct id: one event per affected account or machine, never per row. */
export function publishEach<K extends EventKey>(key: K, ids: Iterable<number>, payload: (id: number) => EventPayload<K>): void {
  for (const id of new Set(ids)) publish(key, id, payload(id));
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
  /** What arrived since the last `next()`, without waiting. */
  drain(): P | undefined;
  close(): void;
}

export function listen<K extends EventKey>(
  key: K,
  id: number,
  merge: (a: EventPayload<K>, b: EventPayload<K>) => EventPayload<K>,
): TopicListener<EventPayload<K>> {
  const { pubsub, subscribeClient } = open();
  const events = (pubsub.subscribe as (key: string, id: number) => AsyncIterable<EventPayload<K>>)(key, id)[Symbol.asyncIterator]();
  let pending: EventPayload<K> | undefined;
  let wake: (() => void) | undefined;
  let closed = false;
  // Pulling the first event starts the repeater, which adds the listener and sends SUBSCRIBE.
  const pump = async () => {
    for (let result = await events.next(); !result.done; result = await events.next()) {
      pending = pending === undefined ? result.value : merge(pending, result.value);
      wake?.();
    }
  };
  void pump().catch((err: unknown) => logger.warn({ err, key }, "event stream failed"));
  return {
    // SUBSCRIBE is idempotent; its reply comes after that of the repeater's own SUBSCRIBE.
    ready: subscribeClient.subscribe(channel(`${key}:${id}`)).then(() => undefined),
    async next() {
      while (pending === undefined && !closed) await new Promise<void>((resolve) => (wake = resolve));
      const value = pending!;
      pending = undefined;
      return value;
    },
    drain() {
      const value = pending;
      pending = undefined;
      return value;
    },
    close() {
      closed = true;
      wake?.();
      void events.return?.(undefined);
    },
  };
}

export interface StreamOptions<P> {
  /** Coalesces payloads that arrive while the subscriber is busy (or throttled). */
  merge(a: P, b: P): P;
  /**
   * Items closer than `minGapMs` to the previous one are merged and delivered `minGapMs` after it,
   * except payloads that `bypass` lets through at once.
   */
  throttle?: { minGapMs: number; bypass(payload: P): boolean };
}

/**
 * A subscription's source: `null` first, once the channel is subscribed (the subscriber reads its
 * initial state then, so nothing published afterwards is missed), then the coalesced payloads.
 * A Repeater rather than an async generator, so that a client's unsubscribe ends it at once even
 * while no event comes.
 */
export function eventStream<K extends EventKey>(
  key: K,
  id: number,
  options: StreamOptions<EventPayload<K>>,
): AsyncIterable<EventPayload<K> | null> {
  return new Repeater<EventPayload<K> | null>(async (push, stop) => {
    const listener = listen(key, id, options.merge);
    let stopped = false;
    const stopping = stop.then(() => {
      stopped = true;
      listener.close();
    });
    const sleep = (ms: number) => Promise.race([new Promise((resolve) => setTimeout(resolve, ms)), stopping]);
    await Promise.race([listener.ready, stopping]);
    if (stopped) return;
    await push(null);
    let last = Number.NEGATIVE_INFINITY; // the initial state does not count against the throttle
    while (!stopped) {
      let payload = (await Promise.race([listener.next(), stopping])) as EventPayload<K> | undefined;
      if (stopped || payload === undefined) break;
      const throttle = options.throttle;
      if (throttle && !throttle.bypass(payload)) {
        const wait = last + throttle.minGapMs - Date.now();
        if (wait > 0) await sleep(wait);
        if (stopped) break;
        const more = listener.drain();
        if (more !== undefined) payload = options.merge(payload, more);
      }
      last = Date.now();
      await push(payload);
    }
  });
}

/** Each item of `source` mapped to zero or more items; ending it (unsubscribe) ends `source` at once too. */
export function flatMapStream<S, T>(source: AsyncIterable<S>, map: (item: S) => Promise<T[]>): AsyncIterable<T> {
  return new Repeater<T>(async (push, stop) => {
    const items = source[Symbol.asyncIterator]();
    const stopped = stop.then(() => ({ done: true as const, value: undefined }));
    void stopped.then(() => items.return?.());
    for (;;) {
      const next = await Promise.race([items.next(), stopped]);
      if (next.done) break;
      for (const value of await map(next.value)) await push(value);
    }
    stop();
  });
}

/** Closes the pubsub connections (process shutdown, tests). */
export async function closePubSub(): Promise<void> {
  const open = connections;
  connections = undefined;
  await open?.close();
}
