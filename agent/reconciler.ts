import type { Logger } from "pino";
import {
  type AgentApi,
  type Assignment,
  AuthRejectedError,
  type MachineAssignments,
  type ReportDetails,
  type ReportedInstanceState,
  TransientApiError,
} from "./api.ts";
import { type ContainerInfo, LaunchRefusedError, planPorts, type PublishedPort, type Runtime } from "./runtime.ts";

export type Action =
  /** Issue the container's key, create the container and start it. */
  | { type: "launch"; assignment: Assignment }
  | { type: "start" }
  /** Restart with its data kept, recording the assignment's rebootCount. */
  | { type: "reboot"; graceSeconds: number; rebootCount: number }
  /** Remove (with grace) and launch again from a fresh pull. */
  | { type: "recycle"; assignment: Assignment }
  | { type: "stop"; graceSeconds: number }
  /** Stop (with grace) and delete: its instance is gone from the desired state. */
  | { type: "remove"; graceSeconds: number }
  | { type: "report"; status: ReportedInstanceState; message?: string; ports?: PublishedPort[] }
  /** Make the running container's authorized keys the assignment's. */
  | { type: "keys"; keys: string[] };

export interface InstancePlan {
  label: string;
  instanceId: string;
  actions: Action[];
}

/** What the reconciler remembers between passes (in memory: a restarted agent re-reports once). */
export interface ReconcileMemory {
  /** The last state the API took delivery of, per instance id. */
  reported: Map<string, ReportedInstanceState>;
  /** Instances whose launch or start failed at the current revision: retried on the next change. */
  failed: Set<string>;
  /** The grace period last assigned per label, for removing containers whose instance vanished. */
  graces: Map<string, number>;
  /** The SSH keys last installed per label (a restarted agent installs them once more). */
  keys: Map<string, string>;
}

/** Grace period for a container found without an assignment and without a remembered one. */
export const DEFAULT_GRACE_SECONDS = 10;

/**
 * The plan that moves `actual` toward `desired`, per container. A container that ended by itself is
 * reported EXITED and left alone (an exited instance is final); one the agent stopped is started again
 * when wanted; containers of instances absent from the desired state are removed. A container created
 * at a lower recycleCount than assigned is recreated (removed, if not wanted running); one started at a
 * lower rebootCount is restarted.
 */
export function reconcile(desired: MachineAssignments, actual: ContainerInfo[], memory: ReconcileMemory): InstancePlan[] {
  const plans: InstancePlan[] = [];
  const containers = new Map(actual.map((container) => [container.label, container]));
  const report = (assignment: Assignment, status: ReportedInstanceState, message?: string, ports?: PublishedPort[]): Action[] =>
    memory.reported.get(assignment.instanceId) === status
      ? []
      : [{ type: "report", status, ...(message ? { message } : {}), ...(ports ? { ports } : {}) }];
  const keys = (assignment: Assignment): Action[] =>
    memory.keys.get(assignment.containerLabel) === assignment.sshKeys.join("\n") ? [] : [{ type: "keys", keys: assignment.sshKeys }];

  for (const assignment of desired.instances) {
    const container = containers.get(assignment.containerLabel);
    containers.delete(assignment.containerLabel);
    const failed = memory.failed.has(assignment.instanceId);
    let actions: Action[] = [];
    const recycled = container !== undefined && container.recycleCount < assignment.recycleCount;
    if (assignment.desiredState === "RUNNING") {
      // Its GPUs may still be in use by a container on its way out (a preempted one's grace period):
      // it starts on the pass after that one has stopped.
      const waits = failed || gpusInUse(actual, assignment);
      // Restarted on other GPUs: devices are fixed when a container is made, so it is made again.
      const otherGpus =
        (container?.state === "stopped" || container?.state === "created") &&
        container.gpuIndices !== undefined &&
        !sameGpus(container.gpuIndices, assignment.gpuIndices);
      if (!container) actions = waits ? [] : [{ type: "launch", assignment }];
      else if (recycled || otherGpus) actions = waits ? [] : [{ type: "recycle", assignment }];
      else if (container.rebootCount < assignment.rebootCount) {
        actions = failed ? [] : [{ type: "reboot", graceSeconds: assignment.preemptGraceSeconds, rebootCount: assignment.rebootCount }];
      } else if (container.state === "running") actions = [...keys(assignment), ...report(assignment, "RUNNING", undefined, container.ports)];
      else if (container.state === "exited") actions = report(assignment, "EXITED", container.detail);
      else actions = waits ? [] : [{ type: "start" }];
    } else if (recycled) {
      actions = [{ type: "remove", graceSeconds: assignment.preemptGraceSeconds }];
    } else if (container?.state === "running") {
      actions = [{ type: "stop", graceSeconds: assignment.preemptGraceSeconds }];
    } else if (container) {
      actions = report(assignment, "STOPPED");
    }
    if (actions.length > 0) plans.push({ label: assignment.containerLabel, instanceId: assignment.instanceId, actions });
  }
  for (const orphan of containers.values()) {
    const graceSeconds = memory.graces.get(orphan.label) ?? DEFAULT_GRACE_SECONDS;
    plans.push({ label: orphan.label, instanceId: orphan.instanceId, actions: [{ type: "remove", graceSeconds }] });
  }
  return plans;
}

