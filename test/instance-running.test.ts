import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import { ProcessRuntime } from "../agent/runtimes/process.ts";
import { main } from "../client/cli.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, processesOf, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, unwrap } from "./support/rentals.ts";
import { subscribe } from "./support/ws.ts";

// Running an instance with the real agent program (process runtime) against the real API: logs,
// reboot, recycle and update, and a launch from a template.

const app = useTestApp();
let auction: AuctionWorker;
let dir: string;
let agent: AgentProcess;
let client: { userId: number; key: string };
let machineId: number;
let machineKey: string;

beforeAll(async () => {
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "instance-running-"));
  const host = await createAccount("host");
  client = await createAccount("client");
  await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 50_000_000n } });
  const machine = await registerAndList(app, host.key);
  machineId = machine.machineId;
  machineKey = machine.key;
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

beforeEach(() => {
  onTestFailed(() => console.error(`agent output:\n${agent.output().slice(-6000)}`));
});

/** Instances a test rented, destroyed after it so that the machine's two GPUs are free again. */
const rented: string[] = [];
afterEach(async () => {
  for (const id of rented.splice(0)) await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id }, client.key);
});

async function rent(input: Record<string, unknown>): Promise<{ id: string; label: string; containerDir: string }> {
  const created = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, ...input } }, client.key)).data.createInstance);
  expect(created.instance?.id, JSON.stringify(created)).toBeDefined();
  rented.push(created.instance.id);
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
  }, 120_000);

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

const LOGS = /* GraphQL */ `
  query ($id: ID!, $tail: Int) {
    instanceLogs(instanceId: $id, tail: $tail) {
      __typename
      ... on QueryInstanceLogsSuccess { data { instanceId lines } }
      ... on Error { code message }
      ... on ValidationError { issues { path message } }
    }
  }
`;

describe("logs", () => {
  it("instanceLogs shows the onstart's output, bounded by tail; the subscription follows new lines", async () => {
    const { id } = await rent({
      image: "demo/workload:latest",
      diskGb: 5,
      launchMode: "SSH",
      onstart: 'echo "onstart says hello"; echo "to stderr" >&2; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo "tick $i"; sleep 0.1; done',
    });
    await running(id);
    const logs = async (tail: number, key = client.key) => unwrap((await app.gql(LOGS, { id, tail }, key)).data.instanceLogs);
    const first = await eventually(async () => {
      const answer = await logs(5000);
      return answer.lines?.filter((line: string) => line.startsWith("tick")).length >= 3 ? answer : undefined;
    });
    expect(first.instanceId).toBe(id);
    expect(first.lines.slice(0, 2)).toEqual(["onstart says hello", "to stderr"]);
    const two = await logs(2);
    expect(two.lines).toHaveLength(2);
    expect(two.lines.every((line: string) => /^tick \d+$/.test(line)), JSON.stringify(two)).toBe(true);

    // The CLI prints them, one a line.
    let printed = "";
    const code = await main(["logs", id.split(":")[1]!, "--tail", "3", "--url", app.url, "--api-key", client.key], {
      stdout: { write: (text: string) => (printed += text) },
      stderr: { write: () => true },
      env: {},
      configPath: join(dir, "cli.json"),
    });
    expect(code).toBe(0);
    expect(printed.trim().split("\n")).toEqual([expect.stringMatching(/^tick \d+$/), expect.stringMatching(/^tick \d+$/), expect.stringMatching(/^tick \d+$/)]);

    for (const tail of [0, 5001]) expect(await logs(tail)).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["tail"] }] });
    const stranger = await createAccount("stranger");
    expect(await logs(10, stranger.key)).toMatchObject({ code: "NOT_FOUND" });

    // Live: the last line first, then lines written after it.
    const watch = subscribe(app.url, client.key, `subscription ($id: ID!) { instanceLogs(instanceId: $id, tail: 1) { lines } }`, { id });
    const tick = (line: string) => Number(/^tick (\d+)$/.exec(line)?.[1] ?? Number.NaN);
    const start = tick((await watch.next((batch) => batch.lines.length > 0, 15_000)).lines[0]);
    expect(start).toBeGreaterThan(0);
    await watch.next((batch) => batch.lines.some((line: string) => tick(line) >= start + 10), 15_000);
    const seen = watch.values.flatMap((batch) => batch.lines.map(tick));
    // In order, none missing, none twice.
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => start + i));
    await watch.close();
  });

  it("the instance's own key reads its logs, another instance's key does not", async () => {
    const inside = (name: string) => rent({ image: "demo/workload:latest", diskGb: 1, launchMode: "SSH", onstart: `echo "${name} here"; echo "$CONTAINER_API_KEY" > key` });
    const [one, two] = [await inside("one"), await inside("two")];
    await Promise.all([running(one.id), running(two.id)]);
    const keyOf = (containerDir: string) => eventually(async () => (await readFile(join(containerDir, "key"), "utf8").catch(() => "")).trim() || undefined);
    const read = async (containerDir: string) => {
      const response = await app.gql(LOGS, { id: one.id, tail: 10 }, await keyOf(containerDir));
      return response.data ? unwrap(response.data.instanceLogs) : response.errors?.[0]?.extensions;
    };
    // Read with the key the container holds now (a relaunch would have issued a new one).
    expect(await eventually(async () => ((await read(one.containerDir)).lines ? read(one.containerDir) : undefined))).toMatchObject({ lines: ["one here"] });
    expect(await eventually(async () => ((await read(two.containerDir)).code === "FORBIDDEN" ? "FORBIDDEN" : undefined))).toBe("FORBIDDEN");

    // The agent answers only requests the API made, for instances of its machine.
    const forged = await app.gql(
      `mutation ($id: ID!) { uploadInstanceLogs(instanceId: $id, requestId: "6f1c3a52-2a8f-4a53-9d57-0f4e8f1f5b11", lines: ["forged"]) { __typename ... on Error { code } } }`,
      { id: one.id },
      machineKey,
    );
    expect(forged.data.uploadInstanceLogs).toMatchObject({ code: "NOT_FOUND" });
  });
});
