import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { hasPermission } from "../domain/authorization.ts";
import { RateLimitedError } from "../domain/errors.ts";
import { consumeSpeedTest } from "../domain/rateLimit.ts";
import { resolveViewer } from "./context.ts";

/**
 * The network speed test hosts' agents run against the API itself: GET /speedtest/download?bytes=N
 * sends N bytes, POST /speedtest/upload takes a body and says how much arrived. The agent times
 * both. Each answer names the address the API sees the caller at (x-client-address, `address`):
 * the machine's public address. Only a machine's agent (MACHINE key) or a host registering one
 * (a key with MACHINES) may run it, within a per-key hourly budget.
 */
export const SPEED_TEST_PREFIX = "/speedtest/";
/** The largest transfer one request may ask for or send. */
export const MAX_SPEED_TEST_BYTES = 256 * 1024 * 1024;

const CHUNK = randomBytes(1024 * 1024);

function answer(res: ServerResponse, status: number, body: object, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

export async function speedTest(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://api");
  const route = `${req.method} ${url.pathname}`;
  if (route !== "GET /speedtest/download" && route !== "POST /speedtest/upload") {
    return answer(res, 404, { code: "NOT_FOUND", message: "GET /speedtest/download?bytes=N or POST /speedtest/upload" });
  }
  const viewer = await resolveViewer(req.headers.authorization);
  if (viewer === null || viewer === "invalid") {
    return answer(res, 401, { code: "UNAUTHENTICATED", message: "a MACHINE key, or an account key with MACHINES, is required" });
  }
  if (viewer.scope !== "MACHINE" && !hasPermission(viewer, "MACHINES")) {
    return answer(res, 403, { code: "FORBIDDEN", message: "a MACHINE key, or an account key with MACHINES, is required" });
  }
  try {
    await consumeSpeedTest(viewer.keyId);
  } catch (error) {
    if (!(error instanceof RateLimitedError)) throw error;
    return answer(res, 429, { code: error.code, message: error.message }, { "retry-after": error.retryAfterSeconds });
  }
  const address = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
  if (route === "POST /speedtest/upload") return receive(req, res, address);

  const bytes = Number(url.searchParams.get("bytes"));
  if (!Number.isSafeInteger(bytes) || bytes < 1 || bytes > MAX_SPEED_TEST_BYTES) {
    return answer(res, 400, { code: "VALIDATION", message: `bytes must be a whole number from 1 to ${MAX_SPEED_TEST_BYTES}` });
  }
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes, "x-client-address": address, "cache-control": "no-store" });
  let left = bytes;
  while (left > 0 && !res.destroyed) {
    const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
    left -= chunk.length;
    // Waits for the socket to drain: a slow link is measured, not buffered in memory.
    if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve).once("close", resolve));
  }
  res.end();
}

async function receive(req: IncomingMessage, res: ServerResponse, address: string): Promise<void> {
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_SPEED_TEST_BYTES) {
      return answer(res, 413, { code: "VALIDATION", message: `at most ${MAX_SPEED_TEST_BYTES} bytes` }, { connection: "close" });
    }
  }
  answer(res, 200, { bytes, address });
}
