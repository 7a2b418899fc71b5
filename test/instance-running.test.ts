import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessRuntime } from "../agent/runtimes/process.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, processesOf, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, unwrap } from "./support/rentals.ts";

// Running an instance with the real agent program (process runtime) against the real API: reboot,
// recycle and update, and a launch from a template.

const app = useTestApp();
let auction: AuctionWorker;
let dir: string;
let agent: AgentProcess;
let client: { userId: number; key: string };
let machineId: number;

beforeAll(async () => {
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "instance-running-"));
  const host = await createAccount("host");
  client = await createAccount("client");
  await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 50_000_000n } });
  const machine = await registerAndList(app, host.key);
  machineId = machine.machineId;
  agent = spawnAgent({ api: app.url, key: machine.key, machineId, stateDir: dir });
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt);
});

afterAll(async () => {
  if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL");
  const runtime = new ProcessRuntime(join(dir, "processes"), pino({ level: "silent" }));
  for (const container of await runtime.list()) await runtime.remove(container.label, 0);
  await auction.close();
  await closePubSub();
  await rm(dir, { recursive: true, force: true });
});

async function rent(input: Record<string, unknown>): Promise<{ id: string; label: string; containerDir: string }> {
  const created = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, ...input } }, client.key)).data.createInstance);
  expect(created.instance?.id, JSON.stringify(created)).toBeDefined();
  const label = created.instance.containerLabel;
  return { id: created.instance.id, label, containerDir: join(dir, "processes", label) };
}

const instanceRow = (id: string) => prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } });
const running = (id: string) => eventually(async () => (await instanceRow(id)).status === "RUNNING", 30_000);
const exists = (path: string) => stat(path).then(() => true, () => false);

const MUTATE = (name: string, args = "") => /* GraphQL */ `
  mutation ($id: ID!${args ? ", $input: UpdateInstanceInput!" : ""}) {
    ${name}(id: $id${args}) {
      __typename
      ... on Mutation${name[0]!.toUpperCase()}${name.slice(1)}Success { data { status statusMessage rebootCount recycleCount image env { key value } } }
      ... on Error { code message }
      ... on IllegalTransitionError { from event }
      ... on ValidationError { issues { path message } }
    }
  }
`;

