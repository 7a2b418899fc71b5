import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { run, runOk } from "../agent/exec.ts";
import type { ContainerSpec } from "../agent/runtime.ts";
import { DockerRuntime } from "../agent/runtimes/docker.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type AgentProcess, eventually, spawnAgent } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { type TestImages, testImages } from "./support/images.ts";
import { runCli } from "./support/cli.ts";
import { stopAgentAndRemoveContainers } from "./support/docker.ts";
import { expectJupyterGuarded } from "./support/jupyter.ts";
import { freePortRange } from "./support/ports.ts";
import { keyPair, ssh } from "./support/ssh.ts";
import { createAccount, unwrap } from "./support/rentals.ts";
import { wsUrl } from "./support/ws.ts";

// The renter's way in, end to end on the real Docker engine: the real agent pulls the test images
// from the local registry, publishes the instance's ports from the machine's range, installs the
// account's SSH keys, runs sshd and Jupyter in the containers; the real `ssh` client logs in through
// the ports published on 127.0.0.1.

const app = useTestApp();
let auction: AuctionWorker;
let images: TestImages;
let dir: string;
let agent: AgentProcess;
let machineId: number;
let machineKey: string;
/** A range of its own per run (concurrent runs share this engine), every port free when the run starts. */
let RANGE_START: number;
const RANGE_SIZE = 6;

const stateDir = () => join(dir, "agent");

const SPECS = {
  gpuName: "RTX 4090", numGpus: 4, gpuRamMb: 24564, computeCap: 890, tflopsPerGpu: 82.6, gpuMemBw: 1008, pcieGen: 4,
  pcieBw: 24.5, cpuName: "AMD EPYC 7543", cpuCores: 32, cpuRamMb: 128000, diskSpaceGb: 500, diskBw: 3000,
  inetUpMbps: 500, inetDownMbps: 500, cudaMaxGood: 12.4, driverVersion: "550.54.15", countryCode: "DE",
  geolocation: "Hesse, DE",
};

const INSTANCE_FIELDS = `id status statusMessage
  connection { publicHost sshPort ports { containerPort protocol hostPort } jupyterUrl jupyterDirectUrl }
  sshKeys { id fingerprint }`;

const startDockerAgent = () =>
  spawnAgent({ api: app.url, key: machineKey, machineId, stateDir: stateDir(), runtime: "docker" });

beforeAll(async () => {
  images = await testImages();
  RANGE_START = await freePortRange(RANGE_SIZE);
  auction = await startAuctionWorker();
  dir = await mkdtemp(join(tmpdir(), "connection-docker-"));
  const host = await createAccount("host");
  const registered = await app.gql(
    `mutation ($input: RegisterMachineInput!) { registerMachine(input: $input) {
       ... on MutationRegisterMachineSuccess { data { machine { id } apiKey { token } } } ... on Error { code message } } }`,
    { input: SPECS },
    host.key,
  );
  const { machine, apiKey } = registered.data.registerMachine.data;
  machineId = Number(machine.id.split(":")[1]);
  machineKey = apiKey.token;
  const network = await app.gql(
    `mutation ($input: MachineNetworkInput!) { setMachineNetwork(input: $input) { __typename ... on Error { code message } } }`,
    { input: { machineId: machine.id, directPortStart: RANGE_START, directPortEnd: RANGE_START + RANGE_SIZE - 1 } },
    host.key,
  );
  expect(network.data.setMachineNetwork.__typename).toBe("MutationSetMachineNetworkSuccess");
  const listed = await app.gql(
    `mutation ($input: ListMachineInput!) { listMachine(input: $input) { __typename ... on Error { code message } } }`,
    { input: { machineId: machine.id, pricePerGpuHour: "0.30", endDate: new Date(Date.now() + 7 * 86_400_000).toISOString() } },
    host.key,
  );
  expect(listed.data.listMachine.__typename).toBe("MutationListMachineSuccess");
  agent = startDockerAgent();
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).lastHeartbeatAt, 30_000);
}, 15 * 60_000);

