import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppError, IllegalTransitionError } from "../domain/errors.ts";
import {
  INSTANCE_EVENTS,
  INSTANCE_STATUSES,
  type InstanceEvent,
  type InstanceStatus,
  TRANSITIONS,
  intendedStatus,
  transition,
} from "../domain/instances/lifecycle.ts";

const legal = INSTANCE_STATUSES.flatMap((from) =>
  Object.entries(TRANSITIONS[from]).map(([event, to]) => ({ from, event: event as InstanceEvent, to: to! })),
);
const illegal = INSTANCE_STATUSES.flatMap((from) =>
  INSTANCE_EVENTS.filter((event) => TRANSITIONS[from][event] === undefined).map((event) => ({ from, event })),
);

function refusal(from: InstanceStatus, event: InstanceEvent): unknown {
  try {
    transition(from, event);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("instance lifecycle", () => {
  // The table written out by hand: changing the code's table means changing this on purpose.
  it("has exactly these transitions", () => {
    expect(legal.map(({ from, event, to }) => `${from} ${event} ${to}`).sort()).toEqual(
      [
        "SCHEDULING ALLOCATED LOADING",
        "SCHEDULING OUTBID PAUSED",
        "SCHEDULING PREEMPTED PAUSED",
        "SCHEDULING START_REQUESTED SCHEDULING",
        "SCHEDULING RECYCLE_REQUESTED SCHEDULING",
        "SCHEDULING STOP_REQUESTED STOPPED",
        "SCHEDULING BALANCE_EXHAUSTED STOPPED",
        "SCHEDULING EXPIRED EXITED",
        "SCHEDULING DESTROY_REQUESTED DESTROYED",
        "LOADING AGENT_RUNNING RUNNING",
        "LOADING AGENT_EXITED EXITED",
        "LOADING OUTBID PAUSED",
        "LOADING PREEMPTED PAUSED",
        "LOADING MACHINE_OFFLINE SCHEDULING",
        "LOADING START_REQUESTED LOADING",
        "LOADING REBOOT_REQUESTED LOADING",
        "LOADING RECYCLE_REQUESTED LOADING",
        "LOADING STOP_REQUESTED STOPPED",
        "LOADING BALANCE_EXHAUSTED STOPPED",
        "LOADING EXPIRED EXITED",
        "LOADING DESTROY_REQUESTED DESTROYED",
        "RUNNING AGENT_EXITED EXITED",
        "RUNNING OUTBID PAUSED",
        "RUNNING PREEMPTED PAUSED",
        "RUNNING MACHINE_OFFLINE SCHEDULING",
        "RUNNING START_REQUESTED RUNNING",
        "RUNNING REBOOT_REQUESTED LOADING",
        "RUNNING RECYCLE_REQUESTED LOADING",
        "RUNNING STOP_REQUESTED STOPPED",
        "RUNNING BALANCE_EXHAUSTED STOPPED",
        "RUNNING EXPIRED EXITED",
        "RUNNING DESTROY_REQUESTED DESTROYED",
        "PAUSED ALLOCATED LOADING",
        "PAUSED START_REQUESTED PAUSED",
        "PAUSED RECYCLE_REQUESTED PAUSED",
        "PAUSED STOP_REQUESTED STOPPED",
        "PAUSED BALANCE_EXHAUSTED STOPPED",
        "PAUSED EXPIRED EXITED",
        "PAUSED DESTROY_REQUESTED DESTROYED",
        "STOPPED START_REQUESTED SCHEDULING",
        "STOPPED STOP_REQUESTED STOPPED",
        "STOPPED RECYCLE_REQUESTED STOPPED",
        "STOPPED EXPIRED EXITED",
        "STOPPED DESTROY_REQUESTED DESTROYED",
        "EXITED DESTROY_REQUESTED DESTROYED",
      ].sort(),
    );
  });

  it.each(legal)("$from --$event--> $to", ({ from, event, to }) => {
    expect(transition(from, event)).toBe(to);
  });

  it.each(illegal)("refuses $event when $from", ({ from, event }) => {
    const error = refusal(from, event);
    expect(error).toBeInstanceOf(IllegalTransitionError);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: "ILLEGAL_TRANSITION", from, event });
  });

  it("refuses typical mistakes", () => {
    expect(refusal("EXITED", "START_REQUESTED")).toBeInstanceOf(IllegalTransitionError);
    expect(refusal("STOPPED", "ALLOCATED")).toBeInstanceOf(IllegalTransitionError);
    expect(refusal("RUNNING", "ALLOCATED")).toBeInstanceOf(IllegalTransitionError);
    expect(refusal("PAUSED", "AGENT_RUNNING")).toBeInstanceOf(IllegalTransitionError);
    expect(refusal("SCHEDULING", "AGENT_RUNNING")).toBeInstanceOf(IllegalTransitionError);
    expect(refusal("DESTROYED", "DESTROY_REQUESTED")).toBeInstanceOf(IllegalTransitionError);
  });

  it("keeps finals final: DESTROYED accepts nothing, EXITED only destruction", () => {
    expect(INSTANCE_EVENTS.filter((event) => TRANSITIONS.DESTROYED[event] !== undefined)).toEqual([]);
    expect(INSTANCE_EVENTS.filter((event) => TRANSITIONS.EXITED[event] !== undefined)).toEqual(["DESTROY_REQUESTED"]);
  });

  it("sends a restarted instance through SCHEDULING until its GPUs are free", () => {
    const path: InstanceEvent[] = ["ALLOCATED", "AGENT_RUNNING", "STOP_REQUESTED", "START_REQUESTED", "ALLOCATED", "AGENT_RUNNING"];
    const statuses = path.reduce<InstanceStatus[]>((seen, event) => [...seen, transition(seen.at(-1)!, event)], ["SCHEDULING"]);
    expect(statuses).toEqual(["SCHEDULING", "LOADING", "RUNNING", "STOPPED", "SCHEDULING", "LOADING", "RUNNING"]);
  });

  it("derives the intended status: RUNNING while it wants GPUs, STOPPED otherwise", () => {
    expect(INSTANCE_STATUSES.map((status) => [status, intendedStatus(status)])).toEqual([
      ["SCHEDULING", "RUNNING"],
      ["LOADING", "RUNNING"],
      ["RUNNING", "RUNNING"],
      ["PAUSED", "RUNNING"],
      ["STOPPED", "STOPPED"],
      ["EXITED", "STOPPED"],
      ["DESTROYED", "STOPPED"],
    ]);
  });

  it("reaches every status from a new instance", () => {
    const reached = new Set<InstanceStatus>(["SCHEDULING"]);
    for (let grew = true; grew; ) {
      const size = reached.size;
      for (const { from, to } of legal) if (reached.has(from)) reached.add(to);
      grew = reached.size > size;
    }
    expect([...reached].sort()).toEqual([...INSTANCE_STATUSES].sort());
  });

  it("never leaves the table on a random walk of events", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...INSTANCE_EVENTS), { maxLength: 60 }), (events) => {
        let status: InstanceStatus = "SCHEDULING";
        for (const event of events) {
          const expected = TRANSITIONS[status][event];
          if (expected === undefined) {
            expect(refusal(status, event)).toBeInstanceOf(IllegalTransitionError);
            continue;
          }
          const next = transition(status, event);
          expect(next).toBe(expected);
          expect(INSTANCE_STATUSES).toContain(next);
          if (event === "START_REQUESTED") expect(intendedStatus(next)).toBe("RUNNING");
          if (event === "STOP_REQUESTED" || event === "BALANCE_EXHAUSTED") expect(next).toBe("STOPPED");
          if (status === "EXITED") expect(next).toBe("DESTROYED");
          status = next;
        }
      }),
    );
  });
});
