import { beforeAll, describe, expect, it } from "vitest";
import { listMachine, setMinBid, unlistMachine } from "../domain/machines.ts";
import { clearMachineNow } from "../domain/auction/service.ts";
import { expireInstances } from "../domain/instances/expiry.ts";
import { reportInstanceState } from "../domain/agent/reports.ts";
import { issueContainerApiKey } from "../domain/instances/service.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, DAY, createAccount, createListedMachine, expectAllocationValid, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();

let host: { userId: number; key: string };
let client: { userId: number; key: string };
let other: { userId: number; key: string };

beforeAll(async () => {
  host = await createAccount("host");
  client = await createAccount("client");
  other = await createAccount("other");
});

async function create(machineId: number, numGpus: number, extra: Record<string, unknown> = {}, key = client.key) {
  const result = await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus, extra) }, key);
  expect(result.errors).toBeUndefined();
  return unwrap(result.data.createInstance);
}

const localId = (globalId: string) => Number(globalId.split(":")[1]);
const statusOf = async (id: string) => (await prisma.instance.findUniqueOrThrow({ where: { id: localId(id) } })).status;

const LIFECYCLE = (name: string) => /* GraphQL */ `
  mutation ($id: ID!) {
    ${name}(id: $id) {
      __typename
      ... on Mutation${name[0].toUpperCase() + name.slice(1)}Success { data { __typename id status intendedStatus statusMessage } }
      ... on Error { code message }
      ... on IllegalTransitionError { from event }
    }
  }
`;

