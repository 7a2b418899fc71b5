import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { PothosValidationError } from "@pothos/core";
import { type ExecutionResult, GraphQLError } from "graphql";
import { createYoga, type Plugin } from "graphql-yoga";
import { useServer } from "graphql-ws/use/ws";
import { type WebSocket, WebSocketServer } from "ws";
import { refusedKeysWhere } from "../domain/apiKeys.ts";
import { AppError, NotAuthenticatedError, RateLimitedError } from "../domain/errors.ts";
import { handleStripeWebhook } from "../domain/payments/webhook.ts";
import type { Viewer } from "../domain/viewer.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { logger } from "../infra/logger.ts";
import { readReplicaStatus } from "../infra/replica.ts";
import { redis } from "../infra/redis.ts";
import { schema } from "../schema/index.ts";
import { type Context, resolveViewer } from "./context.ts";
import { JUPYTER_PROXY_PREFIX, plainAnswer, proxyJupyter, proxyJupyterUpgrade } from "./jupyterProxy.ts";
import { requestTextErrors, useStorableText } from "./input.ts";
import { SPEED_TEST_PREFIX, speedTest } from "./speedTest.ts";
import { useCompiledExecution } from "./jit.ts";
import { renderGraphiQL, serveStatic } from "./static.ts";

export interface App {
  server: Server;
  /** Listens on `port` (0 for any free one) and resolves to the URL of the GraphQL endpoint. */
  start(port: number): Promise<string>;
  stop(): Promise<void>;
  /** Closes (4403) the WebSocket connections whose key has been revoked or has expired; returns how many. Runs every WS_KEY_RECHECK_SECONDS. */
  closeRevokedConnections(): Promise<number>;
}

const GRAPHQL_PATH = "/graphql";

/** Expected failures keep their message and code; everything else is masked by Yoga. */
function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof AppError) {
    return new GraphQLError(original.message, {
      ...(error instanceof GraphQLError ? { nodes: error.nodes, path: error.path } : {}),
      extensions: { code: original.code },
    });
  }
  // Pothos's checks of arguments (connection arguments, cursors).
  if (original instanceof PothosValidationError) {
    return new GraphQLError(original.message, { ...(error instanceof GraphQLError ? { nodes: error.nodes, path: error.path } : {}), extensions: { code: "BAD_USER_INPUT" } });
  }
  // graphql-js's own refusals of the request (variables it cannot coerce, on operations graphql-jit does not compile).
  if (error instanceof GraphQLError && !error.originalError) return withCode(error, "BAD_USER_INPUT");
  logger.error({ err: original }, "unexpected error");
  return new GraphQLError(isDev ? String((original as Error)?.message ?? message) : message, {
    extensions: { code: "INTERNAL_SERVER_ERROR" },
  });
}

/** `error` with `code` unless it has one: every refusal a client can cause carries a code. */
function withCode(error: unknown, code: string): GraphQLError {
  if (!(error instanceof GraphQLError)) return new GraphQLError(String((error as Error)?.message ?? error), { extensions: { code } });
  if (error.extensions.code) return error;
  return new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, extensions: { ...error.extensions, code } });
}

/**
 * graphql-armor refuses as "Syntax Error: …" without a code; its limits are reported as what they
 * are. Rules with a validation context add the error to validation's; the parser's token limit throws.
 */
function armorLimit(context: { reportError(error: GraphQLError): void } | null, refusal: GraphQLError): void {
  const error = new GraphQLError(refusal.message.replace(/^Syntax Error: /, ""), { extensions: { code: "QUERY_LIMIT_EXCEEDED", http: { status: 400 } } });
  if (!context) throw error;
  context.reportError(error);
}

/** Each key's HTTP operations running now in this process. */
const httpOperationsByKey = new Map<number, number>();

/**
 * The context of an HTTP request. A key may have HTTP_MAX_OPERATIONS_PER_KEY running at once; one
 * more is refused with 429 (RATE_LIMITED) before it is executed, so that one key cannot take the
 * database pool and the event loop from everyone else. Its slot frees when the response ends.
 */
async function contextFromAuthorization(authorization: string | null | undefined, clientIp: string, origin: string, res: ServerResponse): Promise<Context> {
  const viewer = await resolveViewer(authorization);
  if (viewer === "invalid") {
    throw new GraphQLError("The API key is unknown, revoked or expired", {
      extensions: { code: new NotAuthenticatedError().code, http: { status: 401 } },
    });
  }
  if (viewer) {
    const { HTTP_MAX_OPERATIONS_PER_KEY } = config();
    const running = httpOperationsByKey.get(viewer.keyId) ?? 0;
    if (running >= HTTP_MAX_OPERATIONS_PER_KEY) {
      throw new GraphQLError(`Too many operations at once: at most ${HTTP_MAX_OPERATIONS_PER_KEY} per API key`, {
        extensions: { code: new RateLimitedError(1).code, retryAfterSeconds: 1, http: { status: 429, headers: { "retry-after": "1" } } },
      });
    }
    httpOperationsByKey.set(viewer.keyId, running + 1);
    res.once("close", () => {
      const left = (httpOperationsByKey.get(viewer.keyId) ?? 1) - 1;
      if (left > 0) httpOperationsByKey.set(viewer.keyId, left);
      else httpOperationsByKey.delete(viewer.keyId);
    });
  }
  return { viewer, clientIp, origin };
}

