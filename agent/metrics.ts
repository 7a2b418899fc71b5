import { statfs } from "node:fs/promises";
import { loadavg } from "node:os";
import type { Logger } from "pino";
import { type AgentApi, AuthRejectedError, type MachineMetrics } from "./api.ts";
import { run } from "./exec.ts";
import type { Runtime } from "./runtime.ts";

export interface GpuMetrics {
  gpuUtilization: number[];
  gpuTemperatureC: number[];
  gpuMemoryUsedMb: number[];
}

export const NVIDIA_SMI_ARGS = ["--query-gpu=utilization.gpu,temperature.gpu,memory.used", "--format=csv,noheader,nounits"];

/**
 * Parses `nvidia-smi --query-gpu=utilization.gpu,temperature.gpu,memory.used --format=csv,noheader,nounits`,
 * one GPU a line ("87, 64, 10240"). A column with an unreadable value ("[N/A]") is left out whole, so
 * the arrays stay indexed by GPU.
 */
export function parseNvidiaSmi(text: string): Partial<GpuMetrics> {
  const rows = text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => line.split(",").map((cell) => Number(cell.trim())));
  if (rows.length === 0) return {};
  const column = (index: number) => {
    const values = rows.map((row) => row[index]);
    return values.every((value): value is number => value !== undefined && Number.isFinite(value)) ? values : undefined;
  };
  const metrics: Partial<GpuMetrics> = {};
  const utilization = column(0);
  const temperature = column(1);
  const memory = column(2);
  if (utilization) metrics.gpuUtilization = utilization;
  if (temperature) metrics.gpuTemperatureC = temperature;
  if (memory) metrics.gpuMemoryUsedMb = memory.map(Math.round);
  return metrics;
}

async function gpuMetrics(): Promise<Partial<GpuMetrics>> {
  try {
    const result = await run("nvidia-smi", NVIDIA_SMI_ARGS);
    return result.code === 0 ? parseNvidiaSmi(result.stdout) : {};
  } catch {
    return {}; // no nvidia-smi on this host
  }
}

/** The machine's metrics now: GPUs when nvidia-smi is present, CPU load (1-minute), free disk under `diskPath`. */
export async function collectMetrics(diskPath: string): Promise<MachineMetrics> {
  const [gpus, disk] = await Promise.all([gpuMetrics(), statfs(diskPath).catch(() => null)]);
  return {
    ...gpus,
    cpuLoad: loadavg()[0]!,
    ...(disk ? { diskFreeGb: Math.round(((disk.bavail * disk.bsize) / 1e9) * 100) / 100 } : {}),
  };
}

export interface HeartbeatOptions {
  api: AgentApi;
  runtime: Runtime;
  machineId: string;
  intervalMs: number;
  diskPath: string;
  /** GPU-less test mode (agent.ts): reported when the runtime cannot hand out GPUs. */
  allowGpuless: boolean;
  /** The address renters reach the machine at, as the agent sees it. */
  publicAddress(): Promise<string | null>;
  logger: Logger;
  onFatal(error: Error): void;
}

/**
 * Every interval: machineHeartbeat with the metrics, then reportUsage with each running
 * container's bandwidth counters. A beat that fails is logged; the next one carries on.
 */
export function startHeartbeat(options: HeartbeatOptions): { stop(): Promise<void> } {
  const { api, runtime, logger } = options;
  let current: Promise<void> | null = null;
  const beat = async () => {
    const containerGpus = await runtime.containerGpus();
    const metrics = { ...(await collectMetrics(options.diskPath)), containerGpus, gpulessTestMode: !containerGpus && options.allowGpuless };
    const refused = await api.machineHeartbeat(options.machineId, metrics, await options.publicAddress());
    if (refused) logger.warn({ refused }, "heartbeat refused");
    for (const container of await runtime.list()) {
      if (container.state !== "running") continue;
      const { rxBytes, txBytes } = await runtime.netIo(container.label);
      const usageRefused = await api.reportUsage(container.instanceId, rxBytes, txBytes);
      if (usageRefused) logger.warn({ label: container.label, refused: usageRefused }, "usage report refused");
    }
  };
  const tick = () => {
    if (current) return; // the previous beat is still under way
    current = beat()
      .catch((error: unknown) => {
        if (error instanceof AuthRejectedError) return options.onFatal(error);
        logger.warn({ err: error instanceof Error ? error.message : error }, "heartbeat failed");
      })
      .finally(() => (current = null));
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
