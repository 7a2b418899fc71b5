import { type Client, createClient } from "graphql-ws";
import type { Logger } from "pino";
import WebSocket from "ws";
import type { z } from "zod";
import {
  ASSIGNMENTS_SUBSCRIPTION,
  AuthRejectedError,
  LOG_REQUESTS_SUBSCRIPTION,
  type LogRequest,
  logRequestSchema,
  type MachineAssignments,
  machineAssignmentsSchema,
} from "./api.ts";

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** Exponential backoff with full jitter: a uniform delay in [0, min(max, initial · 2^attempt)). */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt));
}

/** graphql-ws closes with 4403 Forbidden when the key is missing or bad. */
const FORBIDDEN = 4403;
/** Subscription errors that a retry cannot fix. */
const FATAL_CODES = new Set(["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"]);

export interface AssignmentsOptions {
  /** The API's GraphQL URL (http or ws); the subscription uses its ws form. */
  url: string;
  key: string;
  machineId: string;
  logger: Logger;
  backoff: Backoff;
  /** Each desired state as it arrives: the whole state after every (re)subscribe and every change. */
  onState(state: MachineAssignments): void;
  /** Each request for an instance's logs (subscribed on the same connection when given). */
  onLogRequest?(request: LogRequest): void;
  /** The API refused the key or the machine: the agent stops. */
  onFatal(error: Error): void;
}

export interface AssignmentsSubscription {
  stop(): Promise<void>;
}

export function websocketUrl(url: string): string {
  return url.replace(/^http(s?):/, "ws$1:");
}

/**
 * ws with its error events always listened to: graphql-ws's terminate() on a socket still connecting
 * (an agent stopped right after it started) stops listening before ws reports the aborted handshake
 * as an "error" event, which would otherwise end the process. graphql-ws sees every error it awaits
 * through its own listeners as before.
 */
class AgentWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on("error", () => {});
  }
}

/**
 * Subscribes to `assignments(machineId)` (and `logRequests(machineId)`) and keeps them subscribed:
 * graphql-ws reconnects with our backoff forever (re-subscribing on each new socket), and a
 * subscription that ends or fails is made again. Only a refused key or machine ends them.
 */
export function subscribeAssignments(options: AssignmentsOptions): AssignmentsSubscription {
  const { logger, backoff } = options;
  let stopped = false;
  /** The current subscription of each field. */
  const unsubscribes = new Map<string, () => void>();
  const resubscribeTimers = new Set<NodeJS.Timeout>();

  const isForbidden = (value: unknown) => (value as { code?: unknown } | null)?.code === FORBIDDEN;

  const client: Client = createClient({
    url: websocketUrl(options.url),
    webSocketImpl: AgentWebSocket,
    connectionParams: { authorization: `Bearer ${options.key}` },
    retryAttempts: Infinity,
    // Any failure to connect (refused, reset, server restarting) is retried, except a refused key.
    shouldRetry: (errorOrClose) => !isForbidden(errorOrClose),
    retryWait: async (retries) => {
      const delay = backoffDelay(retries, backoff);
      logger.info({ retries, delayMs: delay }, "reconnecting to the API");
      await new Promise((resolve) => setTimeout(resolve, delay));
    },
    keepAlive: 10_000,
    on: {
      connected: () => logger.info({ url: websocketUrl(options.url) }, "connected"),
      closed: (event) => {
        if (!stopped) logger.warn({ code: (event as { code?: number }).code }, "connection closed");
      },
    },
  });

  const fatal = (error: Error) => {
    if (stopped) return;
    void stop();
    options.onFatal(error);
  };

  /** Keeps one subscription whose field `field` carries items of `schema`. */
  function keep<T>(field: string, query: string, schema: z.ZodType<T>, deliver: (item: T) => void) {
    let attempts = 0;
    const resubscribe = (why: string) => {
      if (stopped) return;
      const delay = backoffDelay(attempts++, backoff);
      logger.warn({ field, delayMs: delay }, `subscription ${why}; subscribing again`);
      const timer = setTimeout(() => {
        resubscribeTimers.delete(timer);
        subscribe();
      }, delay);
      resubscribeTimers.add(timer);
    };
    function subscribe() {
      if (stopped) return;
      unsubscribes.set(field, client.subscribe(
        { query, variables: { machineId: options.machineId } },
        {
          next: (result) => {
            if (result.errors?.length) return logger.warn({ field, errors: result.errors }, "subscription carried errors");
            const parsed = schema.safeParse((result.data as Record<string, unknown> | null)?.[field]);
            if (!parsed.success) return logger.error({ field, issues: parsed.error.issues }, "subscription did not match the contract");
            attempts = 0;
            deliver(parsed.data);
          },
          error: (error: unknown) => {
            if (isForbidden(error)) return fatal(new AuthRejectedError(`WebSocket closed with ${FORBIDDEN}`));
            const errors = Array.isArray(error) ? (error as { message: string; extensions?: { code?: string } }[]) : [];
            const refusal = errors.find((e) => FATAL_CODES.has(e.extensions?.code ?? ""));
            if (refusal) return fatal(new AuthRejectedError(`${refusal.extensions!.code}: ${refusal.message}`));
            logger.warn({ field, err: error }, "subscription failed");
            resubscribe("failed");
          },
          complete: () => resubscribe("completed"),
        },
      ));
    }
    subscribe();
  }

  async function stop() {
    stopped = true;
    for (const timer of resubscribeTimers) clearTimeout(timer);
    for (const unsubscribe of unsubscribes.values()) unsubscribe();
    // terminate: no waiting for a connection attempt under way; dispose rejects when that attempt failed.
    client.terminate();
    try {
      await client.dispose();
    } catch {
      // the attempt's close event: nothing to clean up
    }
  }

  keep("assignments", ASSIGNMENTS_SUBSCRIPTION, machineAssignmentsSchema, options.onState);
  if (options.onLogRequest) keep("logRequests", LOG_REQUESTS_SUBSCRIPTION, logRequestSchema, options.onLogRequest);
  return { stop };
}
