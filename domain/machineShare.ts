/**
 * A rental of k of a machine's n GPUs gets k/n of its CPU cores and RAM (the reference's
 * cpu_cores_effective and cpu_ram): shown on offers, enforced by the host agent.
 */
export interface MachineShare {
  /** CPU cores, to the hundredth, rounded down. */
  cpuCores: number;
  /** RAM in MB, rounded down. */
  ramMb: number;
}

export function machineShare(machine: { numGpus: number; cpuCores: number; cpuRamMb: number }, numGpus: number): MachineShare {
  return {
    cpuCores: Math.floor((machine.cpuCores * numGpus * 100) / machine.numGpus) / 100,
    ramMb: Math.floor((machine.cpuRamMb * numGpus) / machine.numGpus),
  };
}
