import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { clearMachineNow } from "../domain/auction/service.ts";
import { prisma } from "../infra/db.ts";
import { eventually } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import {
  CREATE_INSTANCE,
  createAccount,
  createListedMachine,
  expectAllocationValid,
  expectGpuIndicesValid,
  instanceInput,
  unwrap,
} from "./support/rentals.ts";

const app = useTestApp();

const CLIENTS = 50;
let host: { userId: number; key: string };
let clients: { userId: number; key: string }[];

beforeAll(async () => {
  host = await createAccount("host");
  clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => createAccount(`racer${i}`)));
});

async function race(machineId: number, numGpus: number) {
  const results = await Promise.all(
    clients.map(async (client) => unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus) }, client.key)).data.createInstance)),
  );
  return {
    won: results.filter((r) => r.__typename === "CreateInstancePayload"),
    lost: results.filter((r) => r.__typename !== "CreateInstancePayload"),
  };
}

describe("50 clients racing for the last GPUs of a machine", () => {
  it("admits exactly as many on-demand rentals as fit and double-books nothing", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const first = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 4) }, host.key)).data.createInstance);
    expect(first.__typename).toBe("CreateInstancePayload");

    // 4 GPUs left, 50 clients each want 1: exactly 4 win.
    const { won, lost } = await race(machineId, 1);
    expect(won).toHaveLength(4);
    expect(lost).toHaveLength(CLIENTS - 4);
    expect(lost.every((r) => r.__typename === "InsufficientGpusError" && r.available === 0)).toBe(true);

    const rows = await prisma.instance.findMany({ where: { machineId } });
    expect(rows.reduce((sum, i) => sum + i.numGpus, 0)).toBe(8);
    await clearMachineNow(machineId);
    expect((await prisma.instance.findMany({ where: { machineId } })).every((i) => i.status === "LOADING")).toBe(true);
    await expectAllocationValid(machineId);
    expect(await prisma.offer.count({ where: { machineId, rentable: true } })).toBe(0);
  });

  it("admits 2-GPU chunks until the 8 GPUs are taken, while bids placed alongside never count", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const [onDemand, bids] = await Promise.all([
      race(machineId, 2),
      Promise.all(
        clients.slice(0, 10).map(async (client, i) =>
          unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 2, { bidPricePerGpuHour: `0.${20 + i}` }) }, client.key)).data.createInstance),
        ),
      ),
    ]);
    expect(onDemand.won).toHaveLength(4);
    expect(bids.every((r) => r.__typename === "CreateInstancePayload")).toBe(true);
    await clearMachineNow(machineId);
    const rows = await prisma.instance.findMany({ where: { machineId } });
    expect(rows.filter((i) => i.status === "LOADING").every((i) => i.kind === "ON_DEMAND")).toBe(true);
    expect(rows.filter((i) => i.kind === "INTERRUPTIBLE").every((i) => i.status === "PAUSED")).toBe(true);
    await expectAllocationValid(machineId);
  });
});

describe("50 clients racing for the disk of a machine", () => {
  it("reserves no more than the machine's disk: the others are told it is all taken", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    // 2,000 GB: exactly 20 bids of 100 GB fit (bids take no GPUs until cleared, so only the disk binds).
    const results = await Promise.all(
      clients.map(async (client, i) =>
        unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1, { diskGb: 100, bidPricePerGpuHour: `0.${10 + i}` }) }, client.key)).data.createInstance),
      ),
    );
    expect(results.filter((r) => r.__typename === "CreateInstancePayload")).toHaveLength(20);
    const refused = results.filter((r) => r.__typename !== "CreateInstancePayload");
    expect(refused).toHaveLength(CLIENTS - 20);
    expect(refused.every((r) => r.__typename === "InsufficientDiskError" && r.requestedGb === 100 && r.availableGb === 0)).toBe(true);
    await clearMachineNow(machineId);
    await expectAllocationValid(machineId);
  });
});

describe("a rental admitted while a maintenance window is being scheduled", () => {
  it("ends by the window, which its locking statement began too early to see", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const startsAt = new Date(Date.now() + 2 * 86_400_000);
    // The scheduler's transaction, held open with the machine locked and the window written.
    const scheduler = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await scheduler.connect();
    try {
      await scheduler.query("BEGIN");
      await scheduler.query("SELECT id FROM machine WHERE id = $1 FOR UPDATE", [machineId]);
      const renting = app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, clients[0].key);
      // The rental's locking statement has begun and waits for the machine.
      await eventually(async () => {
        const { rows } = await scheduler.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()");
        return rows.length > 0;
      });
      await scheduler.query("INSERT INTO maintenance_window (machine_id, starts_at, ends_at) VALUES ($1, $2, $3)", [
        machineId,
        startsAt,
        new Date(startsAt.getTime() + 3_600_000),
      ]);
      await scheduler.query("COMMIT");
      const created = unwrap((await renting).data.createInstance);
      expect(created.__typename).toBe("CreateInstancePayload");
      const instance = await prisma.instance.findUniqueOrThrow({ where: { id: Number(created.instance.id.split(":")[1]) } });
      expect(instance.endDate.getTime()).toBeLessThanOrEqual(startsAt.getTime());
    } finally {
      await scheduler.end();
    }
  });
});

