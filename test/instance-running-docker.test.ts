import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import { NO_GPU_RUNTIME_MESSAGE } from "../domain/agent/failures.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, registerAndList, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { containersOfAgent, envOf, inspectContainer, stopAgentAndRemoveContainers } from "./support/docker.ts";
import { type TestImages, testImages } from "./support/images.ts";
import { CREATE_INSTANCE, createAccount, unwrap } from "./support/rentals.ts";
import { runCli } from "./support/cli.ts";
import { keyPair, ssh } from "./support/ssh.ts";
import { subscribe } from "./support/ws.ts";

// Running an instance on the real Docker engine with the real agent: the container's output as
// instanceLogs (and live), a reboot that keeps the container's files and a recycle that does not, and
// a launch from a template that brings its ports and env. Reached only through 127.0.0.1 ports. This
// engine has no GPU runtime: the agents run in their GPU-less test mode, except the one that shows
// what happens without it.

const app = useTestApp();
let auction: AuctionWorker;
let images: TestImages;
let dir: string;
let agent: AgentProcess;
let machineId: number;
let owner: { userId: number; key: string };
let login: { file: string; publicKey: string };

beforeAll(async () => {
  images = await testImages();
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "running-docker-"));
  const host = await createAccount("host");
  const machine = await registerAndList(app, host.key);
  machineId = machine.machineId;
  agent = spawnAgent({ api: app.url, key: machine.key, machineId, stateDir: join(dir, "agent"), runtime: "docker" });
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt, 30_000);
  owner = await createAccount("client");
  login = await keyPair(dir, "owner");
  const added = await app.gql(`mutation ($k: String!) { addSshKey(publicKey: $k) { __typename } }`, { k: login.publicKey }, owner.key);
  expect(added.data.addSshKey.__typename).toBe("MutationAddSshKeySuccess");
}, 15 * 60_000);