afterAll(async () => {
  if (dir) await stopAgentAndRemoveContainers(agent, stateDir());
  await auction?.close();
  await closePubSub();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

/** A WebSocket opened with this Origin (as a browser does): open, or the HTTP status its upgrade was refused with. */
function openWebSocket(url: string, origin: string): Promise<WebSocket | { refused: number }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { origin });
    socket.once("open", () => resolve(socket));
    socket.once("unexpected-response", (_request, response) => {
      resolve({ refused: response.statusCode ?? 0 });
      socket.terminate();
    });
    socket.once("error", (error) => reject(error));
  });
}

async function client(balance = 20_000_000n) {
  const account = await createAccount("client");
  await prisma.user.update({ where: { id: account.userId }, data: { balanceMicros: balance } });
  return account;
}

async function rent(key: string, input: Record<string, unknown>): Promise<string> {
  const created = await app.gql(
    `mutation ($input: CreateInstanceInput!) { createInstance(input: $input) {
       __typename ... on MutationCreateInstanceSuccess { data { instance { id } } } ... on Error { code message } } }`,
    { input: { offerId: `${machineId}-1`, diskGb: 5, ...input } },
    key,
  );
  const result = unwrap(created.data.createInstance);
  expect(result.instance, JSON.stringify(created)).toBeDefined();
  return result.instance.id;
}

async function instance(id: string, key: string) {
  const response = await app.gql(`query ($id: ID!) { instance(id: $id) { ${INSTANCE_FIELDS} } }`, { id }, key);
  return response.data?.instance ?? null;
}

/** RUNNING with its connection details reported. */
const connected = (id: string, key: string) =>
  eventually(async () => {
    const current = await instance(id, key);
    if (current.status === "EXITED") throw new Error(`instance ended: ${current.statusMessage}`);
    return current.status === "RUNNING" && current.connection ? current : undefined;
  }, 120_000);

