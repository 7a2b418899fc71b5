import { connect } from "node:net";
import type { Logger } from "pino";
import { AgentApi } from "./api.ts";
import { type Backoff, subscribeAssignments } from "./connection.ts";
import { LogService } from "./logs.ts";
import { startHeartbeat } from "./metrics.ts";
import { type RecheckOptions, startSpecRecheck } from "./recheck.ts";
import { Reconciler } from "./reconciler.ts";
import type { Runtime } from "./runtime.ts";
import { SelfTests } from "./selfTest.ts";

export interface AgentOptions {
  /** The API's GraphQL endpoint, e.g. http://127.0.0.1:4000/graphql. */
  apiUrl: string;
  /** The machine's MACHINE-scoped key (from registerMachine). */
  key: string;
  /** "Machine:12". */
  machineId: string;
  runtime: Runtime;
  heartbeatSeconds: number;
  /** Seconds between passes that notice containers ending by themselves. */
  pollSeconds: number;
  backoff: Backoff;
  /** API_URL as the containers should see it (defaults to apiUrl). */
  containerApiUrl?: string;
  /** Where free disk is measured. */
  diskPath: string;
  /** The address renters connect to; default: the local address of the agent's connection to the API. */
  publicAddress?: string;
  /** Measures the machine again every intervalMs and reports changed specs (machines registered by `register`). */
  recheck?: Pick<RecheckOptions, "intervalMs" | "detect" | "reportedPath">;
  /**
   * GPU-less test mode: run GPU rentals on a runtime that cannot hand out GPUs, without isolation
   * (the containers' environment and labels say so, and so does the heartbeat). Off: they are refused.
   */
  allowGpuless?: boolean;
  logger: Logger;
}

export interface Agent {
  /** Resolves when stopped; rejects with the reason when the API refused the key. */
  done: Promise<void>;
  /** Disconnects and stops reconciling; containers keep running (a restarted agent adopts them). */
  stop(): Promise<void>;
}

/** The local address this host uses to reach the API: the address the agent sees itself at. */
function addressTowards(apiUrl: string): Promise<string | null> {
  const url = new URL(apiUrl);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || (url.protocol === "https:" ? 443 : 80)) });
    socket.once("connect", () => {
      resolve(socket.localAddress?.replace(/^::ffff:/, "") ?? null);
      socket.destroy();
    });
    socket.once("error", () => resolve(null));
  });
}

export function startAgent(options: AgentOptions): Agent {
  const logger = options.logger.child({ machineId: options.machineId });
  const api = new AgentApi(options.apiUrl, options.key);
  let settle!: { resolve: () => void; reject: (error: Error) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  let stopping: Promise<void> | null = null;

  const shutdown = (fatal?: Error) => {
    stopping ??= (async () => {
      if (fatal) logger.error({ err: fatal.message }, "stopping: the API refused this agent");
      clearInterval(poll);
      logs.stop();
      await Promise.all([subscription.stop(), heartbeat.stop(), reconciler.stop(), recheck?.stop(), selfTests.stop()]);
      logger.info("agent stopped");
      if (fatal) settle.reject(fatal);
      else settle.resolve();
    })();
    return stopping;
  };
  const onFatal = (error: Error) => void shutdown(error);
  let address: Promise<string | null> | null = null;

  const reconciler = new Reconciler({
    runtime: options.runtime,
    api,
    logger,
    containerApiUrl: options.containerApiUrl ?? options.apiUrl,
    onFatal,
    allowGpuless: options.allowGpuless ?? false,
  });
  const logs = new LogService({ runtime: options.runtime, api, logger, onFatal });
  const selfTests = new SelfTests({
    api,
    apiUrl: options.apiUrl,
    key: options.key,
    runtime: options.runtime,
    dataDir: options.diskPath,
    logger,
    onFatal,
  });
  const subscription = subscribeAssignments({
    url: options.apiUrl,
    key: options.key,
    machineId: options.machineId,
    logger,
    backoff: options.backoff,
    onState: (state) => {
      reconciler.setDesired(state);
      selfTests.handle(state.selfTests);
    },
    onLogRequest: (request) => logs.handle(request),
    onFatal,
  });
  const heartbeat = startHeartbeat({
    api,
    runtime: options.runtime,
    machineId: options.machineId,
    intervalMs: options.heartbeatSeconds * 1000,
    diskPath: options.diskPath,
    allowGpuless: options.allowGpuless ?? false,
    publicAddress: () => {
      if (options.publicAddress) return Promise.resolve(options.publicAddress);
      // Unknown until the API answers: a later beat tries again.
      address ??= addressTowards(options.apiUrl).then((found) => {
        if (found === null) address = null;
        return found;
      });
      return address;
    },
    logger,
    onFatal,
  });
  const recheck = options.recheck && startSpecRecheck({ ...options.recheck, api, machineId: options.machineId, logger, onFatal });
  const poll = setInterval(() => reconciler.kick(), options.pollSeconds * 1000);
  logger.info({ api: options.apiUrl, runtime: options.runtime.name }, "agent started");

  return { done, stop: () => shutdown() };
}
