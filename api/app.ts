import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { type ExecutionResult, GraphQLError } from "graphql";
import { createYoga, type Plugin } from "graphql-yoga";
import { useServer } from "graphql-ws/use/ws";
import { type WebSocket, WebSocketServer } from "ws";
import { AppError, NotAuthenticatedError } from "../domain/errors.ts";
import { handleStripeWebhook } from "../domain/payments/webhook.ts";
import type { Viewer } from "../domain/viewer.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { logger } from "../infra/logger.ts";
import { redis } from "../infra/redis.ts";
import { schema } from "../schema/index.ts";
import { type Context, resolveViewer } from "./context.ts";
import { JUPYTER_PROXY_PREFIX, proxyJupyter } from "./jupyterProxy.ts";
import { useCompiledExecution } from "./jit.ts";

export interface App {
  server: Server;
  /** Listens on `port` (0 for any free one) and resolves to the URL of the GraphQL endpoint. */
  start(port: number): Promise<string>;
  stop(): Promise<void>;
  /** Closes (4403) the WebSocket connections whose key has been revoked; returns how many. Runs every WS_KEY_RECHECK_SECONDS. */
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
  if (error instanceof GraphQLError && !error.originalError) return error;
  logger.error({ err: original }, "unexpected error");
  return new GraphQLError(isDev ? String((original as Error)?.message ?? message) : message, {
    extensions: { code: "INTERNAL_SERVER_ERROR" },
  });
}

async function contextFromAuthorization(authorization: string | null | undefined, clientIp: string, origin: string): Promise<Context> {
  const viewer = await resolveViewer(authorization);
  if (viewer === "invalid") {
    throw new GraphQLError("The API key is unknown or revoked", {
      extensions: { code: new NotAuthenticatedError().code, http: { status: 401 } },
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
        : contextFromAuthorization(initial.request.headers.get("authorization"), clientIpOf(initial.req), originOf(initial.req)),
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: MAX_QUERY_DEPTH },
        costLimit: { maxCost: MAX_QUERY_COST },
        maxAliases: { n: 30 },
        maxTokens: { n: 5000 },
      }) as Plugin,
      useCompiledExecution(),
    ],
  });

  const server = createServer(async (req, res) => {
    if (req.url === "/healthz") {
      const ok = await healthy();
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ ok }));
      return;
    }
    if (req.url === STRIPE_WEBHOOK_PATH && req.method === "POST") {
      await stripeWebhook(req, res);
      return;
    }
    if (req.url?.startsWith(JUPYTER_PROXY_PREFIX)) return proxyJupyter(req, res);
    yoga(req, res);
  });

  const wsServer = new WebSocketServer({ server, path: GRAPHQL_PATH });
  /** The key each open connection authenticated with. */
  const connectionKeys = new Map<WebSocket, number>();
  async function closeRevokedConnections(): Promise<number> {
    const keyIds = [...new Set(connectionKeys.values())];
    if (keyIds.length === 0) return 0;
    const revoked = await prisma.apiKey.findMany({ where: { id: { in: keyIds }, revokedAt: { not: null } }, select: { id: true } });
    const revokedIds = new Set(revoked.map((key) => key.id));
    let closed = 0;
    for (const [socket, keyId] of connectionKeys) {
      if (!revokedIds.has(keyId)) continue;
      socket.close(4403, "API key revoked");
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
  // socket with 4403 Forbidden. A key revoked later closes its connections with 4403 within
  // WS_KEY_RECHECK_SECONDS (every request over HTTP is checked on its own).
  const wsCleanup = useServer<Record<string, unknown>, { socket: WebSocket; request: IncomingMessage; viewer?: Viewer }>(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: async (args: any) => refusalAsError(await args.rootValue.subscribe(args)),
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const viewer = typeof authorization === "string" ? await resolveViewer(authorization).catch(() => "invalid" as const) : null;
        if (!viewer || viewer === "invalid") return false;
        ctx.extra.viewer = viewer;
        const socket = ctx.extra.socket;
        connectionKeys.set(socket, viewer.keyId);
        socket.once("close", () => connectionKeys.delete(socket));
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, params: payload, viewer: ctx.extra.viewer });
        const { schema: envelopedSchema, execute, subscribe, parse, validate } = enveloped;
        const document = parse(payload.query);
        const errors = validate(envelopedSchema, document);
        if (errors.length > 0) return errors;
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
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