describe("reaching an instance on the real Docker engine", () => {
  it("logs in over SSH with the account's key; attached keys log in, detached ones are refused; tenants get their own ports", async () => {
    const owner = await client();
    const first = await keyPair(dir, "first");
    const second = await keyPair(dir, "second");
    const added = await app.gql(`mutation ($k: String!) { addSshKey(publicKey: $k) { __typename } }`, { k: first.publicKey }, owner.key);
    expect(added.data.addSshKey.__typename).toBe("MutationAddSshKeySuccess");

    const id = await rent(owner.key, { image: images.ssh, launchMode: "SSH", ports: ["8081"] });
    const running = await connected(id, owner.key);
    const { connection } = running;
    expect(connection.publicHost).toBe("127.0.0.1");
    expect(connection.sshPort).toBeGreaterThanOrEqual(RANGE_START);
    expect(connection.sshPort).toBeLessThanOrEqual(RANGE_START + 5);
    expect(connection.ports).toEqual(
      expect.arrayContaining([
        { containerPort: 22, protocol: "tcp", hostPort: connection.sshPort },
        { containerPort: 8081, protocol: "tcp", hostPort: expect.any(Number) },
      ]),
    );
    // Owner only.
    const stranger = await client();
    expect((await instance(id, stranger.key))).toBeNull();

    const login = await eventually(async () => {
      const result = await ssh(first.file, connection.sshPort, "echo $CONTAINER_ID; cat /proc/1/cmdline | tr '\\0' ' '");
      return result.code === 0 ? result : undefined;
    }, 30_000);
    const [containerId, cmdline] = login.stdout.split("\n");
    expect(containerId).toBe(id.split(":")[1]);
    expect(cmdline).toMatch(/\S/);

    // The CLI: URLs, connection details, and copying files both ways through the instance's SSH.
    const cli = (argv: string[]) => runCli(app.url, join(dir, "cli.json"), argv, { key: owner.key });
    const number = id.split(":")[1]!;
    expect((await cli(["ssh-url", number])).stdout.trim()).toBe(`ssh://root@127.0.0.1:${connection.sshPort}`);
    expect((await cli(["scp-url", number])).stdout.trim()).toBe(`scp://root@127.0.0.1:${connection.sshPort}`);
    const shown = (await cli(["show", "instance", number])).stdout;
    expect(shown).toContain(`ssh -p ${connection.sshPort} root@127.0.0.1`);
    expect(shown).toContain(`8081/tcp -> 127.0.0.1:`);
    await writeFile(join(dir, "upload.txt"), "from the laptop\n");
    const up = await cli(["copy", join(dir, "upload.txt"), `${number}:/root/upload.txt`, "--identity", first.file]);
    expect(up.code, up.stderr).toBe(0);
    expect((await ssh(first.file, connection.sshPort, "cat /root/upload.txt")).stdout).toBe("from the laptop\n");
    const down = await cli(["copy", `${number}:/etc/hostname`, join(dir, "hostname"), "--identity", first.file]);
    expect(down.code, down.stderr).toBe(0);
    expect((await readFile(join(dir, "hostname"), "utf8")).trim()).toMatch(/\S/);

    // The second key: refused, then attached (no restart), then detached again.
    expect((await ssh(second.file, connection.sshPort, "true")).code).toBe(255);
    const attached = await app.gql(
      `mutation ($id: ID!, $k: String!) { attachSshKey(instanceId: $id, publicKey: $k) {
         __typename ... on MutationAttachSshKeySuccess { data { sshKeys { id fingerprint } } } } }`,
      { id, k: second.publicKey },
      owner.key,
    );
    const keys = attached.data.attachSshKey.data.sshKeys as { id: string; fingerprint: string }[];
    expect(keys).toHaveLength(2);
    await eventually(async () => (await ssh(second.file, connection.sshPort, "true")).code === 0, 20_000);
    const detached = await app.gql(
      `mutation ($id: ID!, $k: ID!) { detachSshKey(instanceId: $id, sshKeyId: $k) { __typename } }`,
      { id, k: keys[1]!.id },
      owner.key,
    );
    expect(detached.data.detachSshKey.__typename).toBe("MutationDetachSshKeySuccess");
    await eventually(async () => (await ssh(second.file, connection.sshPort, "true")).code === 255, 20_000);
    expect((await ssh(first.file, connection.sshPort, "true")).code).toBe(0);
    // Neither restarted nor recreated.
    expect((await instance(id, owner.key)).status).toBe("RUNNING");

    // No GPU toolkit on this engine: the container runs without --gpus and says so.
    const name = new DockerRuntime(join(stateDir(), "docker"), pino({ level: "silent" })).containerName(`C.${id.split(":")[1]}`);
    const inspected = JSON.parse(await runOk("docker", ["inspect", name]))[0];
    expect(inspected.Config.Labels["gpu-marketplace.gpus"]).toMatch(/^\d$/);
    expect(inspected.Config.Labels["gpu-marketplace.gpu-isolation"]).toBe("none");
    expect(inspected.Config.Env).toContain("GPU_ISOLATION=none");
    expect(inspected.HostConfig.DeviceRequests ?? []).toEqual([]);
    const machine = await prisma.machine.findUniqueOrThrow({ where: { id: machineId } });
    expect(machine.metrics).toMatchObject({ containerGpus: false });
    expect(machine.reportedAddress).toBe("127.0.0.1");

    // A second tenant of the machine: other external ports.
    const other = await client();
    await app.gql(`mutation ($k: String!) { addSshKey(publicKey: $k) { __typename } }`, { k: second.publicKey }, other.key);
    const otherId = await rent(other.key, { image: images.ssh, launchMode: "SSH" });
    const otherConnection = (await connected(otherId, other.key)).connection;
    const mine = new Set(connection.ports.map((port: { hostPort: number }) => port.hostPort));
    expect(otherConnection.ports.every((port: { hostPort: number }) => !mine.has(port.hostPort))).toBe(true);
    await eventually(async () => (await ssh(second.file, otherConnection.sshPort, "echo $CONTAINER_ID")).stdout.trim() === otherId.split(":")[1], 30_000);
    expect((await ssh(first.file, otherConnection.sshPort, "true")).code).toBe(255);

    // The range has 6 ports and 3 are held: a rental asking for 4 more is refused, naming ports.
    const tooMany = await app.gql(
      `mutation ($input: CreateInstanceInput!) { createInstance(input: $input) { __typename ... on ValidationError { code issues { path message } } } }`,
      { input: { offerId: `${machineId}-1`, diskGb: 5, image: images.ssh, launchMode: "SSH", ports: ["1", "2", "3"] } },
      other.key,
    );
    expect(tooMany.data.createInstance.__typename).toBe("ValidationError");
    expect(JSON.stringify(tooMany.data.createInstance.issues)).toContain("ports");
    // Search: 3 ports left in the range; a rental needing 4 finds no offer of this machine.
    const search = async (query: string) =>
      ((await app.gql(`query ($q: String!) { offers(query: $q) { edges { node { id directPortCount staticIp } } } }`, { q: query })).data
        .offers.edges as { node: { id: string; directPortCount: number; staticIp: boolean } }[]).map((edge) => edge.node);
    const withThree = await search(`machine_id=${machineId} verified=any rentable=any direct_port_count>=3`);
    expect(withThree.length).toBeGreaterThan(0);
    expect(withThree.every((offer) => offer.directPortCount === 3 && !offer.staticIp)).toBe(true);
    expect(await search(`machine_id=${machineId} verified=any rentable=any direct_port_count>=4`)).toEqual([]);

    // An agent restart finds the containers and reports the same mappings.
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    const before = await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } });
    agent = startDockerAgent();
    await eventually(async () => agent.output().includes("desired state"), 30_000);
    await eventually(async () => (await ssh(first.file, connection.sshPort, "true")).code === 0, 30_000);
    const after = await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } });
    expect(after.reportedPorts).toEqual(before.reportedPorts);
    expect(JSON.parse(await runOk("docker", ["inspect", name]))[0].Id).toBe(inspected.Id);

    for (const [instanceId, key] of [[id, owner.key], [otherId, other.key]] as const) {
      await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id: instanceId }, key);
    }
  }, 300_000);

  it("gives an image without an OpenSSH server the host's: the ssh client logs in with the account's key, copies files, and attach/detach apply", async () => {
    const owner = await client();
    const first = await keyPair(dir, "bundled-first");
    const second = await keyPair(dir, "bundled-second");
    await app.gql(`mutation ($k: String!) { addSshKey(publicKey: $k) { __typename } }`, { k: first.publicKey }, owner.key);
    // busybox only: no sshd, no package manager, no network needed.
    const id = await rent(owner.key, { image: images.plain, launchMode: "SSH" });
    const { connection } = await connected(id, owner.key);
    const login = await eventually(async () => {
      const result = await ssh(first.file, connection.sshPort, "echo $CONTAINER_ID; command -v sshd || echo no sshd in the image; ls /bin/busybox");
      return result.code === 0 ? result : undefined;
    }, 30_000);
    expect(login.stdout.split("\n")).toEqual([id.split(":")[1], "no sshd in the image", "/bin/busybox", ""]);

    // scp goes through the built-in SFTP server: the image has no sftp-server either.
    await writeFile(join(dir, "bundled.txt"), "through the host's sshd\n");
    const scp = await run("scp", [
      "-i", first.file, "-P", String(connection.sshPort),
      "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
      join(dir, "bundled.txt"), "root@127.0.0.1:/root/bundled.txt",
    ]);
    expect(scp.code, scp.stderr).toBe(0);
    expect((await ssh(first.file, connection.sshPort, "cat /root/bundled.txt")).stdout).toBe("through the host's sshd\n");

    expect((await ssh(second.file, connection.sshPort, "true")).code).toBe(255);
    const attached = await app.gql(
      `mutation ($id: ID!, $k: String!) { attachSshKey(instanceId: $id, publicKey: $k) {
         __typename ... on MutationAttachSshKeySuccess { data { sshKeys { id } } } } }`,
      { id, k: second.publicKey },
      owner.key,
    );
    const keys = attached.data.attachSshKey.data.sshKeys as { id: string }[];
    await eventually(async () => (await ssh(second.file, connection.sshPort, "true")).code === 0, 20_000);
    await app.gql(`mutation ($id: ID!, $k: ID!) { detachSshKey(instanceId: $id, sshKeyId: $k) { __typename } }`, { id, k: keys[1]!.id }, owner.key);
    await eventually(async () => (await ssh(second.file, connection.sshPort, "true")).code === 255, 20_000);
    expect((await ssh(first.file, connection.sshPort, "true")).code).toBe(0);
    await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id }, owner.key);
  }, 300_000);

  it("refuses an SSH launch of an image without sshd when the host has none to give, and says why", async () => {
    const runtime = new DockerRuntime(join(dir, "no-sshd"), pino({ level: "silent" }), { hostSshd: null });
    const spec = (label: string, image: string): ContainerSpec => ({
      label, instanceId: `Instance:${label}`, image, launchMode: "SSH", onstart: null, env: {}, ports: [], sshKeys: [],
      jupyterToken: null, jupyterBasePath: "/", args: [], diskGb: 0, numGpus: 0, gpuIndices: [], cpuCores: 0, memoryMb: 0,
      recycleCount: 0, rebootCount: 0,
    });
    try {
      expect(await runtime.sshBundle()).toBeNull();
      await expect(runtime.create(spec("C.nosshd", images.plain))).rejects.toThrow(
        expect.objectContaining({ name: "LaunchRefusedError", message: expect.stringMatching(/has no OpenSSH server \(sshd\) and this host has none/) }),
      );
      expect(await runtime.list()).toEqual([]);
      // An image with its own sshd needs nothing from the host.
      await runtime.create(spec("C.ownsshd", images.ssh));
      expect((await runtime.list()).map((container) => container.label)).toEqual(["C.ownsshd"]);
    } finally {
      for (const container of await runtime.list()) await runtime.remove(container.label, 0);
    }
  }, 120_000);

  it("serves Jupyter with the instance's token, directly and through the API's proxy; 403 without it", async () => {
    const owner = await client();
    const id = await rent(owner.key, { image: images.jupyter, launchMode: "JUPYTER" });
    const { connection } = await connected(id, owner.key);
    expect(new URL(connection.jupyterUrl).origin).toBe(app.baseUrl);
    const { token, proxiedBase } = await expectJupyterGuarded(connection, 90_000);

    // WebSockets through the proxy (what kernels and terminals talk over), as a browser on the API's
    // origin opens them: a terminal's shell answers; without the token the upgrade is refused with 403.
    const terminal = await fetch(`${proxiedBase}api/terminals?token=${token}`, { method: "POST" });
    expect(terminal.status).toBe(200);
    const { name: terminalName } = (await terminal.json()) as { name: string };
    const socketUrl = `${wsUrl(proxiedBase)}terminals/websocket/${terminalName}`;
    const socket = await openWebSocket(`${socketUrl}?token=${token}`, app.baseUrl);
    if (!("send" in socket)) throw new Error(`the proxied WebSocket was refused with ${socket.refused}`);
    const output: string[] = [];
    socket.on("message", (data: Buffer) => {
      const [kind, text] = JSON.parse(data.toString()) as [string, string];
      if (kind === "stdout") output.push(text);
    });
    socket.send(JSON.stringify(["stdin", "echo through-the-proxy-$((6*7))\r"]));
    await eventually(async () => output.join("").includes("through-the-proxy-42"), 20_000);
    socket.close();
    expect(await openWebSocket(socketUrl, app.baseUrl)).toEqual({ refused: 403 });
    expect(await openWebSocket(`${socketUrl}?token=not-${token}`, app.baseUrl)).toEqual({ refused: 403 });
    // Another instance's token is the owner's only.
    const stranger = await client();
    expect(await instance(id, stranger.key)).toBeNull();
    await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id }, owner.key);
  }, 300_000);

  it("runs an image with neither ENTRYPOINT nor CMD, and refuses an image that does not exist without blaming the host", async () => {
    const owner = await client();
    const plain = await rent(owner.key, { image: images.plain, launchMode: "ENTRYPOINT" });
    await eventually(async () => (await instance(plain, owner.key)).status === "RUNNING", 120_000);

    const reliability = (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).reliabilityWeight;
    const missing = await rent(owner.key, { image: "127.0.0.1:5000/gm-test/missing:1", launchMode: "ENTRYPOINT" });
    const failed = await eventually(async () => {
      const current = await instance(missing, owner.key);
      return current.status === "EXITED" ? current : undefined;
    }, 60_000);
    expect(failed.statusMessage).toMatch(/could not be pulled/);
    expect((await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).reliabilityWeight).toBe(reliability);
    for (const instanceId of [plain, missing]) {
      await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id: instanceId }, owner.key);
    }
  }, 300_000);
});
