import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub, listenerCount, publish } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";
import { eventually } from "./support/agent-process.ts";
import { connectionCloseCode, subscribe } from "./support/ws.ts";

const app = useTestApp();
let auction: AuctionWorker;
beforeAll(async () => {
  auction = await startAuctionWorker();
});
afterAll(async () => {
  await auction.close();
  await closePubSub();
});

const INSTANCE_STATUS = /* GraphQL */ `
  subscription ($id: ID) { instanceStatus(instanceId: $id) { id status statusMessage } }
`;
const BALANCE = /* GraphQL */ `subscription { balance { balance } }`;
const ASSIGNMENTS = /* GraphQL */ `
  subscription ($machineId: ID!) {
    assignments(machineId: $machineId) {
      machineId revision
      instances { instanceId containerLabel desiredState image launchMode onstart env { key value } ports diskGb numGpus preemptGraceSeconds statusMessage }
    }
  }
`;
const REPORT = /* GraphQL */ `
  mutation ($id: ID!, $status: ReportedInstanceState!, $message: String) {
    reportInstanceState(instanceId: $id, status: $status, message: $message) {
      __typename
      ... on MutationReportInstanceStateSuccess { data { id status statusMessage } }
      ... on Error { code message }
    }
  }
`;

async function machineKey(hostId: number, machineId: number): Promise<string> {
  return (await issueApiKey(prisma, { userId: hostId, name: "agent", scope: "MACHINE", machineId })).token;
}

async function rent(key: string, machineId: number, extra: Record<string, unknown> = {}): Promise<string> {
  const result = await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1, extra) }, key);
  return unwrap(result.data.createInstance).instance.id;
}

describe("WebSocket auth", () => {
  it("closes a connection without a key, or with a bad one, with 4403", async () => {
    expect(await connectionCloseCode(app.url, {})).toBe(4403);
    expect(await connectionCloseCode(app.url, { authorization: "Bearer nope" })).toBe(4403);
    expect(await connectionCloseCode(app.url, { authorization: "Basic abc" })).toBe(4403);
  });

  it("accepts a valid key through the same function as HTTP", async () => {
    const { key } = await createAccount("ws", { credit: 0n });
    const balance = subscribe(app.url, key, BALANCE);
    expect(await balance.next()).toEqual({ balance: "0.00" });
    await balance.close();
  });
});

describe("instanceStatus", () => {
  it("streams the caller's instances through the lifecycle, and nobody else's", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const other = await createAccount("other");
    const machineId = await createListedMachine(host.userId, { numGpus: 3 });
    // Each already rents one instance, so a subscription's first event (that instance's state)
    // shows it is listening before anything else happens.
    const earlier = await rent(client.key, machineId);
    const theirsId = await rent(other.key, machineId);
    const mine = subscribe(app.url, client.key, INSTANCE_STATUS);
    const theirs = subscribe(app.url, other.key, INSTANCE_STATUS);
    await mine.next((i) => i.id === earlier);
    await theirs.next((i) => i.id === theirsId);

    const id = await rent(client.key, machineId);
    await mine.next((i) => i.id === id && i.status === "LOADING");
    const single = subscribe(app.url, client.key, INSTANCE_STATUS, { id });
    expect(await single.next()).toMatchObject({ id, status: "LOADING" });

    const agent = await machineKey(host.userId, machineId);
    const reported = await app.gql(REPORT, { id, status: "RUNNING" }, agent);
    expect(reported.data.reportInstanceState.data.status).toBe("RUNNING");
    await single.next((i) => i.status === "RUNNING");
    await app.gql(`mutation ($id: ID!) { stopInstance(id: $id) { __typename } }`, { id }, client.key);
    await single.next((i) => i.status === "STOPPED" && i.statusMessage === "stopped by its owner");
    await mine.next((i) => i.id === id && i.status === "STOPPED");
    const statuses = mine.values.filter((i) => i.id === id).map((i) => i.status);
    expect(statuses).toContain("SCHEDULING");
    expect(statuses.slice(-2)).toEqual(["RUNNING", "STOPPED"]);
    expect(theirs.values.filter((i) => i.id !== theirsId)).toEqual([]);

    const foreign = subscribe(app.url, other.key, INSTANCE_STATUS, { id });
    expect((await foreign.failed())[0].extensions.code).toBe("NOT_FOUND");
    await Promise.all([mine.close(), theirs.close(), single.close(), foreign.close()]);
  });
});

