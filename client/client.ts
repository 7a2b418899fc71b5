import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import { createClient as createWsClient } from "graphql-ws";
import WebSocket from "ws";

export const DEFAULT_URL = "http://127.0.0.1:4000/graphql";

/** A failure the API reported: a top-level GraphQL error (code from extensions) or a typed error result. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The API could not be reached or did not answer GraphQL. */
export class NetworkError extends Error {
  readonly code = "NETWORK_ERROR";
}

export interface ClientOptions {
  url: string;
  /** Optional: searching offers is open to anonymous callers. */
  apiKey?: string;
}

export interface Subscription {
  /** Resolves when the server completes the subscription; rejects on its error. */
  done: Promise<void>;
  close(): Promise<void>;
}

export type Client = ReturnType<typeof createClient>;

interface GraphQLBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

function firstError(errors: GraphQLBody<unknown>["errors"]): ApiError | null {
  const first = errors?.[0];
  return first ? new ApiError(first.extensions?.code ?? "GRAPHQL_ERROR", first.message) : null;
}

export function createClient(options: ClientOptions) {
  const authorization: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};

  return {
    url: options.url,

    /** Runs a query or mutation; throws ApiError on a GraphQL error and NetworkError on a transport failure. */
    async request<TData, TVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData> {
      let response: Response;
      try {
        response = await fetch(options.url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json", ...authorization },
          body: JSON.stringify({ query: print(document), variables }),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (error) {
        const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
        throw new NetworkError(`cannot reach ${options.url}: ${cause}`);
      }
      const body = (await response.json().catch(() => null)) as GraphQLBody<TData> | null;
      if (!body) throw new NetworkError(`${options.url} answered HTTP ${response.status} without a GraphQL body`);
      const error = firstError(body.errors);
      if (error) throw error;
      if (!body.data) throw new NetworkError(`${options.url} answered without data`);
      return body.data;
    },

    /** A graphql-ws subscription on the same URL (ws:// or wss://), authenticated like HTTP requests. */
    subscribe<TData, TVariables>(
      document: TypedDocumentNode<TData, TVariables>,
      variables: TVariables,
      onData: (data: TData) => void,
    ): Subscription {
      const ws = createWsClient({
        url: options.url.replace(/^http(s?):/, "ws$1:"),
        webSocketImpl: WebSocket,
        connectionParams: authorization,
        retryAttempts: 3,
      });
      let unsubscribe = () => {};
      const done = new Promise<void>((resolve, reject) => {
        unsubscribe = ws.subscribe<TData>(
          { query: print(document), variables: variables as Record<string, unknown> },
          {
            next: (result) => {
              const error = firstError(result.errors as GraphQLBody<unknown>["errors"]);
              if (error) reject(error);
              else if (result.data) onData(result.data);
            },
            error: (error) => reject(subscriptionError(error, options.url)),
            complete: resolve,
          },
        );
      });
      return {
        done: done.finally(() => ws.dispose()),
        async close() {
          unsubscribe();
          await ws.dispose();
        },
      };
    },
  };
}

/** graphql-ws reports errors as GraphQL error lists, close events or Errors. */
function subscriptionError(error: unknown, url: string): Error {
  if (Array.isArray(error)) return firstError(error) ?? new ApiError("GRAPHQL_ERROR", "subscription failed");
  const close = error as { code?: number; reason?: string };
  if (typeof close?.code === "number") {
    if (close.code === 4403) return new ApiError("FORBIDDEN", close.reason || "the API key was refused");
    return new NetworkError(`connection to ${url} closed (${close.code}${close.reason ? `: ${close.reason}` : ""})`);
  }
  if (error instanceof Error) return new NetworkError(`cannot reach ${url}: ${error.message}`);
  return new NetworkError(`subscription to ${url} failed`);
}

/** A mutation result union: the success's `data`, or a thrown ApiError for a member implementing Error. */
export function unwrap<TResult extends { __typename?: string }>(
  result: TResult,
): Extract<TResult, { data: unknown }>["data"] {
  if ("data" in result) return (result as Extract<TResult, { data: unknown }>).data;
  const error = result as { code?: string; message?: string; __typename?: string };
  throw new ApiError(error.code ?? "UNKNOWN", error.message ?? `unexpected result ${error.__typename}`);
}

/** One page of a connection as the client operations select it. */
export interface Page<T> {
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
}

/** Every item of a connection, asking page after page (a page holds at most 100) until the last. */
export async function allPages<T>(fetchPage: (after: string | null) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let after: string | null = null;
  for (;;) {
    const page = await fetchPage(after);
    items.push(...page.nodes);
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return items;
    after = page.pageInfo.endCursor;
  }
}
