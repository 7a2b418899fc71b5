import { machineSelfTests, reportSelfTest, requestSelfTest, SELF_TEST_CHECKS, type SelfTestCheck } from "../domain/selfTests.ts";
import type { MachineSelfTest } from "../prisma/generated/client/client.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";

/* Machine self-tests: requested by the host or an operator, run and reported by the machine's agent. */

const SelfTestStatus = builder.enumType("SelfTestStatus", {
  description: "Where a self-test is.",
  values: {
    PENDING: { description: "Requested; the machine's agent has not reported it yet (it runs it when connected)." },
    PASSED: { description: "Reported, and every check passed." },
    FAILED: { description: "Reported, and at least one check failed (each check says why)." },
  } as const,
});

const SelfTestCheckName = builder.enumType("SelfTestCheckName", {
  description: "What a self-test checks.",
  values: {
    GPU_VISIBLE: { description: "nvidia-smi lists the machine's GPUs (value: GPUs found)." },
    CUDA: { description: "The NVIDIA driver offers CUDA (value: the highest CUDA version it runs)." },
    DISK_WRITE: { description: "Writing to the agent's data disk, flushed (value: MB/s)." },
    DISK_READ: { description: "Reading that data back (value: MB/s)." },
    NETWORK_DOWN: { description: "Download speed from the API's speed test (value: Mbps)." },
    NETWORK_UP: { description: "Upload speed to the API's speed test (value: Mbps)." },
    CONTAINER_START: { description: "The agent's container runtime starts a container that runs to completion." },
  } satisfies Record<(typeof SELF_TEST_CHECKS)[number], { description: string }>,
});

const SelfTestCheckRef = builder.objectRef<SelfTestCheck>("SelfTestCheck").implement({
  description: "One check of a self-test, as the agent reported it.",
  fields: (t) => ({
    name: t.expose("name", { type: SelfTestCheckName, description: "What was checked." }),
    passed: t.exposeBoolean("passed", { description: "Whether the check passed." }),
    value: t.exposeFloat("value", { nullable: true, description: "The measured figure, in `unit`; null when nothing was measured." }),
    unit: t.exposeString("unit", { nullable: true, description: "The unit of `value`, such as MB/s or Mbps." }),
    message: t.exposeString("message", { description: "What the agent saw, in words (why a check failed)." }),
  }),
});

export const MachineSelfTestRef = builder.objectRef<MachineSelfTest>("MachineSelfTest").implement({
  description: "A self-test of a machine, run by its agent. Seen by the machine's host and by operators.",
  fields: (t) => ({
    id: t.globalID({ description: 'Such as "MachineSelfTest:7".', resolve: (test) => ({ type: "MachineSelfTest", id: test.id }) }),
    machineId: t.globalID({ description: "The machine tested.", resolve: (test) => ({ type: "Machine", id: test.machineId }) }),
    status: t.expose("status", { type: SelfTestStatus, description: "PENDING until the agent reports; then PASSED or FAILED." }),
    checks: t.field({
      type: [SelfTestCheckRef],
      description: "The agent's checks, in the order it ran them; empty while PENDING.",
      resolve: (test) => (test.checks as SelfTestCheck[] | null) ?? [],
    }),
    requestedAt: t.expose("requestedAt", { type: "DateTime", description: "When it was requested." }),
    reportedAt: t.expose("reportedAt", { type: "DateTime", nullable: true, description: "When the agent reported it; null while PENDING." }),
  }),
});

builder.prismaObjectFields("Machine", (t) => ({
  selfTests: t.field({
    type: [MachineSelfTestRef],
    description: "The machine's latest self-tests (at most 20), newest first. Its host and operators only.",
    resolve: (machine) => machineSelfTests(machine.id),
  }),
  latestSelfTest: t.field({
    type: MachineSelfTestRef,
    nullable: true,
    description: "The machine's newest self-test, pending or reported; null when none was requested. Its host and operators only.",
    resolve: async (machine) => (await machineSelfTests(machine.id, 1))[0] ?? null,
  }),
}));

builder.mutationField("requestSelfTest", (t) =>
  t.withAuth({ permission: "MACHINES" }).field({
    type: MachineSelfTestRef,
    description:
      "Asks the machine's agent to test the machine (GPUs visible, CUDA, disk and network speed, starting a container). For the machine's host and operators; a test still pending is returned instead of a second one. Read the report on Machine.selfTests.",
    errors: {},
    args: { machineId: t.arg.globalID({ required: true, description: "The machine to test (Machine:<id>)." }) },
    resolve: (_root, args, ctx) =>
      requestSelfTest({ userId: ctx.viewer.userId, operator: ctx.viewer.operator }, localId(args.machineId, "Machine", "machineId")),
  }),
);

const SelfTestCheckInput = builder.inputType("SelfTestCheckInput", {
  description: "One check as the agent ran it.",
  fields: (t) => ({
    name: t.field({ type: SelfTestCheckName, required: true, description: "What was checked; each at most once per report." }),
    passed: t.boolean({ required: true, description: "Whether it passed." }),
    value: t.float({ description: "The measured figure, in `unit` (0 to 10^9)." }),
    unit: t.string({ description: "The unit of `value`, such as MB/s (at most 16 characters)." }),
    message: t.string({ required: true, description: "What the agent saw, in words (at most 500 characters)." }),
  }),
});

builder.mutationField("reportSelfTest", (t) =>
  t.withAuth({ agent: true }).field({
    type: MachineSelfTestRef,
    description:
      "The agent's report of a pending self-test of its own machine (its MACHINE key): PASSED when every check passed, else FAILED. A test is reported once; a second report is a ConflictError.",
    errors: {},
    args: {
      selfTestId: t.arg.globalID({ required: true, description: "The self-test (MachineSelfTest:<id>) from MachineAssignments.selfTests." }),
      checks: t.arg({ type: [SelfTestCheckInput], required: true, description: "Every check the agent ran." }),
    },
    resolve: (_root, args, ctx) =>
      reportSelfTest(ctx.viewer.machineId, {
        selfTestId: localId(args.selfTestId, "MachineSelfTest", "selfTestId"),
        checks: args.checks,
      }),
  }),
);