function originOf(request: IncomingMessage | undefined): string {
  return `http://${request?.headers.host ?? "127.0.0.1"}`;
}

function clientIpOf(request: IncomingMessage | undefined): string {
  return request?.socket.remoteAddress ?? "unknown";
}

export async function healthy(): Promise<boolean> {
  try {
    await Promise.all([prisma.$queryRaw`SELECT 1`, redis.ping()]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A subscription refused when it starts (unauthorized, not found) is an ExecutionResult with errors;
 * graphql-ws would send it as a `next` followed by `complete`, which a client cannot tell from a
 * finished stream. As a stream that fails at once it goes out as the protocol's `error` message,
 * with the errors' codes, so an agent knows that retrying will not help.
 */
function refusalAsError(result: AsyncIterable<ExecutionResult> | ExecutionResult): AsyncIterable<ExecutionResult> | ExecutionResult {
  if (Symbol.asyncIterator in result || !result.errors?.length) return result;
  const [error] = result.errors;
  return (async function* refused(): AsyncGenerator<ExecutionResult> {
    throw error;
  })();
}

const STRIPE_WEBHOOK_PATH = "/webhooks/stripe";
/** Stripe's events are small; anything larger is not one. */
const MAX_WEBHOOK_BYTES = 1_000_000;

/** Stripe signs the exact bytes it sent, so the body is read raw, before and apart from Yoga. */
async function stripeWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_WEBHOOK_BYTES) {
      res.writeHead(413).end();
      return;
    }
    chunks.push(chunk as Buffer);
  }
  try {
    const { status, body } = await handleStripeWebhook(Buffer.concat(chunks), req.headers["stripe-signature"] as string | undefined);
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  } catch (err) {
    // Stripe delivers it again later; handling is idempotent.
    logger.error({ err }, "stripe webhook failed");
    res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ received: false }));
  }
}