/** Whether another running container holds one of the assignment's GPUs. */
function gpusInUse(actual: readonly ContainerInfo[], assignment: Assignment): boolean {
  const wanted = new Set(assignment.gpuIndices);
  return actual.some(
    (other) => other.label !== assignment.containerLabel && other.state === "running" && (other.gpuIndices ?? []).some((i) => wanted.has(i)),
  );
}

function sameGpus(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((index, i) => index === b[i]);
}

export interface ReconcilerOptions {
  runtime: Runtime;
  api: AgentApi;
  logger: Logger;
  /** API_URL in the container's environment. */
  containerApiUrl: string;
  /** Called when the API rejects the key: the agent stops. */
  onFatal(error: Error): void;
  /** Run GPU rentals on a runtime that cannot hand out GPUs (test mode): otherwise they are refused. */
  allowGpuless: boolean;
}

/**
 * Applies plans: one instance's actions run serially, different instances' concurrently. Each pass
 * re-reads the runtime, so a pass after acting reports what it finds (RUNNING, EXITED, STOPPED).
 */
export class Reconciler {
  private desired: MachineAssignments | null = null;
  private readonly memory: ReconcileMemory = { reported: new Map(), failed: new Set(), graces: new Map(), keys: new Map() };
  private readonly busy = new Map<string, Promise<void>>();
  private passing: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(private readonly options: ReconcilerOptions) {}

  /** Takes a new desired state (ignoring one older than the last applied) and reconciles. */
  setDesired(state: MachineAssignments): void {
    const current = this.desired ? BigInt(this.desired.revision) : -1n;
    const revision = BigInt(state.revision);
    if (revision < current) {
      this.options.logger.info({ revision: state.revision, applied: this.desired!.revision }, "ignoring a stale desired state");
      return;
    }
    if (revision > current) this.memory.failed.clear();
    this.desired = state;
    for (const assignment of state.instances) this.memory.graces.set(assignment.containerLabel, assignment.preemptGraceSeconds);
    this.options.logger.info({ revision: state.revision, instances: state.instances.length }, "desired state");
    this.kick();
  }

