// `npm start`: the whole system in one process. Starts embedded PostgreSQL and a private Redis when
// DATABASE_URL or REDIS_URL is unset, makes a development REGISTRY_CREDENTIALS_KEY when that is unset
// outside production, validates the config, migrates, loads the demo data into an
// empty database, then serves the API and runs the workers until SIGTERM or SIGINT.
// PROCESS_ROLE=api or worker runs only the API or only the workers (no demo data, no demo agents):
// a deployment runs N of each against one PostgreSQL and Redis (README, Deployment).
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startEmbeddedPostgres, startPrivateRedis } from "../infra/local-services.ts";
import { logger } from "../infra/logger.ts";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";

const DATABASE = "marketplace";
const SHUTDOWN_TIMEOUT_MS = 15_000;
const dataDir = fileURLToPath(new URL("../.data", import.meta.url));

/** What has started so far, stopped in reverse order on shutdown. */
const running: { name: string; stop(): Promise<void> }[] = [];
let state: "starting" | "running" | "stopping" = "starting";
let stopRequested = false;

class StopRequested extends Error {}

// The shutdown stops everything in order (the embedded cluster last) and exits 0.
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (state === "starting") stopRequested = true;
    else if (state === "running") void shutdown(signal);
  });
}

/** Between start steps: a signal that arrived during start-up stops it here. */
function checkpoint(): void {
  if (stopRequested) throw new StopRequested();
}

async function stopAll(): Promise<boolean> {
  let clean = true;
  for (const item of running.reverse()) {
    try {
      await item.stop();
    } catch (err) {
      clean = false;
      logger.error({ err, service: item.name }, "failed to stop");
    }
  }
  running.length = 0;
  return clean;
}

