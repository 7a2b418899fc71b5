import type { Logger } from "pino";
import { type AgentApi, AuthRejectedError, type SelfTestCheckReport } from "./api.ts";
import { detectGpus, type HostProbe, measureDisk, measureNetwork, realProbe } from "./detect.ts";
import type { Runtime } from "./runtime.ts";

/*
 * The machine's self-test, run when the API asks (MachineAssignments.selfTests): the GPUs nvidia-smi
 * lists and the CUDA version the driver offers, the data disk's write and read speed, the network's
 * speed against the API's own speed test, and a container started by the agent's runtime. Every
 * check runs and is reported, passed or not, with what the agent saw.
 */

export interface SelfTestOptions {
  api: AgentApi;
  apiUrl: string;
  key: string;
  runtime: Runtime;
  /** The data directory, whose disk is measured. */
  dataDir: string;
  logger: Logger;
  onFatal(error: Error): void;
  probe?: HostProbe;
  diskTestBytes?: number;
  networkTestBytes?: number;
}

const failure = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Runs every check; none throws. */
export async function runSelfTest(options: SelfTestOptions): Promise<SelfTestCheckReport[]> {
  const checks: SelfTestCheckReport[] = [];
  const failed = (name: SelfTestCheckReport["name"], error: unknown) => checks.push({ name, passed: false, value: null, unit: null, message: failure(error) });

  try {
    const gpus = await detectGpus(options.probe ?? realProbe);
    checks.push({ name: "GPU_VISIBLE", passed: true, value: gpus.numGpus, unit: "GPUs", message: `${gpus.numGpus} × ${gpus.gpuName}, driver ${gpus.driverVersion}` });
    const cuda = gpus.cudaMaxGood > 0;
    checks.push({ name: "CUDA", passed: cuda, value: gpus.cudaMaxGood, unit: "version", message: cuda ? `the driver runs CUDA up to ${gpus.cudaMaxGood}` : "the driver reports no CUDA version" });
  } catch (error) {
    failed("GPU_VISIBLE", error);
    failed("CUDA", error);
  }

  try {
    const { writeMBps, readMBps } = await measureDisk(options.dataDir, options.diskTestBytes);
    checks.push({ name: "DISK_WRITE", passed: writeMBps > 0, value: writeMBps, unit: "MB/s", message: `wrote to ${options.dataDir}` });
    checks.push({ name: "DISK_READ", passed: readMBps > 0, value: readMBps, unit: "MB/s", message: `read back from ${options.dataDir}` });
  } catch (error) {
    failed("DISK_WRITE", error);
    failed("DISK_READ", error);
  }

  try {
    const network = await measureNetwork(options.apiUrl, options.key, options.networkTestBytes);
    checks.push({ name: "NETWORK_DOWN", passed: network.inetDownMbps > 0, value: network.inetDownMbps, unit: "Mbps", message: "downloaded from the API's speed test" });
    checks.push({ name: "NETWORK_UP", passed: network.inetUpMbps > 0, value: network.inetUpMbps, unit: "Mbps", message: "uploaded to the API's speed test" });
  } catch (error) {
    failed("NETWORK_DOWN", error);
    failed("NETWORK_UP", error);
  }

  try {
    checks.push({ name: "CONTAINER_START", passed: true, value: null, unit: null, message: await options.runtime.startTestContainer() });
  } catch (error) {
    failed("CONTAINER_START", error);
  }
  return checks;
}

/** Runs each requested self-test once, one at a time, and reports it; a failed report is retried with the next state. */
export class SelfTests {
  private readonly reported = new Set<string>();
  private running: Promise<void> | null = null;

  constructor(private readonly options: SelfTestOptions) {}

  handle(requested: string[]): void {
    const next = requested.find((id) => !this.reported.has(id));
    if (!next || this.running) return;
    this.running = this.run(next).finally(() => {
      this.running = null;
    });
  }

  private async run(id: string): Promise<void> {
    const { logger } = this.options;
    logger.info({ selfTest: id }, "running a self-test");
    const checks = await runSelfTest(this.options);
    try {
      const refused = await this.options.api.reportSelfTest(id, checks);
      if (refused) logger.warn({ selfTest: id, refused }, "the API refused the self-test report");
      this.reported.add(id);
      logger.info({ selfTest: id, passed: checks.filter((check) => check.passed).length, of: checks.length }, "self-test reported");
    } catch (error) {
      if (error instanceof AuthRejectedError) this.options.onFatal(error);
      else logger.warn({ selfTest: id, err: failure(error) }, "self-test report failed; retried with the next state");
    }
  }

  /** Resolves when a running self-test has ended. */
  async stop(): Promise<void> {
    await this.running;
  }
}