describe("createInstance", () => {
  it("rents on demand at the listing's locked prices, with a container label and an instance key", async () => {
    const machineId = await createListedMachine(host.userId);
    const created = await create(machineId, 2, { label: "train", env: [{ key: "WANDB_MODE", value: "offline" }], ports: ["8081:8081", "8081/udp", "70000:70000"] });
    expect(created.__typename).toBe("CreateInstancePayload");
    expect(created.instance).toMatchObject({ kind: "ON_DEMAND", status: "SCHEDULING", numGpus: 2, pricePerGpuHour: "0.40", bidPerGpuHour: null });
    const id = localId(created.instance.id);
    expect(created.instance.containerLabel).toBe(`C.${id}`);
    expect(created.apiKey.apiKey).toEqual({ scope: "INSTANCE", instanceId: `Instance:${id}` });
    expect(created.apiKey.token).toMatch(/^gmk_/);

    // On-demand GPUs leave the offers at once; the contract ignores later listing changes.
    const offers = await prisma.offer.findMany({ where: { machineId }, orderBy: { numGpus: "asc" } });
    expect(offers.map((o) => [o.numGpus, o.gpusFreeOfOnDemand, o.rentable])).toEqual([[1, 6, true], [2, 6, true], [4, 6, true], [8, 6, false]]);
    const endDate = (await prisma.instance.findUniqueOrThrow({ where: { id } })).endDate;
    await listMachine(host.userId, { machineId, pricePerGpuHour: 900_000n, endDate: new Date(Date.now() + 5 * DAY) });
    const stored = await prisma.instance.findUniqueOrThrow({ where: { id } });
    expect(stored).toMatchObject({ pricePerGpuHourMicros: 400_000n, storagePricePerGbMonthMicros: 100_000n, inetUpPricePerGbMicros: 5_000n, inetDownPricePerGbMicros: 2_000n, endDate });
    expect(stored.env).toEqual([{ key: "WANDB_MODE", value: "offline" }]);

    // The auction assigns its GPUs: LOADING until the agent reports it running.
    await clearMachineNow(machineId);
    expect(await statusOf(created.instance.id)).toBe("LOADING");
    await expectAllocationValid(machineId);
  });

  it("rents interruptible with a bid, refusing bids under the min bid", async () => {
    const machineId = await createListedMachine(host.userId);
    const low = await create(machineId, 1, { bidPricePerGpuHour: "0.05" });
    expect(low).toMatchObject({ __typename: "BidTooLowError", code: "BID_TOO_LOW", minBidPerGpuHour: "0.10" });
    const bid = await create(machineId, 1, { bidPricePerGpuHour: "0.15" });
    expect(bid.instance).toMatchObject({ kind: "INTERRUPTIBLE", bidPerGpuHour: "0.15", status: "SCHEDULING" });
    expect(await prisma.instance.count({ where: { machineId } })).toBe(1);
  });

  it("refuses on-demand rentals beyond the GPUs free of other on-demand contracts", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    expect((await create(machineId, 2)).__typename).toBe("CreateInstancePayload");
    // Bids never reduce what on demand can take.
    expect((await create(machineId, 2, { bidPricePerGpuHour: "0.30" })).__typename).toBe("CreateInstancePayload");
    expect(await create(machineId, 4)).toMatchObject({ __typename: "InsufficientGpusError", requested: 4, available: 2 });
    expect((await create(machineId, 2)).__typename).toBe("CreateInstancePayload");
    expect(await create(machineId, 1)).toMatchObject({ __typename: "InsufficientGpusError", available: 0 });
  });

  it("refuses offers that are gone or not rentable", async () => {
    const machineId = await createListedMachine(host.userId);
    expect(await create(machineId, 3)).toMatchObject({ __typename: "OfferUnavailableError", code: "OFFER_UNAVAILABLE" });
    expect(await create(999_999, 1)).toMatchObject({ __typename: "OfferUnavailableError" });
    await prisma.machine.update({ where: { id: machineId }, data: { online: false } });
    expect(await create(machineId, 1)).toMatchObject({ __typename: "OfferUnavailableError", message: expect.stringContaining("offline") });
    await prisma.machine.update({ where: { id: machineId }, data: { online: true } });
    await unlistMachine(host.userId, machineId);
    expect(await create(machineId, 1)).toMatchObject({ __typename: "OfferUnavailableError", message: expect.stringContaining("not listed") });
    expect(await prisma.instance.count({ where: { machineId } })).toBe(0);
  });

  it.each([
    [{ image: "Not An Image!" }, ["image"]],
    [{ onstart: "x".repeat(4049) }, ["onstart"]],
    [{ env: [{ key: "1BAD", value: "v" }] }, ["env", "0", "key"]],
    [{ env: [{ key: "A", value: "1" }, { key: "A", value: "2" }] }, ["env", "1", "key"]],
    [{ env: [{ key: "CONTAINER_API_KEY", value: "x" }] }, ["env", "0", "key"]],
    [{ ports: ["70000"] }, ["ports", "0"]],
    [{ ports: ["70000:70001"] }, ["ports", "0"]],
    [{ ports: ["65536:65536"] }, ["ports", "0"]],
    [{ ports: ["8081/sctp"] }, ["ports", "0"]],
    [{ diskGb: 0 }, ["diskGb"]],
    [{ launchMode: "SSH", offerId: "12" }, ["offerId"]],
  ])("refuses invalid input %j, naming the field, writing nothing", async (extra, path) => {
    const machineId = await createListedMachine(host.userId);
    const result = await create(machineId, 1, extra);
    expect(result.__typename).toBe("ValidationError");
    expect(result.issues.map((issue: { path: string[] }) => issue.path)).toContainEqual(path);
    expect(await prisma.instance.count({ where: { machineId } })).toBe(0);
  });

  it("accepts onstart of exactly 4,048 characters and identity ports", async () => {
    const machineId = await createListedMachine(host.userId);
    const created = await create(machineId, 1, { onstart: "x".repeat(4048), ports: ["99999:99999", "22"] });
    expect(created.__typename).toBe("CreateInstancePayload");
  });

  it("creates one instance for the same idempotency key, even when retried concurrently", async () => {
    const machineId = await createListedMachine(host.userId);
    const key = "retry-7f3a";
    const results = await Promise.all(Array.from({ length: 5 }, () => create(machineId, 1, { idempotencyKey: key })));
    expect(new Set(results.map((r) => r.instance.id)).size).toBe(1);
    expect(results.filter((r) => r.apiKey !== null)).toHaveLength(1);
    expect(await prisma.instance.count({ where: { machineId } })).toBe(1);
    // Another account's same key is its own.
    const theirs = await create(machineId, 1, { idempotencyKey: key }, other.key);
    expect(theirs.instance.id).not.toBe(results[0].instance.id);
  });
});

