import { agentMachine } from "../domain/authorization.ts";
import { StrandsContractsError, type UpdateMachineInput as UpdateMachineSpecs, updateMachineSpecs } from "../domain/machineSpecs.ts";
import { prisma } from "../infra/db.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";
import { selection } from "./selection.ts";

type InputFields = PothosSchemaTypes.InputFieldBuilder<PothosSchemaTypes.ExtendDefaultTypes<typeof builder extends PothosSchemaTypes.SchemaBuilder<infer Types> ? Types : never>, "InputObject">;

const CpuArch = builder.enumType("CpuArch", {
  description: "A CPU architecture GPUs are rented on (the search field cpu_arch).",
  values: {
    AMD64: { value: "amd64", description: "x86-64 (Intel, AMD): uname -m says x86_64." },
    ARM64: { value: "arm64", description: "64-bit Arm (Grace, Altra, Graviton): uname -m says aarch64." },
  } as const,
});

/** Specs only an agent measures (nvidia-smi, /proc/cpuinfo); optional, as hosts registering by hand may not know them. */
export const detectedSpecFields = (t: InputFields) => ({
  cpuArch: t.field({ type: CpuArch, description: "CPU architecture (uname -m)." }),
  hasAvx: t.boolean({ description: "Whether the CPU has AVX (the avx flag of /proc/cpuinfo)." }),
  gpuMaxPowerW: t.float({ description: "Each GPU's power limit in watts, 10 to 2000 (nvidia-smi power.limit)." }),
  cpuGhz: t.float({ description: "The CPU's top clock, GHz, 0.1 to 10 (/proc/cpuinfo)." }),
  gpuMaxTempC: t.int({ description: "The GPUs' temperature limit, °C, 40 to 150 (nvidia-smi's max operating or slowdown temperature)." }),
  moboName: t.string({ description: "The motherboard model, at most 128 characters (DMI board_name)." }),
  ubuntuVersion: t.string({ description: "The host's Ubuntu release, such as 22.04 (VERSION_ID of /etc/os-release); omitted on other systems." }),
});

builder.prismaObjectFields("Machine", (t) => ({
  cpuArch: t.field({
    type: CpuArch,
    nullable: true,
    resolve: (machine) => machine.cpuArch as "amd64" | "arm64" | null,
    skipTypeScopes: true,
    description: "CPU architecture as the machine's agent detected it; null when its specs were typed by hand.",
  }),
  hasAvx: t.exposeBoolean("hasAvx", {
    nullable: true,
    skipTypeScopes: true,
    description: "Whether the CPU has AVX, as the agent read /proc/cpuinfo; null when its specs were typed by hand.",
  }),
  gpuMaxPowerW: t.exposeFloat("gpuMaxPowerW", {
    nullable: true,
    skipTypeScopes: true,
    description: "Each GPU's power limit in watts (nvidia-smi power.limit); null when not reported.",
  }),
  cpuGhz: t.exposeFloat("cpuGhz", {
    nullable: true,
    skipTypeScopes: true,
    description: "The CPU's top clock in GHz, as the agent read /proc/cpuinfo; null when not detected.",
  }),
  gpuMaxTempC: t.exposeInt("gpuMaxTempC", {
    nullable: true,
    skipTypeScopes: true,
    description: "The GPUs' temperature limit in °C (nvidia-smi); null when not reported.",
  }),
  moboName: t.exposeString("moboName", {
    nullable: true,
    skipTypeScopes: true,
    description: "The motherboard model (DMI board_name); null when not detected.",
  }),
  ubuntuVersion: t.exposeString("ubuntuVersion", {
    nullable: true,
    skipTypeScopes: true,
    description: "The host's Ubuntu release, such as 22.04; null on other systems or when not detected.",
  }),
}));

builder.objectType(StrandsContractsError, {
  name: "StrandsContractsError",
  description: "The new specs would take from live contracts on the machine what they hold (GPUs, reserved disk): nothing was changed.",
  interfaces: [ErrorInterface],
  fields: (t) => ({
    field: t.exposeString("field", { description: "The spec that would fall short: numGpus or diskSpaceGb." }),
    required: t.exposeFloat("required", { description: "The least it may be while the contracts last: GPUs, or GB of disk." }),
  }),
});

const UpdateMachineInput = builder.inputType("UpdateMachineInput", {
  description:
    "New specs of a machine, as its agent's re-check measured them (or its host knows them): each field given replaces the machine's, omitted ones stay. Units as in RegisterMachineInput.",
  fields: (t) => ({
    machineId: t.globalID({ required: true, description: 'The machine, such as "Machine:12".' }),
    gpuName: t.string({ description: "The GPU model as the market names it, such as RTX 4090." }),
    numGpus: t.int({ description: "GPUs in the machine, 1 to 16; never fewer than its live contracts hold." }),
    gpuRamMb: t.int({ description: "VRAM per GPU, MB." }),
    computeCap: t.int({ description: "CUDA compute capability × 100 (8.6 is 860)." }),
    tflopsPerGpu: t.float({ description: "Peak FP32 TFLOPS per GPU." }),
    gpuMemBw: t.float({ description: "GPU memory bandwidth, GB/s." }),
    pcieGen: t.int({ description: "PCIe generation of the GPUs' slots, 1 to 6." }),
    pcieBw: t.float({ description: "PCIe bandwidth per GPU, GB/s; at most the generation's x16 link." }),
    cudaMaxGood: t.float({ description: "Highest CUDA version the driver runs, such as 12.4." }),
    driverVersion: t.string({ description: "NVIDIA driver version, such as 550.54.15." }),
    cpuName: t.string({ description: "The CPU model." }),
    cpuCores: t.int({ description: "Logical CPU cores (threads) of the machine." }),
    cpuRamMb: t.int({ description: "System RAM, MB." }),
    diskSpaceGb: t.float({ description: "Disk for rentals, GB; never less than its instances reserve." }),
    diskBw: t.float({ description: "Disk bandwidth, MB/s." }),
    inetUpMbps: t.float({ description: "Upload bandwidth, Mbps." }),
    inetDownMbps: t.float({ description: "Download bandwidth, Mbps." }),
    countryCode: t.string({ description: "ISO 3166-1 alpha-2 country code, such as US." }),
    geolocation: t.string({ description: "Where the machine is, in words, such as Oregon, US." }),
    ...detectedSpecFields(t),
  }),
});

builder.mutationField("updateMachine", (t) =>
  t.withAuth({ agent: true, permission: "MACHINES" }).prismaField({
    type: "Machine",
    description:
      "Changes a machine's specs: its agent's periodic re-check (its MACHINE key, for its own machine) or its host (a key with MACHINES). Offers and DLPerf follow at once; an update that would leave live contracts short of their GPUs or disk is a StrandsContractsError and changes nothing.",
    errors: { types: [StrandsContractsError] },
    args: { input: t.arg({ type: UpdateMachineInput, required: true, description: "The machine and the specs that changed." }) },
    resolve: async (query, _root, { input }, ctx) => {
      const machineId = localId(input.machineId, "Machine", "machineId");
      if (ctx.viewer.scope === "MACHINE") agentMachine({ machineId: ctx.viewer.machineId ?? 0 }, machineId);
      // Zod refuses a null for a spec that cannot be null, as a ValidationError naming it.
      const machine = await updateMachineSpecs(ctx.viewer.userId, { ...input, machineId } as UpdateMachineSpecs);
      return prisma.machine.findUniqueOrThrow({ ...selection(query), where: { id: machine.id } });
    },
  }),
);
