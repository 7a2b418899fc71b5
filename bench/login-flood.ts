/**
 * Login flood benchmark: `npx tsx bench/login-flood.ts` (not part of the test suite).
 *
 * Starts the real app (buildApp) in a child process on a fresh database, measures /healthz one
 * request after another while idle (the floor), then sends 640 logins with wrong passwords from 64
 * client addresses (127.0.x.y, ten each: within the per-address budget, so every one reaches
 * password hashing) all at once, and measures /healthz the same way until the last login is
 * answered. Prints the health latencies under the flood, the floor and their ratio, and how the
 * logins were answered (checked, or refused for load with RATE_LIMITED).
 *
 * Env: DATABASE_URL (server to use; default local postgres), REDIS_URL, REGISTRY_CREDENTIALS_KEY (the
 * app runs as in production), PASSWORD_HASHES_AT_ONCE and PASSWORD_HASH_QUEUE (passed to the app:
 * compare settings, one run each), BENCH_KEEP=1.
 */
import http from "node:http";
import { availableParallelism } from "node:os";
import { openBenchDatabase, percentile, startAppProcess } from "./support.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
// Every run its own Redis keys: earlier runs' login budgets do not count.
process.env.REDIS_PREFIX = `bench_login_${Date.now().toString(36)}`;
const ADDRESSES = 64;
const LOGINS_PER_ADDRESS = 10;
const IDLE_SAMPLES = 50;

function post(url: URL, localAddress: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: "POST", localAddress, agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve(text));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function healthMs(origin: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${origin}/healthz`);
  await response.text();
  if (response.status !== 200) throw new Error(`/healthz answered ${response.status}`);
  return performance.now() - started;
}

const summary = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? 0 };
};

const database = await openBenchDatabase(SERVER_URL, "bench_login");
const { url, child } = await startAppProcess(database.url);
try {
  const graphql = new URL(url);
  const origin = graphql.origin;
  for (let i = 0; i < 5; i++) await healthMs(origin);
  const idle: number[] = [];
  for (let i = 0; i < IDLE_SAMPLES; i++) idle.push(await healthMs(origin));

  const query = `mutation ($email: String!, $password: String!) { login(email: $email, password: $password) { __typename ... on Error { code } } }`;
  const outcomes = new Map<string, number>();
  let pending = ADDRESSES * LOGINS_PER_ADDRESS;
  const started = performance.now();
  const logins = Array.from({ length: ADDRESSES * LOGINS_PER_ADDRESS }, async (_, i) => {
    const address = `127.0.${10 + Math.floor(i / LOGINS_PER_ADDRESS / 200)}.${((i / LOGINS_PER_ADDRESS) | 0) % 200 + 2}`;
    // 640 connections at once may overflow the listen backlog: a refused one counts as such.
    const text = await post(graphql, address, JSON.stringify({ query, variables: { email: `flood-${i}@example.com`, password: "a wrong password" } })).catch(
      (error: NodeJS.ErrnoException) => JSON.stringify({ errors: [{ extensions: { code: error.code ?? "CONNECTION_FAILED" } }] }),
    );
    const body = JSON.parse(text) as { data?: { login?: { code?: string } }; errors?: { extensions?: { code?: string } }[] };
    const outcome = body.data?.login?.code ?? body.errors?.[0]?.extensions?.code ?? "OTHER";
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    pending--;
  });
  const flooded: number[] = [];
  while (pending > 0) flooded.push(await healthMs(origin));
  await Promise.all(logins);
  const floodSeconds = (performance.now() - started) / 1000;

  const floor = summary(idle);
  const figure = summary(flooded);
  console.log(`cores: ${availableParallelism()}; PASSWORD_HASHES_AT_ONCE=${process.env.PASSWORD_HASHES_AT_ONCE ?? "default"} PASSWORD_HASH_QUEUE=${process.env.PASSWORD_HASH_QUEUE ?? "default"}`);
  console.log(`logins: ${ADDRESSES * LOGINS_PER_ADDRESS} from ${ADDRESSES} addresses, answered in ${floodSeconds.toFixed(2)} s: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  console.log(`/healthz idle (floor): p50 ${floor.p50.toFixed(1)} ms, p99 ${floor.p99.toFixed(1)} ms (${idle.length} samples)`);
  console.log(`/healthz during the flood: p50 ${figure.p50.toFixed(1)} ms, p99 ${figure.p99.toFixed(1)} ms, max ${figure.max.toFixed(1)} ms (${flooded.length} samples)`);
  console.log(`ratio (flood p50 / floor p50): ${(figure.p50 / floor.p50).toFixed(1)}x; max / floor p50: ${(figure.max / floor.p50).toFixed(1)}x`);
} finally {
  child.kill();
  await database.release();
}