describe("balance", () => {
  it("sends the balance first, coalesces metering to one a second, and payments at once", async () => {
    const { userId, key } = await createAccount("balance", { credit: 0n });
    const balance = subscribe(app.url, key, BALANCE);
    expect(await balance.next()).toEqual({ balance: "0.00" });
    const change = async (micros: bigint, immediate: boolean) => {
      await prisma.user.update({ where: { id: userId }, data: { balanceMicros: { increment: micros } } });
      publish("balance", userId, { immediate });
    };
    // The throttle's clock stands still, so what it holds stays held until the test moves the clock.
    const clock = holdClock();
    try {
      // Changes without a metered second: the first goes out, those after it are held.
      await change(-1000n, false);
      await balance.next((b) => b.balance === "-0.001");
      for (let i = 1; i <= 9; i++) await change(-1000n, false);
      // A payment is not held: it goes out at once, merged with the nine held changes (nothing of
      // theirs went out before it, which a held event would have).
      await change(5_000_000n, true);
      await balance.next((b) => b.balance === "4.99");
      expect(balance.values.map((b) => b.balance)).toEqual(["0.00", "-0.001", "4.99"]);

      // Held changes go out, merged into one event, once a second has passed since the last one.
      for (let i = 1; i <= 6; i++) await change(-1000n, false);
      clock.advance(1000);
      await balance.next((b) => b.balance === "4.984");
      expect(balance.values.map((b) => b.balance)).toEqual(["0.00", "-0.001", "4.99", "4.984"]);
    } finally {
      clock.release();
      await balance.close();
    }
  });

  it("gives every balance event the subscription's whole selection, relations included, as they are now", async () => {
    const { userId, key } = await createAccount("wide", { credit: 0n });
    const balance = subscribe<{ balance: string; email: string; sshKeys: { nodes: { fingerprint: string }[] } }>(
      app.url,
      key,
      `subscription { balance { balance email sshKeys { nodes { fingerprint } } } }`,
    );
    const first = await balance.next();
    expect(first).toMatchObject({ balance: "0.00", sshKeys: { nodes: [] } });
    expect(first.email).toMatch(/^wide-/);
    for (const [i, fingerprint] of ["SHA256:one", "SHA256:two"].entries()) {
      await prisma.sshKey.create({ data: { userId, publicKey: `ssh-ed25519 AAAA${i}`, keyType: "ssh-ed25519", fingerprint } });
      await prisma.user.update({ where: { id: userId }, data: { balanceMicros: { increment: 1_000_000n } } });
      publish("balance", userId, { immediate: true });
      const event = await balance.next((b) => b.balance === `${i + 1}.00`, 2000);
      expect(event.sshKeys.nodes.map((k) => k.fingerprint).sort()).toEqual(["SHA256:one", "SHA256:two"].slice(0, i + 1));
      expect(event.email).toBe(first.email);
    }
    await balance.close();
  });

  it("delivers each metered second at once, however close the ticks, and a usage report with the next tick", async () => {
    const { userId, key } = await createAccount("ticks", { credit: 0n });
    const balance = subscribe(app.url, key, BALANCE);
    expect(await balance.next()).toEqual({ balance: "0.00" });
    const charge = async (event: { immediate: boolean; meteredUntil?: number }) => {
      await prisma.user.update({ where: { id: userId }, data: { balanceMicros: { decrement: 1000n } } });
      publish("balance", userId, event);
    };
    // With the clock standing still, every tick comes "early": only the metered second lets it through.
    const clock = holdClock();
    try {
      await charge({ immediate: false, meteredUntil: 1_000 });
      await balance.next((b) => b.balance === "-0.001");
      await charge({ immediate: false, meteredUntil: 1_001 });
      await balance.next((b) => b.balance === "-0.002");

      // A usage report waits for the next tick and goes out with it, as one event.
      await charge({ immediate: false });
      await charge({ immediate: false, meteredUntil: 1_002 });
      await balance.next((b) => b.balance === "-0.004");
      expect(balance.values.map((b) => b.balance)).toEqual(["0.00", "-0.001", "-0.002", "-0.004"]);
    } finally {
      clock.release();
      await balance.close();
    }
  });
});

/**
 * Stops `Date.now()` (only that: timers and sockets run on) at the current time, so that a throttle
 * measuring gaps with it sees no time pass until `advance`.
 */
function holdClock() {
  vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
  return {
    advance: (ms: number) => vi.setSystemTime(Date.now() + ms),
    release: () => vi.useRealTimers(),
  };
}