describe("lifecycle", () => {
  it("stops, restarts through SCHEDULING while its GPUs are taken, then runs", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const first = await create(machineId, 2);
    await clearMachineNow(machineId);
    expect(unwrap((await app.gql(LIFECYCLE("stopInstance"), { id: first.instance.id }, client.key)).data.stopInstance)).toMatchObject({
      status: "STOPPED",
      intendedStatus: "STOPPED",
    });
    // Its GPUs go to another on-demand rental meanwhile.
    const second = await create(machineId, 2, {}, other.key);
    await clearMachineNow(machineId);
    const restarted = unwrap((await app.gql(LIFECYCLE("startInstance"), { id: first.instance.id }, client.key)).data.startInstance);
    expect(restarted).toMatchObject({ status: "SCHEDULING", intendedStatus: "RUNNING" });
    await clearMachineNow(machineId);
    expect(await statusOf(first.instance.id)).toBe("SCHEDULING");
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: localId(first.instance.id) } })).statusMessage).toMatch(/waiting for GPUs/);
    await expectAllocationValid(machineId);

    await app.gql(LIFECYCLE("destroyInstance"), { id: second.instance.id }, other.key);
    await clearMachineNow(machineId);
    expect(await statusOf(first.instance.id)).toBe("LOADING");
    // The agent's report is the only way to RUNNING.
    await reportInstanceState(machineId, { instanceId: localId(first.instance.id), status: "RUNNING" });
    expect(await statusOf(first.instance.id)).toBe("RUNNING");
    const history = await prisma.instanceStatusChange.findMany({ where: { instanceId: localId(first.instance.id) }, orderBy: { id: "asc" } });
    expect(history.map((h) => `${h.fromStatus}>${h.toStatus}`)).toEqual([
      "null>SCHEDULING",
      "SCHEDULING>LOADING",
      "LOADING>STOPPED",
      "STOPPED>SCHEDULING",
      "SCHEDULING>LOADING",
      "LOADING>RUNNING",
    ]);
    const { label, apiKey } = await issueContainerApiKey(machineId, localId(first.instance.id));
    expect(label).toBe(`C.${localId(first.instance.id)}`);
    expect(apiKey.token).toMatch(/^gmk_/);
  });

  it("refuses illegal transitions as data", async () => {
    const machineId = await createListedMachine(host.userId);
    const created = await create(machineId, 1);
    await app.gql(LIFECYCLE("destroyInstance"), { id: created.instance.id }, client.key);
    const again = unwrap((await app.gql(LIFECYCLE("startInstance"), { id: created.instance.id }, client.key)).data.startInstance);
    expect(again).toMatchObject({ __typename: "IllegalTransitionError", code: "ILLEGAL_TRANSITION", from: "DESTROYED", event: "START_REQUESTED" });
  });

  it("lets an instance key start, stop and destroy its own instance only", async () => {
    const machineId = await createListedMachine(host.userId);
    const mine = await create(machineId, 1);
    const sibling = await create(machineId, 1);
    const token = mine.apiKey.token;
    expect(unwrap((await app.gql(LIFECYCLE("stopInstance"), { id: sibling.instance.id }, token)).data.stopInstance).code).toBe("FORBIDDEN");
    expect(unwrap((await app.gql(LIFECYCLE("stopInstance"), { id: mine.instance.id }, token)).data.stopInstance).status).toBe("STOPPED");
    expect(unwrap((await app.gql(LIFECYCLE("startInstance"), { id: mine.instance.id }, token)).data.startInstance).status).toBe("SCHEDULING");
    const denied = await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, token);
    expect(denied.data.createInstance.code).toBe("FORBIDDEN");
    const list = await app.gql(`{ instances { edges { node { id } } } }`, {}, token);
    expect(list.errors?.[0].extensions?.code).toBe("FORBIDDEN");
    expect(unwrap((await app.gql(LIFECYCLE("destroyInstance"), { id: mine.instance.id }, token)).data.destroyInstance).status).toBe("DESTROYED");
    // Destroying revoked the key.
    const after = await app.gql(LIFECYCLE("stopInstance"), { id: mine.instance.id }, token);
    expect(after.errors?.[0].extensions?.code ?? after.data?.stopInstance?.code).toBe("UNAUTHENTICATED");
    expect(await statusOf(sibling.instance.id)).toBe("SCHEDULING");
  });

  it("hides other accounts' instances: every mutation and query answers NOT_FOUND", async () => {
    const machineId = await createListedMachine(host.userId);
    const theirs = await create(machineId, 1, { bidPricePerGpuHour: "0.20" });
    for (const name of ["startInstance", "stopInstance", "destroyInstance"]) {
      expect((await app.gql(LIFECYCLE(name), { id: theirs.instance.id }, other.key)).data[name].code).toBe("NOT_FOUND");
    }
    const bid = await app.gql(`mutation ($id: ID!) { changeBid(instanceId: $id, pricePerGpuHour: "0.30") { __typename ... on Error { code } } }`, { id: theirs.instance.id }, other.key);
    expect(bid.data.changeBid.code).toBe("NOT_FOUND");
    const label = await app.gql(`mutation ($id: ID!) { labelInstance(id: $id, label: "x") { __typename ... on Error { code } } }`, { id: theirs.instance.id }, other.key);
    expect(label.data.labelInstance.code).toBe("NOT_FOUND");
    const one = await app.gql(`query ($id: ID!) { instance(id: $id) { id } }`, { id: theirs.instance.id }, other.key);
    expect(one.errors?.[0].extensions?.code).toBe("NOT_FOUND");
    const list = await app.gql(`{ instances { edges { node { id } } } }`, {}, other.key);
    expect(list.data.instances.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(theirs.instance.id);
    const extend = await app.gql(`mutation ($id: ID!) { extendMachineEndDate(machineId: $id, endDate: "${new Date(Date.now() + 60 * DAY).toISOString()}") { __typename ... on Error { code } } }`, { id: `Machine:${machineId}` }, client.key);
    expect(extend.data.extendMachineEndDate.code).toBe("NOT_FOUND");
    expect(await statusOf(theirs.instance.id)).toBe("SCHEDULING");
  });

  it("lists the caller's instances filtered by status and label, and labels them", async () => {
    const lister = await createAccount("lister");
    const machineId = await createListedMachine(host.userId);
    const a = await create(machineId, 1, { label: "exp-a" }, lister.key);
    const b = await create(machineId, 1, {}, lister.key);
    await app.gql(`mutation ($id: ID!) { labelInstance(id: $id, label: "exp-b") { __typename } }`, { id: b.instance.id }, lister.key);
    await app.gql(LIFECYCLE("stopInstance"), { id: a.instance.id }, lister.key);
    const query = `query ($status: [InstanceStatus!], $label: String) { instances(status: $status, label: $label, first: 10) { edges { node { id label status } } } }`;
    const ids = async (vars: Record<string, unknown>) =>
      (await app.gql(query, vars, lister.key)).data.instances.edges.map((e: { node: { id: string } }) => e.node.id);
    expect(await ids({})).toEqual([b.instance.id, a.instance.id]);
    expect(await ids({ status: ["STOPPED"] })).toEqual([a.instance.id]);
    expect(await ids({ label: "exp-b" })).toEqual([b.instance.id]);
    expect(await ids({ status: ["SCHEDULING"], label: "exp-a" })).toEqual([]);
    const one = await app.gql(`query ($id: ID!) { instance(id: $id) { label statusHistory { from to event } } }`, { id: a.instance.id }, lister.key);
    expect(one.data.instance).toEqual({
      label: "exp-a",
      statusHistory: [
        { from: null, to: "SCHEDULING", event: "CREATED" },
        { from: "SCHEDULING", to: "STOPPED", event: "STOP_REQUESTED" },
      ],
    });
  });
});