export function buildApp(): App {
  const { MAX_QUERY_DEPTH, MAX_QUERY_COST } = config();
  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, Context>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    renderGraphiQL,
    logging: {
      debug: (...args) => logger.debug(args),
      info: (...args) => logger.info(args),
      warn: (...args) => logger.warn(args),
      error: (...args) => logger.error(args),
    },
    maskedErrors: { maskError },
    // A WebSocket operation arrives with the viewer its connection authenticated (onConnect below).
    context: (initial) =>
      "viewer" in initial
        ? { viewer: initial.viewer as Viewer, clientIp: clientIpOf(initial.req), origin: originOf(initial.req) }
        : contextFromAuthorization(initial.request.headers.get("authorization"), clientIpOf(initial.req), originOf(initial.req), initial.res),
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: MAX_QUERY_DEPTH, onReject: [armorLimit], propagateOnRejection: false },
        costLimit: { maxCost: MAX_QUERY_COST, onReject: [armorLimit], propagateOnRejection: false },
        maxAliases: { n: 30, onReject: [armorLimit], propagateOnRejection: false },
        maxDirectives: { n: 50, onReject: [armorLimit], propagateOnRejection: false },
        maxTokens: { n: 5000, onReject: [armorLimit], propagateOnRejection: false },
      }) as Plugin,
      useCompiledExecution(),
      useStorableText(),
    ],
  });

  const server = createServer(async (req, res) => {
    if (req.url === "/healthz") {
      const ok = await healthy();
      const replica = readReplicaStatus();
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(replica ? { ok, replica } : { ok }));
      return;
    }
    if (req.url === STRIPE_WEBHOOK_PATH && req.method === "POST") {
      await stripeWebhook(req, res);
      return;
    }
    if (req.url?.startsWith(JUPYTER_PROXY_PREFIX)) return proxyJupyter(req, res);
    if (req.url?.startsWith(SPEED_TEST_PREFIX)) return speedTest(req, res);
    if (!req.url?.startsWith(GRAPHQL_PATH) && (await serveStatic(req, res))) return;
    yoga(req, res);
  });

  const { WS_MAX_PAYLOAD_BYTES, WS_MAX_CONNECTIONS_PER_KEY, WS_MAX_OPERATIONS_PER_CONNECTION, WS_MAX_OPERATIONS_PER_KEY } = config();
  const wsServer = new WebSocketServer({ noServer: true, path: GRAPHQL_PATH, maxPayload: WS_MAX_PAYLOAD_BYTES });
  /** Upgraded sockets (GraphQL and proxied Jupyter ones): the HTTP server no longer closes them itself. */
  const upgraded = new Set<Duplex>();
  // WebSocket upgrades: GraphQL's on its path, Jupyter's (kernels, terminals) to their instance.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgraded.add(socket);
    socket.once("close", () => upgraded.delete(socket));
    socket.on("error", () => socket.destroy());
    const path = req.url?.split("?")[0];
    if (path === GRAPHQL_PATH) {
      wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit("connection", ws, req));
    } else if (req.url?.startsWith(JUPYTER_PROXY_PREFIX)) {
      proxyJupyterUpgrade(req, socket, head).catch((err: unknown) => {
        logger.warn({ err }, "jupyter proxy: upgrade failed");
        socket.destroy();
      });
    } else {
      socket.end(plainAnswer("404 Not Found", "No WebSocket endpoint here\n"));
    }
  });
  /** The key each open connection authenticated with. */
  const connectionKeys = new Map<WebSocket, number>();
  /** Each key's open connections' live operations (graphql-ws keeps them by operation id, the one starting included). */
  const operationsByKey = new Map<number, Set<Record<string, unknown>>>();
  const operationsOfKey = (keyId: number) =>
    [...(operationsByKey.get(keyId) ?? [])].reduce((sum, operations) => sum + Object.keys(operations).length, 0);
  async function closeRevokedConnections(): Promise<number> {
    const keyIds = [...new Set(connectionKeys.values())];
    if (keyIds.length === 0) return 0;
    const revoked = await prisma.apiKey.findMany({ where: { id: { in: keyIds }, ...refusedKeysWhere(new Date()) }, select: { id: true } });
    const revokedIds = new Set(revoked.map((key) => key.id));
    let closed = 0;
    for (const [socket, keyId] of connectionKeys) {
      if (!revokedIds.has(keyId)) continue;
      socket.close(4403, "API key revoked or expired");
      connectionKeys.delete(socket);
      closed++;
    }
    return closed;
  }
  // One query per process for all its connections, however many.
  const recheck = setInterval(() => {
    closeRevokedConnections().catch((err: unknown) => logger.warn({ err }, "revoked key check failed"));
  }, config().WS_KEY_RECHECK_SECONDS * 1000).unref();
  // Every WebSocket connection needs a key (offers and everything else anonymous are plain queries):
  // it is resolved once, by the same function as HTTP's header, and a missing or bad one closes the
  // socket with 4403 Forbidden. A key revoked or expired later closes its connections with 4403 within
  // WS_KEY_RECHECK_SECONDS (every request over HTTP is checked on its own).
  const wsCleanup = useServer<Record<string, unknown>, { socket: WebSocket; request: IncomingMessage; viewer?: Viewer }>(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: async (args: any) => refusalAsError(await args.rootValue.subscribe(args)),
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const viewer = typeof authorization === "string" ? await resolveViewer(authorization).catch(() => "invalid" as const) : null;
        if (!viewer || viewer === "invalid") return false;
        const keyConnections = operationsByKey.get(viewer.keyId) ?? new Set();
        // 4403 like a refused key: more connections would not be let in either.
        if (keyConnections.size >= WS_MAX_CONNECTIONS_PER_KEY) return false;
        ctx.extra.viewer = viewer;
        const socket = ctx.extra.socket;
        connectionKeys.set(socket, viewer.keyId);
        operationsByKey.set(viewer.keyId, keyConnections.add(ctx.subscriptions));
        socket.once("close", () => {
          connectionKeys.delete(socket);
          keyConnections.delete(ctx.subscriptions);
          if (keyConnections.size === 0 && operationsByKey.get(viewer.keyId) === keyConnections) operationsByKey.delete(viewer.keyId);
        });
        return true;
      },
      // Every refusal below answers that one operation with an `error` message; the connection and
      // its other operations go on.
      onSubscribe: async (ctx, _id, payload) => {
        const textErrors = requestTextErrors(payload);
        if (textErrors.length) return textErrors;
        const keyId = ctx.extra.viewer!.keyId;
        if (Object.keys(ctx.subscriptions).length > WS_MAX_OPERATIONS_PER_CONNECTION || operationsOfKey(keyId) > WS_MAX_OPERATIONS_PER_KEY) {
          return [
            new GraphQLError(
              `Too many live operations: at most ${WS_MAX_OPERATIONS_PER_CONNECTION} per connection and ${WS_MAX_OPERATIONS_PER_KEY} per API key`,
              { extensions: { code: "RATE_LIMITED" } },
            ),
          ];
        }
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, params: payload, viewer: ctx.extra.viewer });
        const { schema: envelopedSchema, execute, subscribe, parse, validate } = enveloped;
        let document: ReturnType<typeof parse>;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [withCode(error, "GRAPHQL_PARSE_FAILED")];
        }
        const errors = validate(envelopedSchema, document);
        if (errors.length > 0) return errors.map((error: GraphQLError) => withCode(error, "GRAPHQL_VALIDATION_FAILED"));
        return {
          schema: envelopedSchema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
    },
    wsServer,
  );

  return {
    server,
    start: (port) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, () => {
          const { port: bound } = server.address() as AddressInfo;
          resolve(`http://127.0.0.1:${bound}${GRAPHQL_PATH}`);
        });
      }),
    closeRevokedConnections,
    stop: async () => {
      clearInterval(recheck);
      await wsCleanup.dispose();
      wsServer.close();
      for (const socket of upgraded) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