afterAll(async () => {
  if (dir) await stopAgentAndRemoveContainers(agent, join(dir, "agent"));
  await auction?.close();
  await closePubSub();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

beforeEach(() => {
  onTestFailed(() => console.error(`agent output:\n${agent.output().slice(-6000)}`));
});

const INSTANCE = /* GraphQL */ `
  query ($id: ID!) {
    instance(id: $id) {
      id status statusMessage rebootCount recycleCount
      connection { publicHost sshPort ports { containerPort protocol hostPort } }
    }
  }
`;

async function rent(input: Record<string, unknown>): Promise<string> {
  // The file's machine unless the input names another offer.
  const created = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machineId}-1`, diskGb: 5, ...input } }, owner.key)).data.createInstance);
  expect(created.instance?.id, JSON.stringify(created)).toBeDefined();
  return created.instance.id;
}

/** RUNNING (at the given reboot and recycle counts) with its connection details reported. */
const runningWith = (id: string, counts: { rebootCount?: number; recycleCount?: number } = {}) =>
  eventually(async () => {
    const current = (await app.gql(INSTANCE, { id }, owner.key)).data.instance;
    if (current.status === "EXITED") throw new Error(`instance ended: ${current.statusMessage}`);
    const atCounts = Object.entries(counts).every(([key, value]) => current[key] === value);
    return current.status === "RUNNING" && atCounts && current.connection ? current : undefined;
  }, 120_000);

/** A command over SSH once sshd answers (after a reboot or recycle it starts again). */
const sshWhenUp = (port: number, command: string) =>
  eventually(async () => {
    const result = await ssh(login.file, port, command);
    return result.code === 0 ? result.stdout : undefined;
  }, 60_000);

const destroy = (id: string) => app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id }, owner.key);

const LOGS = /* GraphQL */ `
  query ($id: ID!, $tail: Int) {
    instanceLogs(instanceId: $id, tail: $tail) {
      __typename
      ... on QueryInstanceLogsSuccess { data { lines } }
      ... on Error { code message }
    }
  }
`;

const MUTATE = (name: string) => /* GraphQL */ `
  mutation ($id: ID!) {
    ${name}(id: $id) {
      __typename
      ... on Mutation${name[0]!.toUpperCase()}${name.slice(1)}Success { data { status rebootCount recycleCount } }
      ... on Error { code message }
    }
  }
`;

describe("running an instance on the real Docker engine", () => {
  it("instanceLogs shows the onstart's output and follows new lines; a reboot keeps the container's files, a recycle does not", async () => {
    const id = await rent({
      image: images.ssh,
      launchMode: "SSH",
      onstart: 'echo "onstart says hello"; echo "to stderr" >&2; (i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done) &',
    });
    const { connection } = await runningWith(id);

    // The onstart's output, stdout and stderr, from the container.
    const logs = async (tail: number) => unwrap((await app.gql(LOGS, { id, tail }, owner.key)).data.instanceLogs);
    const first = await eventually(async () => {
      const answer = await logs(5000);
      return answer.lines?.some((line: string) => line.startsWith("tick")) ? answer : undefined;
    }, 30_000);
    expect(first.lines).toEqual(expect.arrayContaining(["onstart says hello", "to stderr"]));
    expect(first.lines.indexOf("onstart says hello")).toBeLessThan(first.lines.findIndex((line: string) => line.startsWith("tick")));

    // Live: the last line, then the lines written after it, in order, none missing, none twice.
    const watch = subscribe(app.url, owner.key, `subscription ($id: ID!) { instanceLogs(instanceId: $id, tail: 1) { lines } }`, { id });
    const tick = (line: string) => Number(/^tick (\d+)$/.exec(line)?.[1] ?? Number.NaN);
    const start = tick((await watch.next((batch) => batch.lines.length > 0, 30_000)).lines[0]);
    expect(start).toBeGreaterThan(0);
    await watch.next((batch) => batch.lines.some((line: string) => tick(line) >= start + 10), 30_000);
    const seen = watch.values.flatMap((batch) => batch.lines.map(tick));
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => start + i));
    await watch.close();

    // A file written in the instance survives a reboot: the same container, restarted.
    await sshWhenUp(connection.sshPort, "echo kept > /root/data.txt");
    const before = (await inspectContainer(app.url, id))!;
    const rebooted = unwrap((await app.gql(MUTATE("rebootInstance"), { id }, owner.key)).data.rebootInstance);
    expect(rebooted).toMatchObject({ status: "LOADING", rebootCount: 1 });
    const afterReboot = await runningWith(id, { rebootCount: 1 });
    expect(afterReboot.connection.sshPort).toBe(connection.sshPort);
    expect(await sshWhenUp(connection.sshPort, "cat /root/data.txt")).toBe("kept\n");
    const restarted = (await inspectContainer(app.url, id))!;
    expect(restarted.Id).toBe(before.Id);
    // The onstart ran again: its greeting is in the logs twice.
    await eventually(async () => (await logs(5000)).lines.filter((line: string) => line === "onstart says hello").length === 2, 30_000);

    // A recycle makes the container again from a fresh pull: the file is gone.
    const recycled = unwrap((await app.gql(MUTATE("recycleInstance"), { id }, owner.key)).data.recycleInstance);
    expect(recycled).toMatchObject({ status: "LOADING", recycleCount: 1 });
    const afterRecycle = await runningWith(id, { recycleCount: 1 });
    expect(await sshWhenUp(afterRecycle.connection.sshPort, "test -e /root/data.txt && echo present || echo absent")).toBe("absent\n");
    const remade = (await inspectContainer(app.url, id))!;
    expect(remade.Id).not.toBe(before.Id);
    await destroy(id);
  }, 300_000);

  it("an instance launched from a template gets the template's ports and env", async () => {
    const [image, tag] = [images.ssh.slice(0, images.ssh.lastIndexOf(":")), images.ssh.slice(images.ssh.lastIndexOf(":") + 1)];
    const template = await app.gql(
      `mutation ($input: CreateTemplateInput!) { createTemplate(input: $input) {
         __typename ... on MutationCreateTemplateSuccess { data { id } } ... on Error { code message } } }`,
      {
        input: {
          name: "web server",
          image,
          tag,
          launchMode: "SSH",
          dockerOptions: "-p 8081:8081 -e MODE=prod -e 'MOTTO=two words'",
          // Serves its own environment on the template's port.
          onstart: 'echo "template onstart: MODE=$MODE"; mkdir -p /srv && env > /srv/env.txt && cd /srv && python3 -m http.server 8081 &',
          recommendedDiskGb: 3,
        },
      },
      owner.key,
    );
    expect(template.data.createTemplate.__typename, JSON.stringify(template)).toBe("MutationCreateTemplateSuccess");
    const id = await rent({ templateId: template.data.createTemplate.data.id, diskGb: undefined });
    const { connection } = await runningWith(id);

    // The template's port, mapped to one of the machine's direct ports, serving.
    const web = connection.ports.find((port: { containerPort: number }) => port.containerPort === 8081);
    expect(web).toMatchObject({ protocol: "tcp", hostPort: expect.any(Number) });
    expect(web.hostPort).not.toBe(8081);
    const served = await eventually(async () => {
      const response = await fetch(`http://127.0.0.1:${web.hostPort}/env.txt`).catch(() => null);
      return response?.status === 200 ? response.text() : undefined;
    }, 60_000);
    expect(served).toContain("MODE=prod\n");
    expect(served).toContain("MOTTO=two words\n");

    // The env, seen from inside over SSH, in `docker inspect`, and in the logs.
    const environ = await sshWhenUp(connection.sshPort, "tr '\\0' '\\n' < /proc/1/environ");
    expect(environ.split("\n")).toEqual(expect.arrayContaining(["MODE=prod", "MOTTO=two words"]));
    expect(envOf((await inspectContainer(app.url, id))!)).toMatchObject({ MODE: "prod", MOTTO: "two words" });
    await eventually(async () => unwrap((await app.gql(LOGS, { id, tail: 100 }, owner.key)).data.instanceLogs).lines?.includes("template onstart: MODE=prod"), 30_000);
    expect(await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } })).toMatchObject({ ports: ["8081:8081"], diskGb: 3 });
    await destroy(id);
  }, 300_000);

  it("an agent without the GPU-less test mode refuses GPU rentals on an engine without a GPU runtime; the client reads why and the machine is not blamed", async () => {
    const host = await createAccount("host");
    const machine = await registerAndList(app, host.key);
    // Rented before the machine's agent first reported: the API could not know yet.
    const id = await rent({ image: images.ssh, launchMode: "SSH", offerId: `${machine.machineId}-1` });
    const weight = (await prisma.machine.findUniqueOrThrow({ where: { id: machine.machineId } })).reliabilityWeight;
    const stateDir = join(dir, "strict-agent");
    const strict = spawnAgent({ api: app.url, key: machine.key, machineId: machine.machineId, stateDir, runtime: "docker", allowGpuless: false });
    try {
      const ended = await eventually(async () => {
        const current = (await app.gql(INSTANCE, { id }, owner.key)).data.instance;
        return current.status === "EXITED" ? current : undefined;
      }, 60_000);
      expect(ended.statusMessage).toBe(NO_GPU_RUNTIME_MESSAGE);
      const row = await prisma.machine.findUniqueOrThrow({ where: { id: machine.machineId } });
      expect(row.metrics).toMatchObject({ containerGpus: false, gpulessTestMode: false });
      expect(row.reliabilityWeight).toBe(weight);
      // No container was made, and the machine is no longer offered.
      expect(await containersOfAgent(stateDir)).toEqual([]);
      const again = unwrap((await app.gql(CREATE_INSTANCE, { input: { offerId: `${machine.machineId}-1`, image: images.ssh, diskGb: 5, launchMode: "SSH" } }, owner.key)).data.createInstance);
      expect(again).toMatchObject({ code: "OFFER_UNAVAILABLE", message: expect.stringContaining("cannot hand out GPUs") });
    } finally {
      await stopAgentAndRemoveContainers(strict, stateDir);
      await destroy(id);
    }
  }, 300_000);

  it("the README walk-through with the CLI: rent, wait, show, ssh, logs, reboot, recycle, template launch", async () => {
    const walker = await createAccount("walker");
    const key = await keyPair(dir, "walker");
    const cli = async (...argv: string[]) => {
      const result = await runCli(app.url, join(dir, "walker-cli.json"), argv, { key: walker.key });
      expect(result.code, `${argv.join(" ")}: ${result.stderr}`).toBe(0);
      return result.stdout;
    };
    const loginAt = async (number: string, command: string) => {
      const port = Number(/^ssh:\/\/root@127\.0\.0\.1:(\d+)$/.exec((await cli("ssh-url", number)).trim())?.[1]);
      return eventually(async () => {
        const result = await ssh(key.file, port, command);
        return result.code === 0 ? result.stdout : undefined;
      }, 60_000);
    };

    expect(await cli("create", "ssh-key", `${key.file}.pub`)).toMatch(/^added \d+ SHA256:/);
    expect(await cli("search", "offers", `machine_id=${machineId} num_gpus=1 direct_port_count>=2 verified=any`)).toContain(`${machineId}-1`);
    const created = await cli("create", "instance", `${machineId}-1`, "--image", images.ssh, "--disk", "5", "--ssh", "--port", "8081", "--onstart-cmd", "echo hello from onstart");
    const number = /created Instance:(\d+)/.exec(created)![1]!;
    await cli("watch", "instance", number, "--until", "RUNNING");
    const shown = await cli("show", "instance", number);
    expect(shown).toMatch(/ssh -p \d+ root@127\.0\.0\.1/);
    expect(shown).toMatch(/8081\/tcp -> 127\.0\.0\.1:\d+/);
    expect((await loginAt(number, "echo $CONTAINER_ID; echo data > /root/kept.txt")).trim()).toBe(number);
    await eventually(async () => (await cli("logs", number, "--tail", "100")).split("\n").includes("hello from onstart"), 30_000);

    await cli("reboot", "instance", number);
    await cli("watch", "instance", number, "--until", "RUNNING");
    expect(await loginAt(number, "cat /root/kept.txt")).toBe("data\n");
    await cli("recycle", "instance", number);
    await cli("watch", "instance", number, "--until", "RUNNING");
    expect(await loginAt(number, "test -e /root/kept.txt && echo present || echo absent")).toBe("absent\n");
    await cli("destroy", "instance", number);

    const [image, tag] = [images.ssh.slice(0, images.ssh.lastIndexOf(":")), images.ssh.slice(images.ssh.lastIndexOf(":") + 1)];
    const template = await cli("create", "template", "web", "--image", image, "--tag", tag, "--ssh", "--options=-p 8081:8081 -e MODE=prod", "--disk", "3");
    const templateNumber = /created Template:(\d+)/.exec(template)![1]!;
    const launched = /created Instance:(\d+)/.exec(await cli("create", "instance", `${machineId}-1`, "--template", templateNumber))![1]!;
    await cli("watch", "instance", launched, "--until", "RUNNING");
    expect(await cli("show", "instance", launched)).toMatch(/8081\/tcp -> 127\.0\.0\.1:\d+/);
    expect((await loginAt(launched, "tr '\\0' '\\n' < /proc/1/environ")).split("\n")).toContain("MODE=prod");
    await cli("destroy", "instance", launched);
  }, 300_000);
});
