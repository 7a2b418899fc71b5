/**
 * Which of a machine's GPUs each running contract gets: a pure step after `clearMachine`, run in the
 * same transaction under the machine's lock. Indices are 0 … numGpus-1.
 *
 * 1. A winner that already holds a valid set (as many distinct in-range indices as it rents, none
 *    kept by an earlier winner) keeps it: a running container never changes devices.
 * 2. A winner that is starting again gets the set it last held when all of it is free, so a
 *    restarted container usually finds the devices it was created with.
 * 3. Every other winner takes the lowest free indices.
 * Winners are taken in instance id order within each step. The clearing never runs more GPUs than
 * the machine has, so step 3 always finds enough.
 */

export interface GpuClaim {
  instanceId: number;
  numGpus: number;
  /** The indices it holds now (LOADING or RUNNING); empty when it does not hold any. */
  held: readonly number[];
  /** The indices it held last time it ran; tried when it starts again. */
  previous: readonly number[];
}

/** The indices of every winner, by instance id. Throws when the winners need more GPUs than the machine has. */
export function assignGpuIndices(machineGpus: number, winners: readonly GpuClaim[]): Map<number, number[]> {
  const taken = new Set<number>();
  const assigned = new Map<number, number[]>();
  const ordered = [...winners].sort((a, b) => a.instanceId - b.instanceId);
  const claimWhole = (claim: GpuClaim, indices: readonly number[]): boolean => {
    if (!isFreeSet(machineGpus, claim.numGpus, indices, taken)) return false;
    for (const index of indices) taken.add(index);
    assigned.set(claim.instanceId, [...indices].sort((a, b) => a - b));
    return true;
  };
  const waiting = ordered.filter((claim) => !claimWhole(claim, claim.held));
  const rest = waiting.filter((claim) => !claimWhole(claim, claim.previous));
  for (const claim of rest) {
    const indices: number[] = [];
    for (let index = 0; index < machineGpus && indices.length < claim.numGpus; index++) {
      if (!taken.has(index)) indices.push(index);
    }
    if (indices.length < claim.numGpus) throw new Error(`instance ${claim.instanceId} needs ${claim.numGpus} GPUs; ${indices.length} are free`);
    claimWhole(claim, indices);
  }
  return assigned;
}

function isFreeSet(machineGpus: number, numGpus: number, indices: readonly number[], taken: ReadonlySet<number>): boolean {
  if (indices.length !== numGpus) return false;
  const distinct = new Set(indices);
  return distinct.size === indices.length && indices.every((i) => Number.isInteger(i) && i >= 0 && i < machineGpus && !taken.has(i));
}
