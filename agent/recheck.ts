import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { type AgentApi, AuthRejectedError } from "./api.ts";
import type { DetectedMachine } from "./detect.ts";
import { DetectionError } from "./hardware.ts";
import { specsInput, writeFileAtomic } from "./register.ts";

/** Measured speeds wander from run to run; they are reported again only when they moved this much. */
const SPEED_TOLERANCE = 0.25;
// cpuGhz too: without a rated clock in the model name it is the current clock, which moves with load.
const MEASURED_SPEEDS = new Set(["diskBw", "inetUpMbps", "inetDownMbps", "cpuGhz"]);

/**
 * The specs that differ from those last reported: anything the hardware says exactly (a driver
 * upgrade, a GPU removed, a new disk), and speeds that moved by more than SPEED_TOLERANCE.
 */
export function changedSpecs(reported: Record<string, unknown> | null, now: Record<string, unknown>): Record<string, unknown> {
  if (reported === null) return now;
  return Object.fromEntries(
    Object.entries(now).filter(([field, value]) => {
      const before = reported[field];
      if (MEASURED_SPEEDS.has(field) && typeof value === "number" && typeof before === "number" && before > 0) {
        return Math.abs(value - before) / before > SPEED_TOLERANCE;
      }
      return value !== before;
    }),
  );
}

export interface RecheckOptions {
  api: AgentApi;
  machineId: string;
  intervalMs: number;
  detect(): Promise<DetectedMachine>;
  /** The file holding the specs last reported (written by register, kept up to date here). */
  reportedPath: string;
  logger: Logger;
  onFatal(error: Error): void;
}

/**
 * Every interval: measures the machine again and, when something changed, reports it with
 * updateMachine, so offers and DLPerf follow the hardware. A check that fails (or is refused, such
 * as a GPU gone while rented) is logged and tried again next time.
 */
export function startSpecRecheck(options: RecheckOptions): { stop(): Promise<void> } {
  const { logger } = options;
  let current: Promise<void> | null = null;
  const check = async () => {
    const detected = await options.detect();
    const reportedText = await readFile(options.reportedPath, "utf8").catch(() => null);
    const reported = reportedText === null ? null : specsInput(JSON.parse(reportedText) as DetectedMachine);
    const changes = changedSpecs(reported, specsInput(detected));
    if (Object.keys(changes).length === 0) return;
    const refused = await options.api.updateMachine({ machineId: options.machineId, ...changes });
    if (refused) {
      logger.warn({ refused, changes }, "updateMachine refused the re-checked specs");
      return;
    }
    await writeFileAtomic(options.reportedPath, `${JSON.stringify(detected, null, 2)}\n`);
    logger.info({ changes }, "machine specs updated");
  };
  const tick = () => {
    if (current) return;
    current = check()
      .catch((error: unknown) => {
        if (error instanceof AuthRejectedError) return options.onFatal(error);
        const detail = error instanceof DetectionError ? { code: error.code, err: error.message } : { err: (error as Error)?.message ?? error };
        logger.warn(detail, "spec re-check failed");
      })
      .finally(() => (current = null));
  };
  // Registration (or the last run) has just measured: the first check waits an interval.
  const timer = setInterval(tick, options.intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