describe("bids and the auction", () => {
  it("runs the highest bids, pauses the rest with the price to win, and on-demand preempts with a grace period", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const low = await create(machineId, 2, { bidPricePerGpuHour: "0.20" });
    const high = await create(machineId, 2, { bidPricePerGpuHour: "0.30" });
    await clearMachineNow(machineId);
    expect([await statusOf(low.instance.id), await statusOf(high.instance.id)]).toEqual(["LOADING", "LOADING"]);
    const top = await create(machineId, 2, { bidPricePerGpuHour: "0.25" }, other.key);
    await clearMachineNow(machineId);
    const lowRow = await prisma.instance.findUniqueOrThrow({ where: { id: localId(low.instance.id) } });
    expect(lowRow).toMatchObject({ status: "PAUSED", statusMessage: "outbid: $0.250001/GPU/hr needed", preemptGraceSeconds: 5 });
    expect(await statusOf(top.instance.id)).toBe("LOADING");
    // The offers show what it takes to run now.
    const offer2 = await prisma.offer.findUniqueOrThrow({ where: { id: `${machineId}-2` } });
    expect(offer2).toMatchObject({ gpusFreeOfOnDemand: 4, winningBidMicros: 250_001n });
    const searched = await app.gql(`{ offers(query: "machine_id=${machineId} num_gpus=2 rentable=any", first: 1) { edges { node { gpusFreeOfOnDemand winningBid } } } }`);
    expect(searched.data.offers.edges).toEqual([{ node: { gpusFreeOfOnDemand: 4, winningBid: "0.250001" } }]);

    // Raising the bid wins the GPUs back.
    const raise = await app.gql(`mutation ($id: ID!) { changeBid(instanceId: $id, pricePerGpuHour: "0.35") { __typename ... on MutationChangeBidSuccess { data { bidPerGpuHour } } } }`, { id: low.instance.id }, client.key);
    expect(unwrap(raise.data.changeBid).bidPerGpuHour).toBe("0.35");
    await clearMachineNow(machineId);
    expect(await statusOf(low.instance.id)).toBe("LOADING");
    expect(await statusOf(top.instance.id)).toBe("PAUSED");

    // On-demand takes GPUs from bids, never the other way round.
    await prisma.machine.update({ where: { id: machineId }, data: { preemptGraceSeconds: 30 } });
    await create(machineId, 4, {}, other.key);
    await clearMachineNow(machineId);
    const paused = await prisma.instance.findMany({ where: { machineId, kind: "INTERRUPTIBLE" } });
    expect(paused.map((i) => i.status)).toEqual(["PAUSED", "PAUSED", "PAUSED"]);
    expect(paused.find((i) => i.id === localId(low.instance.id))).toMatchObject({ statusMessage: expect.stringMatching(/preempted by on-demand/), preemptGraceSeconds: 30 });
    await expectAllocationValid(machineId);
  });

  it("pauses bids under a raised min bid and refuses changeBid below it or on on-demand rentals", async () => {
    const machineId = await createListedMachine(host.userId);
    const bid = await create(machineId, 1, { bidPricePerGpuHour: "0.15" });
    const onDemand = await create(machineId, 1);
    await clearMachineNow(machineId);
    await setMinBid(host.userId, machineId, 200_000n);
    await clearMachineNow(machineId);
    expect(await prisma.instance.findUniqueOrThrow({ where: { id: localId(bid.instance.id) } })).toMatchObject({
      status: "PAUSED",
      statusMessage: "bid below the machine's minimum bid: $0.20/GPU/hr needed",
    });
    const change = `mutation ($id: ID!, $p: Money!) { changeBid(instanceId: $id, pricePerGpuHour: $p) { __typename ... on Error { code } } }`;
    expect((await app.gql(change, { id: bid.instance.id, p: "0.19" }, client.key)).data.changeBid.code).toBe("BID_TOO_LOW");
    expect((await app.gql(change, { id: onDemand.instance.id, p: "0.50" }, client.key)).data.changeBid.code).toBe("VALIDATION");
  });

  it("moves running instances back to SCHEDULING when the machine goes offline", async () => {
    const machineId = await createListedMachine(host.userId);
    const created = await create(machineId, 1);
    await clearMachineNow(machineId);
    await prisma.machine.update({ where: { id: machineId }, data: { online: false } });
    await clearMachineNow(machineId);
    expect(await prisma.instance.findUniqueOrThrow({ where: { id: localId(created.instance.id) } })).toMatchObject({ status: "SCHEDULING", statusMessage: expect.stringMatching(/offline/) });
    await prisma.machine.update({ where: { id: machineId }, data: { online: true } });
    await clearMachineNow(machineId);
    expect(await statusOf(created.instance.id)).toBe("LOADING");
  });
});

