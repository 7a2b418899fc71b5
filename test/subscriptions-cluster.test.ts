import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { formatMoney } from "../domain/money.ts";
import { prisma } from "../infra/db.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { type ApiProcess, eventually, spawnApi } from "./support/agent-process.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";
import { subscribe } from "./support/ws.ts";

// Two real API processes sharing PostgreSQL and Redis, and the auction worker in this process: a
// subscriber on one process receives what the other process and the worker produce; when its
// process is killed, it reconnects to the other and ends with the true final state.

let a: ApiProcess;
let b: ApiProcess;
let auction: AuctionWorker | undefined;

beforeAll(async () => {
  [a, b] = await Promise.all([spawnApi(), spawnApi()]);
});

afterAll(async () => {
  for (const api of [a, b]) if (api && api.child.exitCode === null && api.child.signalCode === null) api.child.kill("SIGTERM");
  await Promise.all([a?.exited, b?.exited]);
  await auction?.close();
  await closePubSub();
});

async function gql(url: string, query: string, variables: Record<string, unknown>, key: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data: any };
}

const STATUS = `subscription { instanceStatus { id status } }`;
const BALANCE = `subscription { balance { balance } }`;
const USAGE = `mutation ($id: ID!, $rx: String!) { reportUsage(instanceId: $id, rxBytes: $rx, txBytes: "0") { __typename } }`;

describe("events across API processes", () => {
  it("delivers what another process and the workers publish, and survives the subscriber's process dying", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 10_000_000n } });
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const agentKey = (await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId })).token;

    let target = a.url;
    const statuses = subscribe(() => target, client.key, STATUS, {}, { retry: true });
    const balances = subscribe(() => target, client.key, BALANCE, {}, { retry: true });
    expect(await balances.next()).toEqual({ balance: "10.00" });
    // An instance rented beforehand: its state, the subscription's first event, shows it is listening.
    const earlier = unwrap((await gql(b.url, CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, client.key)).data.createInstance).instance.id;
    await statuses.next((i) => i.id === earlier);

    // A mutation on B (published by B) and the clearing by the worker (published here) reach A's subscriber.
    const created = await gql(b.url, CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, client.key);
    const id = unwrap(created.data.createInstance).instance.id;
    await statuses.next((i) => i.id === id && i.status === "SCHEDULING");
    auction = await startAuctionWorker();
    await statuses.next((i) => i.id === id && i.status === "LOADING");
    const running = await gql(b.url, `mutation ($id: ID!) { reportInstanceState(instanceId: $id, status: RUNNING) { __typename } }`, { id }, agentKey);
    expect(running.data.reportInstanceState.__typename).toBe("MutationReportInstanceStateSuccess");
    await statuses.next((i) => i.id === id && i.status === "RUNNING");
    // The agent's usage report on B moves the balance; A's subscriber sees it.
    await gql(b.url, USAGE, { id, rx: "1000000000" }, agentKey);
    await balances.next((v) => v.balance === "9.998");

    // A dies with both subscriptions open; changes happen meanwhile; they reconnect to B.
    a.child.kill("SIGKILL");
    await a.exited;
    target = b.url;
    await gql(b.url, `mutation ($id: ID!) { stopInstance(id: $id) { __typename } }`, { id }, client.key);
    await gql(b.url, USAGE, { id, rx: "3000000000" }, agentKey);

    const instance = await prisma.instance.findUniqueOrThrow({ where: { id: Number(id.split(":")[1]) } });
    const user = await prisma.user.findUniqueOrThrow({ where: { id: client.userId } });
    expect(instance.status).toBe("STOPPED");
    await eventually(() => statuses.values.filter((i) => i.id === id).at(-1)?.status === instance.status);
    await eventually(() => balances.values.at(-1)?.balance === formatMoney(user.balanceMicros));
    expect(balances.values.at(-1)).toEqual({ balance: "9.994" });
    await Promise.all([statuses.close(), balances.close()]);
  });
});
