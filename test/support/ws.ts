import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";

/** A graphql-ws subscription under test: what it received, and waits on it. */
export interface TestSubscription<T = any> {
  values: T[];
  errors: unknown[];
  completed: boolean;
  /** Resolves with the first value (from `from` on) that matches. */
  next(predicate?: (value: T) => boolean, timeoutMs?: number, from?: number): Promise<T>;
  /** Resolves with the subscription's error. */
  failed(timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, "ws");
}

/** The close code of a connection attempt with these connection params (4403 for a refused key). */
export function connectionCloseCode(url: string, connectionParams: Record<string, unknown>): Promise<number> {
  return new Promise((resolve) => {
    const client = createClient({
      url: wsUrl(url),
      webSocketImpl: WebSocket,
      connectionParams,
      retryAttempts: 0,
      lazy: false,
      on: { closed: (event) => resolve((event as { code: number }).code) },
    });
    client.on("closed", () => void client.dispose());
  });
}

export function subscribe<T = any>(
  url: string | (() => string),
  key: string,
  query: string,
  variables: Record<string, unknown> = {},
  options: { retry?: boolean } = {},
): TestSubscription<T> {
  const client: Client = createClient({
    url: () => wsUrl(typeof url === "string" ? url : url()),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: options.retry ? Infinity : 0,
    retryWait: () => new Promise((resolve) => setTimeout(resolve, 100)),
    shouldRetry: () => options.retry ?? false,
  });
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((listener) => listener());
  const sub: TestSubscription<T> = {
    values: [],
    errors: [],
    completed: false,
    next(predicate = () => true, timeoutMs = 10_000, from = 0) {
      return waitFor(() => sub.values.slice(from).find(predicate), timeoutMs, () => `values: ${JSON.stringify(sub.values)}, errors: ${JSON.stringify(sub.errors)}`);
    },
    failed(timeoutMs = 10_000) {
      return waitFor(() => sub.errors[0], timeoutMs, () => `values: ${JSON.stringify(sub.values)}`);
    },
    async close() {
      unsubscribe();
      await client.dispose();
    },
  };
  const waitFor = <R>(check: () => R | undefined, timeoutMs: number, describe: () => string) =>
    new Promise<R>((resolve, reject) => {
      const listener = () => {
        const found = check();
        if (found === undefined) return;
        clearTimeout(timer);
        listeners.delete(listener);
        resolve(found);
      };
      const timer = setTimeout(() => {
        listeners.delete(listener);
        reject(new Error(`timed out; ${describe()}`));
      }, timeoutMs);
      listeners.add(listener);
      listener();
    });
  const unsubscribe = client.subscribe(
    { query, variables },
    {
      next: (result) => {
        if (result.errors) sub.errors.push(result.errors);
        else sub.values.push((result.data as Record<string, T>)[Object.keys(result.data!)[0]]);
        notify();
      },
      error: (error) => {
        sub.errors.push(error);
        notify();
      },
      complete: () => {
        sub.completed = true;
        notify();
      },
    },
  );
  return sub;
}
