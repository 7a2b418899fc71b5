/**
 * The subscription benchmarks' floor: a bare `ws` server in its own process that forwards one event
 * key's Redis messages (the same channel the API processes listen to) to the sockets registered for
 * each id in them, as a stored payload: no GraphQL, no refetch, no authentication. A socket names its
 * id in the URL (`/?id=42`); the payloads (id → the last message the product sent for it) arrive over
 * IPC before the server listens.
 *
 * `startFanoutFloor(event, payloads, env)` forks it and resolves with its URL.
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import WebSocket, { WebSocketServer } from "ws";
import type { EventKey } from "../infra/pubsub.ts";

const self = fileURLToPath(import.meta.url);

export async function startFanoutFloor(
  event: EventKey,
  payloads: Record<string, string>,
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(self, [event], { env, execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  child.send(payloads);
  const [{ url }] = (await once(child, "message")) as [{ url: string }];
  return { url, child };
}

async function serve(event: EventKey): Promise<void> {
  const [payloads] = (await once(process, "message")) as [Record<string, string>];
  const { eventChannel } = await import("../infra/pubsub.ts");
  const { redisConnection } = await import("../infra/redis.ts");
  const sockets = new Map<number, Set<WebSocket>>();
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  server.on("connection", (socket, request) => {
    const id = Number(new URL(request.url!, "http://x").searchParams.get("id"));
    if (!sockets.has(id)) sockets.set(id, new Set());
    sockets.get(id)!.add(socket);
    socket.on("close", () => sockets.get(id)!.delete(socket));
  });
  await once(server, "listening");
  const redis = redisConnection({ lazyConnect: false, enableReadyCheck: false });
  await redis.subscribe(eventChannel(event));
  redis.on("message", (_channel: string, message: string) => {
    for (const [id] of JSON.parse(message) as [number, unknown][]) {
      const payload = payloads[id];
      if (payload) for (const socket of sockets.get(id) ?? []) socket.send(payload);
    }
  });
  process.once("SIGTERM", () => process.exit(0));
  process.send!({ url: `ws://127.0.0.1:${(server.address() as { port: number }).port}` });
}

if (process.argv[1] === self) await serve(process.argv[2] as EventKey);
