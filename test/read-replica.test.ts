import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../api/app.ts";
import { adminQuery, withDatabase } from "../infra/pg-admin.ts";
import { type ReplicatedPostgres, startReplicatedPostgres } from "./support/replica.ts";

// This file's database lives on a primary of its own with a streaming replica, both started here
// from the machine's PostgreSQL binaries; the app's modules are imported only once the environment
// names them (config() is read once per process).
const MAX_LAG_MS = 4000;

let pair: ReplicatedPostgres;
let app: App;
let url: string;
let replicaUrl: string;
let listMachine: () => Promise<unknown>;

beforeAll(async () => {
  pair = await startReplicatedPostgres();
  await adminQuery(pair.primary.url, "CREATE DATABASE app");
  const primaryUrl = withDatabase(pair.primary.url, "app");
  replicaUrl = withDatabase(pair.replica.url, "app");
  const { migrate } = await import("../infra/migrate.ts");
  await migrate(primaryUrl);
  process.env.DATABASE_URL = primaryUrl;
  process.env.DATABASE_REPLICA_URL = replicaUrl;
  process.env.REPLICA_MAX_LAG_MS = String(MAX_LAG_MS);
  const [{ buildApp }, { createAccount, createListedMachine }] = await Promise.all([import("../api/app.ts"), import("./support/rentals.ts")]);
  const host = await createAccount("host");
  listMachine = () => createListedMachine(host.userId, { numGpus: 1 });
  app = buildApp();
  url = await app.start(0);
}, 120_000);

afterAll(async () => {
  await app?.stop();
  const { closeReadReplica } = await import("../infra/replica.ts");
  await closeReadReplica();
  const { prisma, meteringPrisma } = await import("../infra/db.ts");
  await Promise.all([prisma.$disconnect(), meteringPrisma.$disconnect()]);
  await pair?.remove();
});

async function gql(query: string): Promise<any> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query }) });
  const body = (await response.json()) as { data?: any; errors?: unknown };
  expect(body.errors).toBeUndefined();
  return body.data;
}

/** How many machines the offers search returns have (rentable or not, verified or not). */
async function searchedMachines(): Promise<number> {
  const data = await gql("{ offers(first: 100, filter: { rentable: null, verified: null }) { edges { node { machineId } } } }");
  return new Set(data.offers.edges.map((edge: { node: { machineId: unknown } }) => String(edge.node.machineId))).size;
}

async function listedMachinesInStats(): Promise<number> {
  const data = await gql("{ marketStats { gpuName machines } }");
  return data.marketStats.find((stats: { gpuName: string }) => stats.gpuName === "RTX 4090")?.machines ?? 0;
}

async function replicaStatus(): Promise<{ inUse: boolean; lagMs: number | null }> {
  const response = await fetch(new URL("/healthz", url));
  expect(response.status).toBe(200);
  return ((await response.json()) as { replica: { inUse: boolean; lagMs: number | null } }).replica;
}

async function onReplica(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: replicaUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe("reads from a streaming replica", () => {
  it("serves search and market stats from the replica within the lag bound, from the primary beyond it", async () => {
    await listMachine();
    await expect.poll(replicaStatus, { timeout: 30_000 }).toMatchObject({ inUse: true });
    await expect.poll(searchedMachines, { timeout: 30_000 }).toBe(1);

    // The replica stops replaying: what the primary writes now is not on it.
    await onReplica("SELECT pg_wal_replay_pause()");
    await listMachine();
    expect(await searchedMachines()).toBe(1);
    expect(await listedMachinesInStats()).toBe(1);

    // Once it is further behind than the bound, the same reads come from the primary, without errors.
    await expect.poll(replicaStatus, { timeout: 30_000 }).toMatchObject({ inUse: false });
    expect(await searchedMachines()).toBe(2);
    expect(await listedMachinesInStats()).toBe(2);

    // Replaying again, it catches up and serves the reads again.
    await onReplica("SELECT pg_wal_replay_resume()");
    await expect.poll(replicaStatus, { timeout: 30_000 }).toMatchObject({ inUse: true });
    expect(await searchedMachines()).toBe(2);
  });

  it("a replica that goes away costs no request an error: reads go to the primary", async () => {
    await expect.poll(replicaStatus, { timeout: 30_000 }).toMatchObject({ inUse: true });
    await pair.replica.stop();
    await listMachine();
    // The first reads may still pick the replica (its last probe was fresh): they fail there and run on the primary.
    expect(await Promise.all(Array.from({ length: 5 }, () => searchedMachines()))).toEqual([3, 3, 3, 3, 3]);
    expect(await listedMachinesInStats()).toBe(3);
    expect(await replicaStatus()).toMatchObject({ inUse: false, lagMs: null });
  });
});