describe("one account racing itself past its spend limit", () => {
  it("admits rentals on many machines at once only up to the limit", async () => {
    const client = await createAccount("hasty");
    await prisma.user.update({ where: { id: client.userId }, data: { emailVerified: false } });
    const machineIds = await Promise.all(Array.from({ length: 4 }, () => createListedMachine(host.userId, { numGpus: 8 })));
    // $5/hr for a new account; a GPU at $0.40 with 20 GB at $0.10/GB-month is $0.402777/hr: 12 fit.
    // Several keys of the account: one key may run only a few operations at once.
    const keys = await Promise.all(Array.from({ length: 6 }, async () => (await issueApiKey(prisma, { userId: client.userId, name: "racer", scope: "ACCOUNT" })).token));
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, i) =>
        unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineIds[i % 4]!, 1) }, keys[i % 6])).data.createInstance),
      ),
    );
    expect(results.filter((r) => r.__typename === "CreateInstancePayload")).toHaveLength(12);
    expect(results.filter((r) => r.__typename !== "CreateInstancePayload").every((r) => r.code === "SPEND_RATE_LIMIT")).toBe(true);
    const spend = await app.gql("{ spendLimit { tier limitPerHour currentPerHour } }", {}, client.key);
    expect(spend.data.spendLimit).toEqual({ tier: "NEW", limitPerHour: "5.00", currentPerHour: "4.833324" });
  });
});

const LIFECYCLE = (name: string) => /* GraphQL */ `
  mutation ($id: ID!) { ${name}(id: $id) { __typename } }
`;
const CHANGE_BID = /* GraphQL */ `
  mutation ($id: ID!, $price: Money!) { changeBid(instanceId: $id, pricePerGpuHour: $price) { __typename } }
`;
type Holder = { id: string; machineId: string; numGpus: number; status: string; gpuIndices: number[] };
const MY_INSTANCES = /* GraphQL */ `
  query { instances(first: 100) { edges { node { id machineId numGpus status gpuIndices } } } }
`;

describe("50 clients racing for the GPUs of one machine", () => {
  it("never double-books a GPU index, through creation, bids, stops, starts and concurrent clearings", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const clearings = (n: number) => Promise.all(Array.from({ length: n }, () => clearMachineNow(machineId)));
    // Every client rents: a third on demand (1 GPU), the rest bid for 1 or 2 GPUs; clearings run meanwhile.
    const created = await Promise.all([
      ...clients.map(async (client, i) => {
        const input = i % 3 === 0 ? instanceInput(machineId, 1) : instanceInput(machineId, 1 + (i % 2), { bidPricePerGpuHour: `0.${10 + i}` });
        // Under load a request may time out waiting for the machine's lock: it then rents nothing.
        const result = unwrap((await app.gql(CREATE_INSTANCE, { input }, client.key)).data?.createInstance);
        return { client, id: result?.__typename === "CreateInstancePayload" ? (result.instance.id as string) : null };
      }),
      clearings(3).then(() => null),
    ]);
    const rentals = created.filter((r): r is { client: (typeof clients)[number]; id: string } => r !== null && r.id !== null);
    expect(rentals.length).toBeGreaterThan(CLIENTS / 2);
    await clearMachineNow(machineId);
    await expectAllocationValid(machineId);

    // Rounds of stops, starts and new bids, racing each other and the clearings.
    for (let round = 0; round < 4; round++) {
      await Promise.all([
        ...rentals.map(({ client, id }, i) => {
          const action = (i + round) % 4;
          if (action === 0) return app.gql(LIFECYCLE("stopInstance"), { id }, client.key);
          if (action === 1) return app.gql(LIFECYCLE("startInstance"), { id }, client.key);
          if (action === 2) return app.gql(CHANGE_BID, { id, price: `0.${60 + ((i * 7 + round * 13) % 39)}` }, client.key);
          return null;
        }),
        clearings(3),
      ]);
      await clearMachineNow(machineId);
      await expectAllocationValid(machineId);
    }

    // What each client sees through the API agrees: holders' indices are disjoint.
    const seen = await Promise.all(
      rentals.map(async ({ client }) => (await app.gql(MY_INSTANCES, {}, client.key)).data.instances.edges.map((e: { node: Holder }) => e.node) as Holder[]),
    );
    // (The clients rented on the other tests' machines too.)
    const here = seen.flat().filter((i) => i.machineId === `Machine:${machineId}`);
    const holders = here.filter((i) => i.status === "LOADING" || i.status === "RUNNING");
    expect(holders.length).toBeGreaterThan(0);
    expect(here.filter((i) => i.status !== "LOADING" && i.status !== "RUNNING").every((i) => i.gpuIndices.length === 0)).toBe(true);
    expectGpuIndicesValid(8, holders.map((i) => ({ id: Number(i.id.split(":")[1]), numGpus: i.numGpus, gpuIndices: i.gpuIndices })));
  });
});