describe("reboot, recycle and update", () => {
  it("reboot keeps the container's files; recycle and update recreate it without them", async () => {
    // The onstart counts its boots in the working directory and writes the variable it was given.
    const { id, label, containerDir } = await rent({
      image: "demo/workload:latest",
      diskGb: 5,
      launchMode: "SSH",
      env: [{ key: "GREETING", value: "hello" }],
      onstart: 'echo boot >> boots; echo "$GREETING" > greeting',
    });
    await running(id);
    const boots = async () => (await readFile(join(containerDir, "boots"), "utf8")).trim().split("\n").length;
    await eventually(async () => (await exists(join(containerDir, "greeting"))) && (await boots()) === 1);
    await writeFile(join(containerDir, "data.txt"), "written before the reboot");
    const [firstPid] = await processesOf(label, app.url);

    const rebooted = unwrap((await app.gql(MUTATE("rebootInstance"), { id }, client.key)).data.rebootInstance);
    expect(rebooted).toMatchObject({ status: "LOADING", statusMessage: "rebooting", rebootCount: 1 });
    await running(id);
    await eventually(async () => (await boots()) === 2);
    expect(await readFile(join(containerDir, "data.txt"), "utf8")).toBe("written before the reboot");
    const [secondPid] = await processesOf(label, app.url);
    expect(secondPid).toBeDefined();
    expect(secondPid).not.toBe(firstPid);

    const recycled = unwrap((await app.gql(MUTATE("recycleInstance"), { id }, client.key)).data.recycleInstance);
    expect(recycled).toMatchObject({ status: "LOADING", recycleCount: 1 });
    await running(id);
    await eventually(async () => (await exists(join(containerDir, "boots"))) && (await boots()) === 1);
    expect(await exists(join(containerDir, "data.txt"))).toBe(false);

    const updated = unwrap((await app.gql(MUTATE("updateInstance", ", input: $input"), {
      id,
      input: { env: [{ key: "GREETING", value: "bye" }] },
    }, client.key)).data.updateInstance);
    expect(updated).toMatchObject({ status: "LOADING", recycleCount: 2, env: [{ key: "GREETING", value: "bye" }] });
    await running(id);
    await eventually(async () => (await readFile(join(containerDir, "greeting"), "utf8").catch(() => "")).trim() === "bye");
    expect(await processesOf(label, app.url)).toHaveLength(1);

    const history = await prisma.instanceStatusChange.findMany({ where: { instanceId: Number(id.split(":")[1]) }, orderBy: { id: "asc" } });
    expect(history.map((change) => change.event)).toEqual([
      "CREATED", "ALLOCATED", "AGENT_RUNNING",
      "REBOOT_REQUESTED", "AGENT_RUNNING",
      "RECYCLE_REQUESTED", "AGENT_RUNNING",
      "RECYCLE_REQUESTED", "AGENT_RUNNING",
    ]);

    // Bad input and a stopped instance: typed errors, nothing changed.
    const bad = unwrap((await app.gql(MUTATE("updateInstance", ", input: $input"), { id, input: { image: "Not An Image" } }, client.key)).data.updateInstance);
    expect(bad).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["image"] }] });
    const empty = unwrap((await app.gql(MUTATE("updateInstance", ", input: $input"), { id, input: {} }, client.key)).data.updateInstance);
    expect(empty.__typename).toBe("ValidationError");
    await app.gql(`mutation ($id: ID!) { stopInstance(id: $id) { __typename } }`, { id }, client.key);
    const refused = unwrap((await app.gql(MUTATE("rebootInstance"), { id }, client.key)).data.rebootInstance);
    expect(refused).toMatchObject({ code: "ILLEGAL_TRANSITION", from: "STOPPED", event: "REBOOT_REQUESTED" });
    expect(await instanceRow(id)).toMatchObject({ rebootCount: 1, recycleCount: 2, image: "demo/workload:latest" });
    await eventually(async () => (await processesOf(label, app.url)).length === 0);
  });

  it("ENTRYPOINT args reach the entrypoint", async () => {
    const { id, containerDir } = await rent({
      image: "demo/workload:latest",
      diskGb: 5,
      launchMode: "ENTRYPOINT",
      onstart: 'printf "%s|" "$@" > args; exec sleep 300',
      args: ["--port", "8080", "two words"],
    });
    await running(id);
    await eventually(async () => (await readFile(join(containerDir, "args"), "utf8").catch(() => "")) === "--port|8080|two words|");
  });
});

describe("templates", () => {
  it("an instance launched from a template gets the template's ports and env", async () => {
    const template = await app.gql(
      `mutation ($input: CreateTemplateInput!) { createTemplate(input: $input) { ... on MutationCreateTemplateSuccess { data { id } } } }`,
      {
        input: {
          name: "env and ports",
          image: "demo/workload",
          launchMode: "SSH",
          dockerOptions: "-p 70000:70000 -e MODE=prod -e 'MOTTO=two words'",
          onstart: "env > env.txt",
          recommendedDiskGb: 3,
        },
      },
      client.key,
    );
    const { id, containerDir } = await rent({ templateId: template.data.createTemplate.data.id });
    await running(id);
    const env = await eventually(async () => {
      const text = await readFile(join(containerDir, "env.txt"), "utf8").catch(() => "");
      return text.includes("MODE=") ? Object.fromEntries(text.trim().split("\n").map((line) => [line.split("=")[0], line.slice(line.indexOf("=") + 1)])) : undefined;
    });
    expect(env).toMatchObject({ MODE: "prod", MOTTO: "two words", TCP_PORT_70000: expect.stringMatching(/^\d+$/) });
    expect(await instanceRow(id)).toMatchObject({ ports: ["70000:70000"], diskGb: 3 });
  });
});
