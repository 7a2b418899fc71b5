import { IllegalTransitionError } from "../errors.ts";

/**
 * The instance lifecycle: every status change goes through `transition`, which reads the one table
 * below. A status is the platform's decision; the host agent converges the container to it and
 * reports back (AGENT_RUNNING, AGENT_EXITED).
 */
export const INSTANCE_STATUSES = [
  /** Wants to run and waits for its GPUs (new, restarted, or its machine went offline). */
  "SCHEDULING",
  /** GPUs assigned; the agent is starting the container. */
  "LOADING",
  "RUNNING",
  /** Interruptible and outbid or preempted by on-demand; resumes when the auction allocates it. */
  "PAUSED",
  /** Stopped by its owner or by an exhausted balance; keeps its disk and can be started again. */
  "STOPPED",
  /** Lifetime over or container ended: final except for destroying it. */
  "EXITED",
  /** Final. */
  "DESTROYED",
] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

export const INSTANCE_EVENTS = [
  /** The auction gave it its GPUs. */
  "ALLOCATED",
  "AGENT_RUNNING",
  "AGENT_EXITED",
  /** Lost its GPUs to a higher bid (or a min bid raised above it). */
  "OUTBID",
  /** Lost its GPUs to an on-demand rental. */
  "PREEMPTED",
  "START_REQUESTED",
  "STOP_REQUESTED",
  /** The contract's end date passed. */
  "EXPIRED",
  "DESTROY_REQUESTED",
  "BALANCE_EXHAUSTED",
  "MACHINE_OFFLINE",
  /** The owner restarts the container (its data kept): the agent reports RUNNING again. */
  "REBOOT_REQUESTED",
  /** The owner has the container recreated from a fresh pull (recycleInstance, updateInstance). */
  "RECYCLE_REQUESTED",
] as const;
export type InstanceEvent = (typeof INSTANCE_EVENTS)[number];

export type IntendedStatus = "RUNNING" | "STOPPED";

/** Everything a live instance accepts whatever it is doing. */
const ENDINGS = {
  STOP_REQUESTED: "STOPPED",
  BALANCE_EXHAUSTED: "STOPPED",
  EXPIRED: "EXITED",
  DESTROY_REQUESTED: "DESTROYED",
} as const;

/**
 * from → event → to. A missing entry is an illegal transition. START_REQUESTED on an instance that
 * already wants to run, and STOP_REQUESTED on a stopped one, map to the same status: the docs have
 * `start` on a running instance succeed as a no-op.
 */
export const TRANSITIONS: Readonly<Record<InstanceStatus, Readonly<Partial<Record<InstanceEvent, InstanceStatus>>>>> = {
  SCHEDULING: {
    ...ENDINGS,
    ALLOCATED: "LOADING",
    OUTBID: "PAUSED",
    PREEMPTED: "PAUSED",
    START_REQUESTED: "SCHEDULING",
    RECYCLE_REQUESTED: "SCHEDULING",
  },
  LOADING: {
    ...ENDINGS,
    AGENT_RUNNING: "RUNNING",
    AGENT_EXITED: "EXITED",
    OUTBID: "PAUSED",
    PREEMPTED: "PAUSED",
    MACHINE_OFFLINE: "SCHEDULING",
    START_REQUESTED: "LOADING",
    REBOOT_REQUESTED: "LOADING",
    RECYCLE_REQUESTED: "LOADING",
  },
  RUNNING: {
    ...ENDINGS,
    AGENT_EXITED: "EXITED",
    OUTBID: "PAUSED",
    PREEMPTED: "PAUSED",
    MACHINE_OFFLINE: "SCHEDULING",
    START_REQUESTED: "RUNNING",
    // Until the agent has the container up again.
    REBOOT_REQUESTED: "LOADING",
    RECYCLE_REQUESTED: "LOADING",
  },
  PAUSED: { ...ENDINGS, ALLOCATED: "LOADING", START_REQUESTED: "PAUSED", RECYCLE_REQUESTED: "PAUSED" },
  // Restarting waits in SCHEDULING until its GPUs are free (the docs' "stuck on scheduling").
  STOPPED: {
    START_REQUESTED: "SCHEDULING",
    STOP_REQUESTED: "STOPPED",
    EXPIRED: "EXITED",
    DESTROY_REQUESTED: "DESTROYED",
    // A container that is not running is recreated when it next runs.
    RECYCLE_REQUESTED: "STOPPED",
  },
  EXITED: { DESTROY_REQUESTED: "DESTROYED" },
  DESTROYED: {},
};

/** The status after `event`; throws IllegalTransitionError when the table has no such entry. */
export function transition(from: InstanceStatus, event: InstanceEvent): InstanceStatus {
  const next = TRANSITIONS[from][event];
  if (next === undefined) throw new IllegalTransitionError(from, event);
  return next;
}

/** What the owner asked for, implied by the status: the instances the auction considers are those intended RUNNING. */
export function intendedStatus(status: InstanceStatus): IntendedStatus {
  return status === "SCHEDULING" || status === "LOADING" || status === "RUNNING" || status === "PAUSED" ? "RUNNING" : "STOPPED";
}
