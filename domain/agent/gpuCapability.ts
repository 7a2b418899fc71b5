/*
 * Whether a machine can run GPU rentals, from its agent's last heartbeat (MachineMetricsInput):
 * its engine hands GPUs to containers (`containerGpus`), or its agent runs in the GPU-less test mode
 * (`gpulessTestMode`: containers get their device list without isolation, and say so). A machine
 * whose agent has not said (no heartbeat yet) is taken to be able; its agent refuses what it cannot run.
 */
export function handsOutGpus(metrics: unknown): boolean {
  if (typeof metrics !== "object" || metrics === null) return true;
  const { containerGpus, gpulessTestMode } = metrics as { containerGpus?: boolean | null; gpulessTestMode?: boolean | null };
  return containerGpus !== false || gpulessTestMode === true;
}
