import { sweepMachineLiveness } from "../domain/agent/liveness.ts";
import type { JobDefinition } from "./index.ts";

/**
 * Every 5 seconds: machines silent for MACHINE_OFFLINE_AFTER_SECONDS go offline, and drifting
 * reliability scores reach the offers (domain/agent/liveness.ts). Set-based, so the job costs two
 * statements however many machines there are, plus one offer sync per machine that changed.
 */
export const machineLivenessJob: JobDefinition = { name: "machine-liveness", everyMs: 5_000, process: () => sweepMachineLiveness() };