async function shutdown(signal: string): Promise<void> {
  state = "stopping";
  logger.info({ signal }, "shutting down");
  setTimeout(() => {
    logger.error("shutdown timed out");
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
  const clean = await stopAll();
  logger.info("stopped");
  process.exit(clean ? 0 : 1);
}

/** The project's database on the embedded cluster, created on first start. */
async function ensureDatabase(serverUrl: string): Promise<string> {
  await adminQuery(serverUrl, `CREATE DATABASE ${DATABASE}`).catch((error: { code?: string }) => {
    if (error.code !== "42P04") throw error; // it exists already
  });
  return withDatabase(serverUrl, DATABASE);
}

async function main(): Promise<void> {
  if (!process.env.DATABASE_URL) {
    logger.info({ dataDir }, "DATABASE_URL is unset: starting embedded PostgreSQL");
    const postgres = await startEmbeddedPostgres(dataDir);
    running.push({ name: "embedded postgres", stop: postgres.stop });
    process.env.DATABASE_URL = await ensureDatabase(postgres.url);
    checkpoint();
  }
  if (!process.env.REDIS_URL) {
    logger.info("REDIS_URL is unset: starting a private redis-server");
    const redisServer = await startPrivateRedis();
    running.push({ name: "private redis", stop: redisServer.stop });
    process.env.REDIS_URL = redisServer.url;
    checkpoint();
  }

  if (!process.env.REGISTRY_CREDENTIALS_KEY && process.env.NODE_ENV !== "production") {
    const { developmentRegistryKey } = await import("../infra/developmentKey.ts");
    process.env.REGISTRY_CREDENTIALS_KEY = await developmentRegistryKey(dataDir);
    logger.info({ dataDir }, "REGISTRY_CREDENTIALS_KEY is unset: using the development key kept in the data directory");
  }

  // Modules that read the config are imported only now that the environment is complete.
  const { config } = await import("../infra/config.ts");
  const { PORT, DATABASE_URL, PROCESS_ROLE } = config();
  const serveApi = PROCESS_ROLE !== "worker";
  const runWorkers = PROCESS_ROLE !== "api";

  const { migrate } = await import("../infra/migrate.ts");
  const applied = await migrate(DATABASE_URL);
  logger.info({ applied }, applied.length ? "migrations applied" : "schema up to date");
  checkpoint();

  const [{ prisma, meteringPrisma }, { redis }, { closePubSub }, { closeReadReplica }] = await Promise.all([
    import("../infra/db.ts"),
    import("../infra/redis.ts"),
    import("../infra/pubsub.ts"),
    import("../infra/replica.ts"),
  ]);
  running.push({
    name: "clients",
    stop: async () => {
      await Promise.all([prisma.$disconnect(), meteringPrisma.$disconnect(), closeReadReplica()]);
      redis.disconnect();
      await closePubSub();
    },
  });

  if (PROCESS_ROLE !== "all") return runRole(serveApi, runWorkers, PORT);

  const { loadDemoData, issueDemoKeys } = await import("../domain/demo.ts");
  if (await loadDemoData()) logger.info("empty database: demo data loaded");
  const demoKeys = await issueDemoKeys();
  checkpoint();

  await startWorkers();
  const url = await startApi(PORT);

  // Demo agents, in this process, for the first DEMO_AGENTS demo machines (the rest of the fleet has
  // none, so the liveness job leaves it alone): each one the real agent with the process runtime,
  // subscribed to its machine's assignments over the API like any host's agent.
  const { issueDemoAgentKeys } = await import("../domain/agent/demo.ts");
  const [{ startAgent }, { ProcessRuntime }] = await Promise.all([import("../agent/agent.ts"), import("../agent/runtimes/process.ts")]);
  const agents = (await issueDemoAgentKeys(config().DEMO_AGENTS)).map(({ machineId, token }) => {
    // Per deployment (its Redis prefix), so that two systems on one checkout never share containers.
    const stateDir = join(dataDir, "agents", config().REDIS_PREFIX, `machine-${machineId}`);
    const agentLogger = logger.child({ component: "demo-agent" });
    return startAgent({
      apiUrl: url,
      key: token,
      machineId: `Machine:${machineId}`,
      runtime: new ProcessRuntime(join(stateDir, "processes"), agentLogger),
      heartbeatSeconds: 15,
      pollSeconds: 5,
      backoff: { initialMs: 500, maxMs: 10_000 },
      diskPath: dataDir,
      // The process runtime never hands out GPUs: the demo runs its rentals without, and says so.
      allowGpuless: true,
      logger: agentLogger,
    });
  });
  running.push({ name: "demo agents", stop: async () => void (await Promise.all(agents.map((agent) => agent.stop()))) });
  logger.info({ machines: agents.length }, "demo agents started (process runtime)");

  for (const demo of demoKeys) {
    logger.info({ email: demo.email, key: demo.token }, `demo ${demo.role} API key (Authorization: Bearer <key>)`);
  }
  logger.info({ url, console: new URL("/", url).href }, `web console at ${new URL("/", url).href}, API and GraphiQL at ${url}`);
  state = "running";
  checkpoint();
}

async function startWorkers(): Promise<void> {
  const { startWorkers: start } = await import("../workers/index.ts");
  const workers = await start();
  running.push({ name: "workers", stop: () => workers.close() });
  checkpoint();
}

/** Builds the web console when needed and serves it with the API; resolves with the GraphQL URL. */
async function startApi(port: number): Promise<string> {
  const { ensureConsoleBuilt } = await import("../client/web/build.ts");
  if (await ensureConsoleBuilt()) logger.info("web console built");
  checkpoint();
  const { buildApp } = await import("./app.ts");
  const app = buildApp();
  const url = await app.start(port);
  running.push({ name: "api", stop: () => app.stop() });
  return url;
}

/** One role of a deployment: the API alone or the workers alone. */
async function runRole(serveApi: boolean, runWorkers: boolean, port: number): Promise<void> {
  if (runWorkers) await startWorkers();
  if (serveApi) logger.info(`API at ${await startApi(port)}`);
  logger.info({ api: serveApi, workers: runWorkers }, "running");
  state = "running";
  checkpoint();
}

main().catch(async (error: unknown) => {
  state = "stopping";
  if (error instanceof StopRequested) {
    logger.info("stopped during start-up");
  } else {
    // Config errors name the variable; anything else keeps its stack.
    logger.fatal({ err: error }, error instanceof Error ? error.message : String(error));
  }
  const clean = await stopAll();
  process.exit(error instanceof StopRequested && clean ? 0 : 1);
});
