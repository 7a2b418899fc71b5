import { prisma } from "../../infra/db.ts";
import type { LaunchMode } from "../../prisma/generated/client/client.ts";
import { HOLDING_STATUSES } from "../auction/contracts.ts";
import { NotFoundError } from "../errors.ts";
import { jupyterPath } from "../instances/connection.ts";
import { type PortMapping, portMappingsOf } from "../instances/ports.ts";
import { containerLabel } from "../instances/service.ts";
import { pullCredentials, type RegistryAuth } from "../registryCredentials.ts";
import { machineShare } from "../machineShare.ts";
import { pendingSelfTests } from "../selfTests.ts";

/*
 * The desired state of a machine, as its agent receives it (the realtime contract's
 * MachineAssignments): every instance the machine holds that is not destroyed, RUNNING when the
 * platform has given it its GPUs (LOADING or RUNNING), STOPPED otherwise (its container stops; the
 * disk stays until the instance is destroyed, when it drops out of the list).
 *
 * Revision: `machine.assignments_revision`, a counter bumped in the same transaction as every change
 * that can alter this state. Every writer of a machine's instances takes the machine row lock with
 * `lockMachineForEvent` / `lockMachineOfInstance` (which bump it), the auction's clearing bumps it
 * when it locks the machine, and the jobs that change instances without that lock (expiry, exhausted
 * balances) leave the machine flagged for a clearing, which bumps it and publishes right after. So
 * a state read later never carries a lower revision, and an agent that reconnects reads the whole
 * state again: nothing is lost.
 */

export interface AssignmentView {
  instanceId: number;
  containerLabel: string;
  desiredState: "RUNNING" | "STOPPED";
  image: string;
  launchMode: LaunchMode;
  onstart: string | null;
  env: { key: string; value: string }[];
  ports: string[];
  /** Each container port and the external port it was given (null: an identity port the agent maps). */
  portMappings: PortMapping[];
  /** OpenSSH public key lines that may log in as root (SSH mode). */
  sshKeys: string[];
  /** JUPYTER mode: the Jupyter server's token and its base path. */
  jupyterToken: string | null;
  jupyterBasePath: string;
  args: string[];
  /** Pull credentials for a private image (decrypted: this view goes to the machine's agent only). */
  registryAuth: RegistryAuth | null;
  rebootCount: number;
  recycleCount: number;
  diskGb: number;
  numGpus: number;
  /** The machine's GPUs the container gets: empty unless RUNNING is desired. */
  gpuIndices: number[];
  /** Its share of the machine's CPU cores and RAM (machineShare.ts). */
  cpuCores: number;
  memoryMb: number;
  preemptGraceSeconds: number;
  statusMessage: string | null;
}

export interface MachineAssignmentsView {
  machineId: number;
  revision: bigint;
  instances: AssignmentView[];
  /** Self-tests requested and not yet reported: the agent runs each once. */
  selfTests: number[];
}

export async function machineAssignments(machineId: number): Promise<MachineAssignmentsView> {
  const machine = await prisma.machine.findUnique({
    where: { id: machineId },
    select: {
      assignmentsRevision: true,
      preemptGraceSeconds: true,
      numGpus: true,
      cpuCores: true,
      cpuRamMb: true,
      instances: {
        where: { status: { not: "DESTROYED" } },
        orderBy: { id: "asc" },
        include: { portMappings: true, sshKeys: { select: { publicKey: true }, orderBy: { id: "asc" } } },
      },
    },
  });
  if (!machine) throw new NotFoundError("Machine");
  const credentials = await pullCredentials(machine.instances);
  const selfTests = await pendingSelfTests(machineId);
  return {
    machineId,
    revision: machine.assignmentsRevision,
    selfTests,
    instances: machine.instances.map((instance) => {
      // The platform wants the container running while the instance holds its GPUs.
      const runs = HOLDING_STATUSES.has(instance.status);
      const share = machineShare(machine, instance.numGpus);
      return {
        instanceId: instance.id,
        containerLabel: containerLabel(instance.id),
        desiredState: runs ? "RUNNING" : "STOPPED",
        image: instance.image,
        launchMode: instance.launchMode,
        onstart: instance.onstart || null,
        env: instance.env as { key: string; value: string }[],
        ports: instance.ports,
        portMappings: portMappingsOf(instance, instance.portMappings),
        sshKeys: instance.sshKeys.map((key) => key.publicKey),
        jupyterToken: instance.jupyterToken,
        jupyterBasePath: jupyterPath(instance.id),
        args: instance.args,
        rebootCount: instance.rebootCount,
        recycleCount: instance.recycleCount,
        diskGb: instance.diskGb,
        numGpus: instance.numGpus,
        gpuIndices: runs ? instance.gpuIndices : [],
        cpuCores: share.cpuCores,
        memoryMb: share.ramMb,
        // Set when the auction took its GPUs; a stop by its owner uses the host's setting.
        preemptGraceSeconds: instance.preemptGraceSeconds ?? machine.preemptGraceSeconds,
        statusMessage: instance.statusMessage,
        registryAuth: credentials.get(instance.id) ?? null,
      } satisfies AssignmentView;
    }),
  };
}