  /** Runs a pass now, or right after the current one. */
  kick(): void {
    if (this.stopped || !this.desired) return;
    if (this.passing) {
      this.again = true;
      return;
    }
    this.passing = this.pass()
      .catch((error: unknown) => this.options.logger.warn({ err: error }, "reconcile pass failed"))
      .finally(() => {
        this.passing = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async pass(): Promise<void> {
    // A container acted on while the runtime is listed may be seen mid-action (stopped but not yet
    // marked so, between a restart's stop and its start), and reported EXITED: its plan waits for
    // the pass that the action's end kicks, which lists it again.
    const actedOn = new Set(this.busy.keys());
    const actual = await this.options.runtime.list();
    for (const plan of reconcile(this.desired!, actual, this.memory)) {
      if (this.busy.has(plan.label) || actedOn.has(plan.label)) continue;
      const work = this.apply(plan).finally(() => {
        this.busy.delete(plan.label);
        this.kick();
      });
      this.busy.set(plan.label, work);
    }
    this.options.logger.debug({ containers: actual.length }, "reconcile pass");
  }

  private async apply(plan: InstancePlan): Promise<void> {
    const { logger } = this.options;
    for (const action of plan.actions) {
      if (this.stopped) return;
      try {
        await this.act(plan, action);
      } catch (error) {
        if (error instanceof AuthRejectedError) return this.options.onFatal(error);
        if (error instanceof TransientApiError) {
          logger.warn({ label: plan.label, action: action.type, err: error.message }, "API unreachable; retrying on a later pass");
          return;
        }
        const message = error instanceof Error ? error.message : String(error);
        logger.error({ label: plan.label, action: action.type, err: error }, "action failed");
        if (action.type === "launch" || action.type === "start" || action.type === "reboot" || action.type === "recycle") {
          this.memory.failed.add(plan.instanceId);
          await this.report(plan, "FAILED", { message, ...(error instanceof LaunchRefusedError && error.failureCause ? { failureCause: error.failureCause } : {}) }).catch((reportError: unknown) => {
            if (reportError instanceof AuthRejectedError) this.options.onFatal(reportError);
          });
        }
        return;
      }
    }
  }

  private async act(plan: InstancePlan, action: Action): Promise<void> {
    const { runtime, logger } = this.options;
    switch (action.type) {
      case "launch":
        return this.launch(action.assignment);
      case "start":
        logger.info({ label: plan.label }, "starting");
        await runtime.start(plan.label);
        // Running again: the next pass reports it, even if the STOPPED before it never got reported
        // (a start asked for while the stop was still under way).
        this.memory.reported.delete(plan.instanceId);
        return;
      case "reboot":
        logger.info({ label: plan.label, rebootCount: action.rebootCount }, "rebooting");
        await runtime.restart(plan.label, action.graceSeconds, action.rebootCount);
        // Running again: the next pass reports it, moving the instance out of LOADING.
        this.memory.reported.delete(plan.instanceId);
        return;
      case "recycle":
        logger.info({ label: plan.label, recycleCount: action.assignment.recycleCount }, "recycling");
        await runtime.remove(plan.label, action.assignment.preemptGraceSeconds);
        return this.launch(action.assignment);
      case "stop":
        logger.info({ label: plan.label, graceSeconds: action.graceSeconds }, "stopping");
        return runtime.stop(plan.label, action.graceSeconds);
      case "remove":
        logger.info({ label: plan.label, graceSeconds: action.graceSeconds }, "removing");
        await runtime.remove(plan.label, action.graceSeconds);
        this.memory.graces.delete(plan.label);
        this.memory.reported.delete(plan.instanceId);
        this.memory.keys.delete(plan.label);
        return;
      case "report":
        return this.report(plan, action.status, { message: action.message, ports: action.ports });
      case "keys":
        await runtime.setSshKeys(plan.label, action.keys);
        this.memory.keys.set(plan.label, action.keys.join("\n"));
        logger.info({ label: plan.label, keys: action.keys.length }, "ssh keys installed");
        return;
    }
  }

  private async launch(assignment: Assignment): Promise<void> {
    const { runtime, api, logger, containerApiUrl } = this.options;
    logger.info({ label: assignment.containerLabel, image: assignment.image }, "launching");
    if (assignment.numGpus > 0 && !this.options.allowGpuless && !(await runtime.containerGpus())) {
      throw new LaunchRefusedError(
        `this machine's ${runtime.name} runtime cannot hand out GPUs (no NVIDIA container runtime); the agent runs GPU rentals without one only with --allow-gpuless (test mode)`,
        "NO_GPU_RUNTIME",
      );
    }
    const token = await api.issueContainerApiKey(assignment.instanceId);
    const ports = await planPorts(assignment.portMappings);
    const env: Record<string, string> = {
      ...Object.fromEntries(assignment.env.map(({ key, value }) => [key, value])),
      ...ports.env,
      ...(assignment.jupyterToken ? { JUPYTER_TOKEN: assignment.jupyterToken } : {}),
      CONTAINER_ID: numericId(assignment.instanceId),
      CONTAINER_LABEL: assignment.containerLabel,
      CONTAINER_API_KEY: token,
      API_URL: containerApiUrl,
    };
    await runtime.create({
      label: assignment.containerLabel,
      instanceId: assignment.instanceId,
      image: assignment.image,
      launchMode: assignment.launchMode,
      onstart: assignment.onstart,
      env,
      ports: ports.publish,
      sshKeys: assignment.sshKeys,
      jupyterToken: assignment.jupyterToken,
      jupyterBasePath: assignment.jupyterBasePath,
      args: assignment.args,
      registryAuth: assignment.registryAuth ?? null,
      diskGb: assignment.diskGb,
      numGpus: assignment.numGpus,
      gpuIndices: assignment.gpuIndices,
      cpuCores: assignment.cpuCores,
      memoryMb: assignment.memoryMb,
      recycleCount: assignment.recycleCount,
      rebootCount: assignment.rebootCount,
    });
    this.memory.keys.set(assignment.containerLabel, assignment.sshKeys.join("\n"));
    await runtime.start(assignment.containerLabel);
    // A new container: what was reported of an earlier one (gone without a pass seeing it) no longer holds.
    this.memory.reported.delete(assignment.instanceId);
  }

  /** A delivered report is remembered even when refused (a refusal will not change on retry); a lost one is retried next pass. */
  private async report(plan: InstancePlan, status: ReportedInstanceState, details: ReportDetails = {}): Promise<void> {
    const refused = await this.options.api.reportInstanceState(plan.instanceId, status, details);
    this.memory.reported.set(plan.instanceId, status);
    if (refused) this.options.logger.warn({ label: plan.label, status, refused }, "report refused");
    else this.options.logger.info({ label: plan.label, status }, "reported");
  }

  /** Stops acting and waits for the actions under way (a stop may take its grace period). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.passing;
    await Promise.allSettled([...this.busy.values()]);
  }
}

/** "Instance:34" → "34" (the readable global id's number). */
export function numericId(globalId: string): string {
  return /:(\d+)$/.exec(globalId)?.[1] ?? globalId;
}
