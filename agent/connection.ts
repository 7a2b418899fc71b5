import { type Client, createClient } from "graphql-ws";
import type { Logger } from "pino";
import WebSocket from "ws";
import { ASSIGNMENTS_SUBSCRIPTION, AuthRejectedError, type MachineAssignments, machineAssignmentsSchema } from "./api.ts";

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
 * Subscribes to `assignments(machineId)` and keeps it subscribed: graphql-ws reconnects with our
 * backoff forever (re-subscribing on each new socket), and a subscription that ends or fails is made
 * again. Only a refused key or machine ends it.
 */
export function subscribeAssignments(options: AssignmentsOptions): AssignmentsSubscription {
  const { logger, backoff } = options;
  let stopped = false;
  let attempts = 0;
  let unsubscribe: (() => void) | null = null;
  let resubscribeTimer: NodeJS.Timeout | undefined;

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

  const resubscribe = (why: string) => {
    if (stopped) return;
    const delay = backoffDelay(attempts++, backoff);
    logger.warn({ delayMs: delay }, `subscription ${why}; subscribing again`);
    resubscribeTimer = setTimeout(subscribe, delay);
  };

  function subscribe() {
    if (stopped) return;
    unsubscribe = client.subscribe(
      { query: ASSIGNMENTS_SUBSCRIPTION, variables: { machineId: options.machineId } },
      {
        next: (result) => {
          if (result.errors?.length) return logger.warn({ errors: result.errors }, "assignments carried errors");
          const parsed = machineAssignmentsSchema.safeParse((result.data as { assignments?: unknown } | null)?.assignments);
          if (!parsed.success) return logger.error({ issues: parsed.error.issues }, "assignments did not match the contract");
          attempts = 0;
          options.onState(parsed.data);
        },
        error: (error: unknown) => {
          if (isForbidden(error)) return fatal(new AuthRejectedError(`WebSocket closed with ${FORBIDDEN}`));
          const errors = Array.isArray(error) ? (error as { message: string; extensions?: { code?: string } }[]) : [];
          const refusal = errors.find((e) => FATAL_CODES.has(e.extensions?.code ?? ""));
          if (refusal) return fatal(new AuthRejectedError(`${refusal.extensions!.code}: ${refusal.message}`));
          logger.warn({ err: error }, "subscription failed");
          resubscribe("failed");
        },
        complete: () => resubscribe("completed"),
      },
    );
  }

  async function stop() {
    stopped = true;
    clearTimeout(resubscribeTimer);
    unsubscribe?.();
    // terminate: no waiting for a connection attempt under way; dispose rejects when that attempt failed.
    client.terminate();
    try {
      await client.dispose();
    } catch {
      // the attempt's close event: nothing to clean up
    }
  }

  subscribe();
  return { stop };
}
