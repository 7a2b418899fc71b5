import { request } from "node:http";
import { afterAll, beforeAll } from "vitest";
import { type App, buildApp } from "../../api/app.ts";

export interface GraphQLResponse<T = any> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string }; path?: (string | number)[] }[];
}

export interface TestApp {
  url: string;
  baseUrl: string;
  /** POSTs an operation, with `key` as the bearer API key when given. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, key?: string): Promise<GraphQLResponse<T>>;
  /** POSTs an operation from the given local loopback address (the server sees it as the client IP), with `key` when given. */
  gqlFrom<T = any>(localAddress: string, query: string, variables?: Record<string, unknown>, key?: string): Promise<GraphQLResponse<T>>;
  /** The server's periodic check of its WebSocket connections' keys, run now. */
  closeRevokedConnections(): Promise<number>;
}

/** Starts the real HTTP + WebSocket server on a free port for the file's tests, stopped after them. */
export function useTestApp(): TestApp {
  let app: App;
  const handle: TestApp = {
    url: "",
    baseUrl: "",
    async gql(query, variables, key) {
      const response = await fetch(handle.url, {
        method: "POST",
        headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as GraphQLResponse;
    },
    gqlFrom(localAddress, query, variables, key) {
      const url = new URL(handle.url);
      const body = JSON.stringify({ query, variables });
      return new Promise((resolve, reject) => {
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: "POST",
            localAddress,
            headers: {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(body),
              ...(key ? { authorization: `Bearer ${key}` } : {}),
            },
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (chunk) => (text += chunk));
            res.on("end", () => resolve(JSON.parse(text)));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    },
    closeRevokedConnections: () => app.closeRevokedConnections(),
  };
  beforeAll(async () => {
    app = buildApp();
    handle.url = await app.start(0);
    handle.baseUrl = new URL(handle.url).origin;
  });
  afterAll(async () => {
    await app.stop();
  });
  return handle;
}