describe("lifetime", () => {
  it("ends contracts at their end date for good, set-based, and the host can extend them", async () => {
    const machineId = await createListedMachine(host.userId, { listing: { endDate: new Date(Date.now() + 2 * DAY) } });
    const a = await create(machineId, 1);
    const b = await create(machineId, 1, { bidPricePerGpuHour: "0.20" });
    const c = await create(machineId, 1);
    await clearMachineNow(machineId);
    await app.gql(LIFECYCLE("stopInstance"), { id: c.instance.id }, client.key);

    const newEnd = new Date(Date.now() + 10 * DAY);
    const extended = await app.gql(`mutation ($id: ID!, $end: DateTime!) { extendMachineEndDate(machineId: $id, endDate: $end) { __typename ... on MutationExtendMachineEndDateSuccess { data { endDate } } } }`, { id: `Machine:${machineId}`, end: newEnd.toISOString() }, host.key);
    expect(unwrap(extended.data.extendMachineEndDate).endDate).toBe(newEnd.toISOString());
    const ends = await prisma.instance.findMany({ where: { machineId }, select: { endDate: true } });
    expect(ends.every((i) => i.endDate.getTime() === newEnd.getTime())).toBe(true);
    const shorter = await app.gql(`mutation ($id: ID!, $end: DateTime!) { extendMachineEndDate(machineId: $id, endDate: $end) { __typename ... on Error { code } } }`, { id: `Machine:${machineId}`, end: new Date(Date.now() + DAY).toISOString() }, host.key);
    expect(shorter.data.extendMachineEndDate.code).toBe("VALIDATION");

    // Not yet due: nothing happens.
    expect(await expireInstances(new Date(Date.now() + 9 * DAY))).toBe(0);
    expect(await expireInstances(new Date(newEnd.getTime() + 1))).toBe(3);
    expect(await expireInstances(new Date(newEnd.getTime() + 2))).toBe(0);
    for (const created of [a, b, c]) expect(await statusOf(created.instance.id)).toBe("EXITED");
    const started = unwrap((await app.gql(LIFECYCLE("startInstance"), { id: a.instance.id }, client.key)).data.startInstance);
    expect(started).toMatchObject({ __typename: "IllegalTransitionError", from: "EXITED" });
    const history = await prisma.instanceStatusChange.findFirstOrThrow({ where: { instanceId: localId(a.instance.id), toStatus: "EXITED" } });
    expect(history).toMatchObject({ fromStatus: "LOADING", event: "EXPIRED" });
    // Extending later does not revive ended contracts.
    await prisma.$transaction((tx) => tx.machine.update({ where: { id: machineId }, data: { endDate: new Date(Date.now() + DAY) } }));
    await app.gql(`mutation ($id: ID!, $end: DateTime!) { extendMachineEndDate(machineId: $id, endDate: $end) { __typename } }`, { id: `Machine:${machineId}`, end: new Date(Date.now() + 20 * DAY).toISOString() }, host.key);
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: localId(a.instance.id) } })).endDate.getTime()).toBe(newEnd.getTime());
  });
});