describe("revoked keys", () => {
  it("closes the connections of a key revoked after they opened with 4403, and only those", async () => {
    const { userId, key } = await createAccount("revoked");
    const doomedKey = await issueApiKey(prisma, { userId, name: "laptop", scope: "ACCOUNT" });
    const doomed = subscribe(app.url, doomedKey.token, BALANCE);
    const kept = subscribe(app.url, key, BALANCE);
    await Promise.all([doomed.next(), kept.next()]);
    expect(await app.closeRevokedConnections()).toBe(0);

    const revoked = await app.gql(`mutation ($id: ID!) { revokeApiKey(id: $id) { __typename } }`, { id: `ApiKey:${doomedKey.id}` }, key);
    expect(revoked.data.revokeApiKey.__typename).toBe("MutationRevokeApiKeySuccess");
    expect(await app.closeRevokedConnections()).toBe(1);
    expect((await doomed.failed()).code).toBe(4403);
    expect(kept.errors).toEqual([]);
    expect(await app.closeRevokedConnections()).toBe(0);
    await Promise.all([doomed.close(), kept.close()]);
  });
});

describe("unsubscribing", () => {
  it("removes the subscription's listener at once, whatever the subscription", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const before = listenerCount();
    const open = [
      subscribe(app.url, client.key, BALANCE),
      subscribe(app.url, client.key, INSTANCE_STATUS),
      subscribe(app.url, await machineKey(host.userId, machineId), ASSIGNMENTS, { machineId: `Machine:${machineId}` }),
    ];
    await Promise.all([open[0].next(), open[2].next()]);
    await eventually(() => listenerCount() === before + 3);
    // Nothing is published meanwhile: each stream is waiting for its next event when it is closed.
    await Promise.all(open.map((subscription) => subscription.close()));
    await eventually(() => listenerCount() === before, 5000);
  });
});

