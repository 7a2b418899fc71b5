import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { createProxyServer } from "http-proxy-3";
import { jupyterTarget } from "../domain/instances/connection.ts";
import { logger } from "../infra/logger.ts";

export const JUPYTER_PROXY_PREFIX = "/jupyter/";

/**
 * Jupyter's proxy mode: /jupyter/<instanceId>/… on the API's origin is forwarded, path and query
 * unchanged (the server inside runs with that base URL), to the instance's mapped port 8080 on its
 * machine's public address: HTTP requests, and WebSocket upgrades (kernel channels, terminals),
 * whose two sockets are piped once the instance's server switches protocols. The Jupyter server
 * checks the token itself, on both: without it, 403 (a refused upgrade is relayed as that answer).
 * The client's Host header goes along unchanged, as Jupyter's reverse-proxy guide asks: Jupyter
 * compares a WebSocket's Origin with it. Only running JUPYTER instances are reachable this way, so
 * it is no open relay.
 */
const proxy = createProxyServer({ proxyTimeout: 120_000 });
// Errors of a request go to its own callback below; anything else is logged, never thrown.
proxy.on("error", (err) => logger.warn({ err: err.message }, "jupyter proxy error"));

/** The instance's Jupyter server for a /jupyter/<id>/… URL, or null when there is no running one. */
async function targetOf(url: string | undefined): Promise<{ instanceId: string; target: { host: string; port: number } } | null> {
  const match = /^\/jupyter\/(\d{1,10})\//.exec(url ?? "");
  const target = match ? await jupyterTarget(Number(match[1])) : null;
  return match && target ? { instanceId: match[1]!, target } : null;
}

const NOT_FOUND = "No running Jupyter instance here\n";
const UNREACHABLE = "The instance's Jupyter server did not answer\n";

export async function proxyJupyter(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const found = await targetOf(req.url);
  if (!found) {
    res.writeHead(404, { "content-type": "text/plain" }).end(NOT_FOUND);
    return;
  }
  proxy.web(req, res, { target: found.target }, (err) => {
    logger.warn({ err: err.message, instance: found.instanceId }, "jupyter proxy: instance unreachable");
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end(UNREACHABLE);
    else res.destroy();
  });
}

/** A WebSocket upgrade on a /jupyter/<id>/… path, forwarded to the instance's Jupyter server. */
export async function proxyJupyterUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const found = await targetOf(req.url);
  if (!found) {
    socket.end(plainAnswer("404 Not Found", NOT_FOUND));
    return;
  }
  proxy.ws(req, socket, head, { target: found.target }, (err) => {
    logger.warn({ err: err.message, instance: found.instanceId }, "jupyter proxy: WebSocket to the instance failed");
  });
}

/** A whole HTTP/1.1 answer written on a socket that was never upgraded. */
export function plainAnswer(status: string, body: string): string {
  return `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
