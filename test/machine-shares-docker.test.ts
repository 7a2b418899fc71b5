import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { runOk } from "../agent/exec.ts";
import { DockerRuntime, GPUS_KEY } from "../agent/runtimes/docker.ts";
import { machineShare } from "../domain/machineShare.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { envOf, type Inspected, inspectContainer, stopAgentAndRemoveContainers } from "./support/docker.ts";
import { type TestImages, testImages } from "./support/images.ts";
import { CREATE_INSTANCE, createAccount, unwrap } from "./support/rentals.ts";

// Two tenants on one 8-GPU machine whose agent runs the docker runtime on the real engine: each
// container gets its own GPUs (disjoint device lists in its environment and labels; this engine has
// no NVIDIA runtime, so no --gpus) and its share of the machine's CPUs and RAM as docker limits.
// Where the engine has the NVIDIA runtime the same rentals' containers ask docker for exactly their
// devices (--gpus): the real engine creates them and `docker inspect` shows their device requests
// (starting them needs the runtime, so they are never started here).

const app = useTestApp();
let auction: AuctionWorker;
let images: TestImages;
let dir: string;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  images = await testImages();
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "shares-docker-"));
}, 15 * 60_000);

afterAll(async () => {
  // The agent keeps the docker runtime's state in <state dir>/docker.
  await stopAgentAndRemoveContainers(agent, join(dir, "agent"));
  await stopAgentAndRemoveContainers(undefined, join(dir, "nvidia"));
  await auction.close();
  await closePubSub();
  await rm(dir, { recursive: true, force: true });
});

describe("two tenants on one 8-GPU machine, docker runtime", () => {
  it("see disjoint GPU lists and their own CPU and RAM limits in docker inspect", async () => {
    const host = await createAccount("host");
    // 8 cores and 16,000 MB over 8 GPUs: a GPU's share is 1 core and 2,000 MB.
    const { machineId, key } = await registerAndList(app, host.key, { numGpus: 8, cpuCores: 8, cpuRamMb: 16_000 });
    agent = spawnAgent({ api: app.url, key, machineId, stateDir: join(dir, "agent"), runtime: "docker" });
    await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt);

    const rent = async (clientKey: string, numGpus: number) => {
      const input = { offerId: `${machineId}-${numGpus}`, image: images.plain, diskGb: 5, launchMode: "SSH" };
      const result = unwrap((await app.gql(CREATE_INSTANCE, { input }, clientKey)).data.createInstance);
      expect(result.__typename).toBe("CreateInstancePayload");
      return result.instance.id as string;
    };
    const alice = await createAccount("alice");
    const bob = await createAccount("bob");
    const one = await rent(alice.key, 1);
    const two = await rent(bob.key, 2);

    const running = async (id: string) => {
      const row = await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } });
      return row.status === "RUNNING" ? row : undefined;
    };
    const [first, second] = [await eventually(() => running(one), 60_000), await eventually(() => running(two), 60_000)];
    const a = (await inspectContainer(app.url, one))!;
    const b = (await inspectContainer(app.url, two))!;

    // Each container names exactly the GPUs the auction gave its instance, and no GPU twice.
    expect(first.gpuIndices).toHaveLength(1);
    expect(second.gpuIndices).toHaveLength(2);
    expect(first.gpuIndices.filter((index) => second.gpuIndices.includes(index))).toEqual([]);
    for (const [container, indices] of [[a, first.gpuIndices], [b, second.gpuIndices]] as const) {
      const env = envOf(container);
      expect(env.CUDA_VISIBLE_DEVICES).toBe(indices.join(","));
      expect(env.NVIDIA_VISIBLE_DEVICES).toBe(indices.join(","));
      expect(container.Config.Labels[GPUS_KEY]).toBe(indices.join(","));
      // No NVIDIA runtime on this engine: asking docker for GPUs would make the start fail.
      expect(container.HostConfig.DeviceRequests ?? []).toEqual([]);
    }
    const devices = (container: Inspected) => envOf(container).CUDA_VISIBLE_DEVICES!.split(",");
    expect(devices(a).filter((d) => devices(b).includes(d))).toEqual([]);

    // CPU and RAM: 1 of 8 GPUs → 1 core and 2,000 MB; 2 of 8 → 2 cores and 4,000 MB.
    expect(a.HostConfig.NanoCpus).toBe(1e9);
    expect(a.HostConfig.Memory).toBe(2000 * 1024 * 1024);
    expect(b.HostConfig.NanoCpus).toBe(2e9);
    expect(b.HostConfig.Memory).toBe(4000 * 1024 * 1024);

    // The same two rentals on an engine with the NVIDIA runtime: a `docker` first on PATH reports
    // one in `docker info` and hands every other command to the real engine.
    const realDocker = (await runOk("sh", ["-c", "command -v docker"])).trim();
    const shim = join(dir, "nvidia-bin");
    await runOk("mkdir", ["-p", shim]);
    await writeFile(
      join(shim, "docker"),
      `#!/bin/sh\nif [ "$1" = info ]; then printf '%s\\t%s\\n' '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}' "$(${realDocker} info --format '{{.NCPU}}')"; exit 0; fi\nexec ${realDocker} "$@"\n`,
    );
    await chmod(join(shim, "docker"), 0o755);
    const machine = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
    const share = (row: { numGpus: number }) => machineShare(machine, row.numGpus);
    const runtime = new DockerRuntime(join(dir, "nvidia", "docker"), pino({ level: "silent" }));
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path}`;
    try {
      expect(await runtime.containerGpus()).toBe(true);
      for (const row of [first, second]) {
        await runtime.create({
          label: `C.${row.id}`, instanceId: `Instance:${row.id}`, image: images.plain, launchMode: "ENTRYPOINT", onstart: null, env: {}, ports: [],
          sshKeys: [], jupyterToken: null, jupyterBasePath: "/", args: [], diskGb: row.diskGb, numGpus: row.numGpus, recycleCount: 0, rebootCount: 0,
          gpuIndices: row.gpuIndices, cpuCores: share(row).cpuCores, memoryMb: share(row).ramMb,
        });
      }
    } finally {
      process.env.PATH = path;
    }
    const created = await Promise.all(
      [first, second].map(async (row) => JSON.parse(await runOk("docker", ["inspect", "--", runtime.containerName(`C.${row.id}`)]))[0] as Inspected),
    );
    const requested = created.map((container) => container.HostConfig.DeviceRequests as { DeviceIDs: string[]; Capabilities: string[][] }[]);
    expect(requested[0]).toMatchObject([{ DeviceIDs: first.gpuIndices.map(String), Capabilities: [["gpu"]] }]);
    expect(requested[1]).toMatchObject([{ DeviceIDs: second.gpuIndices.map(String), Capabilities: [["gpu"]] }]);
    expect(requested[0]![0]!.DeviceIDs.filter((d) => requested[1]![0]!.DeviceIDs.includes(d))).toEqual([]);
    // CUDA numbers the container's devices from 0; NVIDIA_VISIBLE_DEVICES names the host's.
    expect(created.map((container) => envOf(container).NVIDIA_VISIBLE_DEVICES)).toEqual([first.gpuIndices.join(","), second.gpuIndices.join(",")]);
    expect(created.map((container) => envOf(container).CUDA_VISIBLE_DEVICES)).toEqual([undefined, undefined]);
    expect(created.map((container) => [container.HostConfig.NanoCpus, container.HostConfig.Memory])).toEqual([
      [1e9, 2000 * 1024 * 1024],
      [2e9, 4000 * 1024 * 1024],
    ]);
  }, 180_000);
});