describe("assignments", () => {
  it("gives the machine's agent its whole desired state, again after every change, with a growing revision", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const agent = await machineKey(host.userId, machineId);
    const states = subscribe(app.url, agent, ASSIGNMENTS, { machineId: `Machine:${machineId}` });
    const first = await states.next();
    expect(first).toEqual({ machineId: `Machine:${machineId}`, revision: expect.stringMatching(/^\d+$/), instances: [] });

    const id = await rent(client.key, machineId, { env: [{ key: "A", value: "1" }], ports: ["8080"], onstart: "echo hi" });
    const running = await states.next((s) => s.instances[0]?.desiredState === "RUNNING");
    expect(running.instances).toEqual([
      {
        instanceId: id,
        containerLabel: `C.${id.split(":")[1]}`,
        desiredState: "RUNNING",
        image: "pytorch/pytorch:latest",
        launchMode: "SSH",
        onstart: "echo hi",
        env: [{ key: "A", value: "1" }],
        ports: ["8080"],
        diskGb: 20,
        numGpus: 1,
        preemptGraceSeconds: 5,
        statusMessage: null,
      },
    ]);
    expect(BigInt(running.revision)).toBeGreaterThan(BigInt(first.revision));

    await app.gql(`mutation ($id: ID!) { destroyInstance(id: $id) { __typename } }`, { id }, client.key);
    const gone = await states.next((s) => s.instances.length === 0 && BigInt(s.revision) > BigInt(running.revision));
    const revisions = states.values.map((s) => BigInt(s.revision));
    expect(revisions).toEqual([...revisions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(gone.instances).toEqual([]);

    // A resubscribing agent starts from the whole current state.
    const again = subscribe(app.url, agent, ASSIGNMENTS, { machineId: `Machine:${machineId}` });
    expect(BigInt((await again.next()).revision)).toBeGreaterThanOrEqual(BigInt(gone.revision));
    await Promise.all([states.close(), again.close()]);
  });

  it("refuses account keys and other machines' keys with an error the agent can act on", async () => {
    const host = await createAccount("host");
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const otherMachine = await createListedMachine(host.userId, { numGpus: 1 });
    const foreignAgent = await machineKey(host.userId, otherMachine);
    const byAccount = subscribe(app.url, host.key, ASSIGNMENTS, { machineId: `Machine:${machineId}` });
    expect((await byAccount.failed())[0].extensions.code).toBe("FORBIDDEN");
    const byOther = subscribe(app.url, foreignAgent, ASSIGNMENTS, { machineId: `Machine:${machineId}` });
    expect((await byOther.failed())[0].extensions.code).toBe("NOT_FOUND");
    await Promise.all([byAccount.close(), byOther.close()]);
  });
});

describe("agent mutations", () => {
  it("report, usage, heartbeat and container keys work for the machine's key only", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const otherMachine = await createListedMachine(host.userId, { numGpus: 1 });
    const agent = await machineKey(host.userId, machineId);
    const foreignAgent = await machineKey(host.userId, otherMachine);
    const id = await rent(client.key, machineId);
    const status = async () => (await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } })).status;
    await expect.poll(status, { timeout: 5000, interval: 50 }).toBe("LOADING");

    const byClient = await app.gql(REPORT, { id, status: "RUNNING" }, client.key);
    expect(byClient.data.reportInstanceState.code).toBe("FORBIDDEN");
    const byOther = await app.gql(REPORT, { id, status: "RUNNING" }, foreignAgent);
    expect(byOther.data.reportInstanceState.code).toBe("NOT_FOUND");
    expect(await status()).toBe("LOADING");

    const ok = await app.gql(REPORT, { id, status: "RUNNING" }, agent);
    expect(ok.data.reportInstanceState).toMatchObject({ __typename: "MutationReportInstanceStateSuccess", data: { status: "RUNNING" } });
    const repeated = await app.gql(REPORT, { id, status: "RUNNING" }, agent);
    expect(repeated.data.reportInstanceState.data.status).toBe("RUNNING");
    const history = await prisma.instanceStatusChange.count({ where: { instanceId: Number(id.split(":")[1]), toStatus: "RUNNING" } });
    expect(history).toBe(1);

    const KEY = `mutation ($id: ID!) { issueContainerApiKey(instanceId: $id) {
      __typename ... on MutationIssueContainerApiKeySuccess { data { token } } ... on Error { code message } } }`;
    const issued = await app.gql(KEY, { id }, agent);
    const token = issued.data.issueContainerApiKey.data.token;
    expect(token).toMatch(/.{20,}/);
    expect((await app.gql(KEY, { id }, client.key)).data.issueContainerApiKey.code).toBe("FORBIDDEN");
    // The container's key stops its own instance.
    const stopped = await app.gql(`mutation ($id: ID!) { stopInstance(id: $id) { __typename ... on MutationStopInstanceSuccess { data { status } } } }`, { id }, token);
    expect(stopped.data.stopInstance.data.status).toBe("STOPPED");

    const USAGE = `mutation ($id: ID!, $rx: String!, $tx: String!) { reportUsage(instanceId: $id, rxBytes: $rx, txBytes: $tx) {
      __typename ... on MutationReportUsageSuccess { data { rxBytes txBytes charged } } ... on Error { code message } } }`;
    const usage = await app.gql(USAGE, { id, rx: "2000000000", tx: "1000000000" }, agent);
    expect(usage.data.reportUsage.data).toEqual({ rxBytes: "2000000000", txBytes: "1000000000", charged: "0.009" });
    const again = await app.gql(USAGE, { id, rx: "2000000000", tx: "1000000000" }, agent);
    expect(again.data.reportUsage.data).toEqual({ rxBytes: "0", txBytes: "0", charged: "0.00" });
    const bad = await app.gql(USAGE, { id, rx: "-1", tx: "1" }, agent);
    expect(bad.data.reportUsage.code).toBe("VALIDATION");

    const BEAT = `mutation ($m: ID!, $metrics: MachineMetricsInput) { machineHeartbeat(machineId: $m, metrics: $metrics) {
      __typename ... on MutationMachineHeartbeatSuccess { data { online lastHeartbeatAt metrics { gpuUtilization cpuLoad } } } ... on Error { code } } }`;
    const beat = await app.gql(BEAT, { m: `Machine:${machineId}`, metrics: { gpuUtilization: [50, 60], cpuLoad: 1.5 } }, agent);
    expect(beat.data.machineHeartbeat.data).toMatchObject({ online: true, metrics: { gpuUtilization: [50, 60], cpuLoad: 1.5 } });
    expect((await app.gql(BEAT, { m: `Machine:${otherMachine}` }, agent)).data.machineHeartbeat.code).toBe("NOT_FOUND");
    // What the agent sends: only __typename of the result.
    const bare = await app.gql(`mutation ($m: ID!) { machineHeartbeat(machineId: $m) { __typename } }`, { m: `Machine:${machineId}` }, agent);
    expect(bare).toEqual({ data: { machineHeartbeat: { __typename: "MutationMachineHeartbeatSuccess" } } });
  });
});
