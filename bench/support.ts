import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";

/** The value at percentile `p` (0–100) of ascending `sorted` values. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The log-log slope of a figure between two sizes, as text: how it grows with the size (1 = linearly,
 * 0 = not at all). Figures at three sizes give two slopes: the curve RESULTS.md states.
 */
export function growthExponent(sizeA: number, valueA: number, sizeB: number, valueB: number): string {
  return (Math.log(valueB / valueA) / Math.log(sizeB / sizeA)).toFixed(2);
}

/**
 * A product-against-floor curve as a Markdown table: each size's figure (p50 unless told), their
 * ratio, and the growth exponent of each from the size before.
 */
export function printCurve(sizeName: string, rows: readonly { size: number; product: number; floor: number }[], figure = "p50 ms"): void {
  console.log(`| ${sizeName} | product ${figure} | floor ${figure} | ratio | exponent product | exponent floor |`);
  console.log("|---:|---:|---:|---:|---:|---:|");
  rows.forEach((row, i) => {
    const previous = rows[i - 1];
    const slopes = previous
      ? `${growthExponent(previous.size, previous.product, row.size, row.product)} | ${growthExponent(previous.size, previous.floor, row.size, row.floor)}`
      : " | ";
    console.log(`| ${row.size} | ${row.product.toFixed(1)} | ${row.floor.toFixed(1)} | ${(row.product / row.floor).toFixed(2)} | ${slopes} |`);
  });
}

/**
 * The environment of the app's processes in a benchmark: production mode, which requires the
 * secrets development makes up (a registry-credentials key of the run's own when none is set).
 */
export function productionEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, NODE_ENV: "production", REGISTRY_CREDENTIALS_KEY: process.env.REGISTRY_CREDENTIALS_KEY ?? BENCH_CREDENTIALS_KEY, ...extra };
}
const BENCH_CREDENTIALS_KEY = randomBytes(32).toString("base64");

/**
 * The V8 flags of the API's processes: those of `npm start` (package.json), the production command,
 * or BENCH_API_NODE_ARGS (empty for none). Without them a benchmark measures another garbage
 * collector than production's.
 */
export const API_NODE_ARGS: string[] =
  process.env.BENCH_API_NODE_ARGS?.split(" ").filter(Boolean) ??
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).scripts.start.match(/--[\w-]+=\S+/g) ??
  [];

/** Starts bench/serve-app.ts on `databaseUrl` (production mode and flags, quiet logs); resolves with its GraphQL URL. */
export async function startAppProcess(databaseUrl: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...API_NODE_ARGS, "--import", "tsx", fileURLToPath(new URL("./serve-app.ts", import.meta.url))], {
    env: productionEnv({ DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  return { url: line.toString().trim(), child };
}

/**
 * A new, migrated database `name` on the server of `serverUrl` (an old one of that name is dropped),
 * made the process's DATABASE_URL before any module reads the config. Returns its URL.
 */
export async function freshBenchDatabase(serverUrl: string, name: string): Promise<string> {
  await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const databaseUrl = withDatabase(serverUrl, name);
  process.env.DATABASE_URL = databaseUrl;
  const { migrate } = await import("../infra/migrate.ts");
  await migrate(databaseUrl);
  return databaseUrl;
}

export interface BenchDatabase {
  name: string;
  url: string;
  /** False when BENCH_DATABASE named a database kept from an earlier run: it is already seeded. */
  fresh: boolean;
  /** Drops a fresh database unless BENCH_KEEP is set. */
  release(): Promise<void>;
}

/** The benchmark's database: the kept one named by BENCH_DATABASE, or a fresh `<prefix>_<time>`. */
export async function openBenchDatabase(serverUrl: string, prefix: string): Promise<BenchDatabase> {
  const kept = process.env.BENCH_DATABASE;
  const name = kept ?? `${prefix}_${Date.now().toString(36)}`;
  const url = kept ? withDatabase(serverUrl, name) : await freshBenchDatabase(serverUrl, name);
  process.env.DATABASE_URL = url;
  return {
    name,
    url,
    fresh: !kept,
    release: async () => {
      if (!kept && !process.env.BENCH_KEEP) await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/**
 * A graphql-ws subscriber reduced to the protocol (graphql-transport-ws: connection_init with the key,
 * subscribe, then `next` messages), so that 5,000 of them in this process cost the shared cores as
 * little as possible (bench/subscriptions.ts's agents use the full graphql-ws client with its retries).
 */
export function leanSubscriber(
  url: string,
  key: string,
  query: string,
  onNext: (payload: unknown, raw: string) => void,
  variables?: Record<string, unknown>,
): Promise<WebSocket> {
  return new Promise((connected, failed) => {
    const socket = new WebSocket(url, "graphql-transport-ws");
    socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${key}` } })));
    socket.on("message", (data: Buffer) => {
      const raw = data.toString();
      const message = JSON.parse(raw);
      if (message.type === "next") onNext(message.payload, raw);
      else if (message.type === "connection_ack") {
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
        connected(socket);
      } else if (message.type === "ping") socket.send('{"type":"pong"}');
      else if (message.type === "error") console.error("subscription failed", message.payload);
    });
    socket.on("error", failed);
    socket.on("close", (code) => code !== 1000 && failed(new Error(`socket closed with ${code}`)));
  });
}
