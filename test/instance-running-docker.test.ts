import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import { run } from "../agent/exec.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { envOf, inspectContainer } from "./support/docker.ts";
import { type TestImages, testImages } from "./support/images.ts";
import { CREATE_INSTANCE, createAccount, unwrap } from "./support/rentals.ts";
import { subscribe } from "./support/ws.ts";

// Running an instance on the real Docker engine with the real agent program (docker runtime): its
// logs, reboot (the container restarted, its files kept), recycle (recreated from a fresh pull, its
// files gone), and a launch from a template with ports and env.

const app = useTestApp();
let auction: AuctionWorker;
let images: TestImages;
let dir: string;
let agent: AgentProcess;
let client: { userId: number; key: string };
let machineId: number;
const containers = new Set<string>();

beforeAll(async () => {
  images = await testImages();
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "running-docker-"));
  const host = await createAccount("host");
  client = await createAccount("client");
  await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 50_000_000n } });
  const machine = await registerAndList(app, host.key);
  machineId = machine.machineId;
  agent = spawnAgent({ api: app.url, key: machine.key, machineId, stateDir: join(dir, "agent"), runtime: "docker" });
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt);
}, 15 * 60_000);

afterAll(async () => {
  if (agent && agent.child.exitCode === null) {
    agent.child.kill("SIGTERM");
    await agent.exited;
  }
  // Labels (C.<id>) repeat across test databases: remove by the ids this file saw.
  for (const id of containers) await run("docker", ["rm", "--force", id]);
  await auction.close();
  await closePubSub();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  onTestFailed(async () => {
    console.error(`agent output:\n${agent.output().split("\n").filter((line) => !line.includes("reconcile pass")).join("\n").slice(-6000)}`);
    console.error((await run("docker", ["ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}} {{.Labels}}"])).stdout);
  });
});

const instanceRow = (id: string) => prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } });
const running = (id: string) => eventually(async () => (await instanceRow(id)).status === "RUNNING", 90_000);

/** The instance's container once it runs, remembered for removal. */
async function container(id: string) {
  const found = await eventually(() => inspectContainer(app.url, id), 30_000);
  containers.add(found.Id);
  return found;
}

async function rent(input: Record<string, unknown>): Promise<string> {
  const created = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, ...input } }, client.key)).data.createInstance);
  expect(created.instance?.id, JSON.stringify(created)).toBeDefined();
  return created.instance.id;
}

const LOGS = `query ($id: ID!, $tail: Int) { instanceLogs(instanceId: $id, tail: $tail) { ... on QueryInstanceLogsSuccess { data { lines } } ... on Error { code message } } }`;
const logs = async (id: string, tail = 200): Promise<string[]> => unwrap((await app.gql(LOGS, { id, tail }, client.key)).data.instanceLogs).lines ?? [];
const mutate = (name: string, id: string) => app.gql(`mutation ($id: ID!) { ${name}(id: $id) { __typename ... on Error { code message } } }`, { id }, client.key);
const exec = async (containerId: string, script: string) => (await run("docker", ["exec", containerId, "sh", "-c", script])).stdout.trim();

describe("an instance on the real Docker engine", () => {
  it("shows its onstart's output and follows new lines; keeps its files through a reboot, loses them to a recycle", async () => {
    const id = await rent({
      image: images.plain,
      diskGb: 5,
      launchMode: "SSH",
      onstart: 'echo boot >> /root/boots; echo "boots=$(wc -l < /root/boots)"; echo "to stderr" >&2; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done',
    });
    await running(id);
    const first = await container(id);

    // The onstart's output through instanceLogs, then new lines through the subscription.
    const tail = await eventually(async () => {
      const lines = await logs(id);
      return lines.includes("tick 2") ? lines : undefined;
    }, 30_000);
    expect(tail[0]).toBe("boots=1");
    expect(tail).toContain("to stderr");
    const watch = subscribe(app.url, client.key, `subscription ($id: ID!) { instanceLogs(instanceId: $id, tail: 1) { lines } }`, { id });
    const tick = (line: string) => Number(/^tick (\d+)$/.exec(line)?.[1] ?? Number.NaN);
    const start = tick((await watch.next((batch) => batch.lines.length > 0, 20_000)).lines[0]);
    await watch.next((batch) => batch.lines.some((line: string) => tick(line) >= start + 3), 20_000);
    const seen = watch.values.flatMap((batch) => batch.lines.map(tick));
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => start + i));
    await watch.close();

    // A file written before the reboot is still there after it: the same container, started again.
    await exec(first.Id, "echo kept > /root/data.txt");
    expect((await mutate("rebootInstance", id)).data.rebootInstance.__typename).toBe("MutationRebootInstanceSuccess");
    await running(id);
    await eventually(async () => (await logs(id)).includes("boots=2"), 30_000);
    const rebooted = await container(id);
    expect(rebooted.Id).toBe(first.Id);
    expect(await exec(rebooted.Id, "cat /root/data.txt")).toBe("kept");

    // Recycled: a new container from a fresh pull, without the file.
    expect((await mutate("recycleInstance", id)).data.recycleInstance.__typename).toBe("MutationRecycleInstanceSuccess");
    await running(id);
    const recycled = await eventually(async () => {
      const found = await inspectContainer(app.url, id);
      return found && found.Id !== first.Id ? found : undefined;
    }, 60_000);
    containers.add(recycled.Id);
    await eventually(async () => (await logs(id)).includes("boots=1"), 30_000);
    expect(await exec(recycled.Id, "cat /root/data.txt 2>/dev/null || echo gone")).toBe("gone");
    expect((await run("docker", ["inspect", first.Id])).code).not.toBe(0);
    await mutate("destroyInstance", id);
  }, 300_000);

  it("launched from a template, gets the template's ports and env", async () => {
    const template = await app.gql(
      `mutation ($input: CreateTemplateInput!) { createTemplate(input: $input) { ... on MutationCreateTemplateSuccess { data { id } } ... on Error { code message } } }`,
      {
        input: {
          name: "busybox web",
          image: images.plain.slice(0, images.plain.lastIndexOf(":")),
          tag: images.plain.slice(images.plain.lastIndexOf(":") + 1),
          launchMode: "SSH",
          dockerOptions: "-p 8081:8081 -e MODE=prod -e 'MOTTO=two words'",
          onstart: "echo started",
          recommendedDiskGb: 3,
        },
      },
      client.key,
    );
    const id = await rent({ templateId: template.data.createTemplate.data.id });
    await running(id);
    const inspected = await container(id);
    expect(envOf(inspected)).toMatchObject({ MODE: "prod", MOTTO: "two words" });
    expect(Object.keys(inspected.HostConfig.PortBindings ?? {})).toContain("8081/tcp");
    await eventually(async () => (await logs(id)).includes("started"), 30_000);
    await mutate("destroyInstance", id);
  }, 180_000);
});
