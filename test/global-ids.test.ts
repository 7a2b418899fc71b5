import { getNamedType, getNullableType, GraphQLList, isInputObjectType, isObjectType, isInterfaceType, isScalarType } from "graphql";
import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { registerMachine } from "../domain/machines.ts";
import { prisma } from "../infra/db.ts";
import { schema } from "../schema/index.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const app = useTestApp();

let host: { userId: number; key: string };
let other: { userId: number; key: string };
let listedId: number;
let unlistedId: number;

beforeAll(async () => {
  host = await createAccount("host");
  other = await createAccount("other");
  listedId = await createListedMachine(host.userId, { numGpus: 4 });
  unlistedId = await createListedMachine(host.userId, { numGpus: 2 });
  await prisma.machine.update({ where: { id: unlistedId }, data: { listed: false, publicAddress: "203.0.113.9" } });
  await prisma.machine.update({ where: { id: listedId }, data: { publicAddress: "203.0.113.7" } });
  await prisma.offer.deleteMany({ where: { machineId: unlistedId } });
});

describe("the schema's ids", () => {
  it("has no plain Int ids: every field or argument named like an id is an ID", () => {
    const intIds: string[] = [];
    const isIdName = (name: string) => /(^id|Id|Ids)$/.test(name);
    const isInt = (type: unknown) => {
      const named = getNamedType(type as never);
      return isScalarType(named) && named.name === "Int";
    };
    for (const type of Object.values(schema.getTypeMap())) {
      if (type.name.startsWith("__")) continue;
      if (isObjectType(type) || isInterfaceType(type)) {
        for (const field of Object.values(type.getFields())) {
          if (isIdName(field.name) && isInt(field.type)) intIds.push(`${type.name}.${field.name}`);
          for (const arg of field.args) if (isIdName(arg.name) && isInt(arg.type)) intIds.push(`${type.name}.${field.name}(${arg.name})`);
        }
      }
      if (isInputObjectType(type)) {
        for (const field of Object.values(type.getFields())) if (isIdName(field.name) && isInt(field.type)) intIds.push(`${type.name}.${field.name}`);
      }
    }
    expect(intIds).toEqual([]);
    expect(getNullableType(schema.getQueryType()!.getFields().nodes.type)).toBeInstanceOf(GraphQLList);
  });
});

describe("offer(id) and offers", () => {
  it("an offer names its machine and host by global id; offer(id) finds it by either id form", async () => {
    const search = await app.gql(`{ offers(query: "machine_id=${listedId} num_gpus=4") { edges { node { id machineId hostId } } } }`);
    expect(search.errors).toBeUndefined();
    expect(search.data.offers.edges.map((e: any) => e.node)).toEqual([
      { id: `Offer:${listedId}-4`, machineId: `Machine:${listedId}`, hostId: `User:${host.userId}` },
    ]);
    for (const id of [`Offer:${listedId}-2`, `${listedId}-2`]) {
      const one = await app.gql(`query ($id: ID!) { offer(id: $id) { id numGpus machineId } }`, { id });
      expect(one).toEqual({ data: { offer: { id: `Offer:${listedId}-2`, numGpus: 2, machineId: `Machine:${listedId}` } } });
    }
  });

  it("a search's totalCount counts every matching offer, not just the page", async () => {
    const result = await app.gql(`{ offers(query: "machine_id=${listedId}", first: 1) { totalCount pageInfo { hasNextPage } nodes { id } } }`);
    expect(result.data.offers).toMatchObject({ totalCount: 3, pageInfo: { hasNextPage: true } });
    expect(result.data.offers.nodes).toHaveLength(1);
  });

  it("offer(id) is null for an unlisted machine's chunk, a chunk never offered, and a malformed id", async () => {
    for (const id of [`Offer:${unlistedId}-1`, `Offer:${listedId}-3`, "Offer:abc", "Machine:1"]) {
      const one = await app.gql(`query ($id: ID!) { offer(id: $id) { id } }`, { id });
      expect(one, id).toEqual({ data: { offer: null } });
    }
  });
});

describe("machine(id)", () => {
  const PUBLIC = `id gpuName numGpus gpuRamMb listed verification reliability pricePerGpuHour minBidPerGpuHour endDate orderBook { numGpus }`;

  it("shows a listed machine's public fields to anonymous callers and other accounts", async () => {
    for (const key of [undefined, other.key]) {
      const result = await app.gql(`query ($id: ID!) { machine(id: $id) { ${PUBLIC} } }`, { id: `Machine:${listedId}` }, key);
      expect(result.errors).toBeUndefined();
      expect(result.data.machine).toMatchObject({ id: `Machine:${listedId}`, gpuName: "RTX 4090", numGpus: 4, listed: true, pricePerGpuHour: "0.40" });
    }
  });

  it("refuses host-only fields of another host's machine, field by field", async () => {
    const result = await app.gql(`query ($id: ID!) { machine(id: $id) { gpuName publicAddress } }`, { id: `Machine:${listedId}` }, other.key);
    expect(result.data.machine).toEqual({ gpuName: "RTX 4090", publicAddress: null });
    expect(result.errors?.map((e) => [e.path?.join("."), e.extensions?.code])).toEqual([["machine.publicAddress", "FORBIDDEN"]]);
  });

  it("is null for another host's unlisted machine and for unknown ids; the host sees its own in full", async () => {
    const anonymous = await app.gql(`query ($id: ID!) { machine(id: $id) { gpuName } }`, { id: `Machine:${unlistedId}` });
    expect(anonymous).toEqual({ data: { machine: null } });
    const unknown = await app.gql(`{ machine(id: "Machine:2000000000") { gpuName } }`);
    expect(unknown).toEqual({ data: { machine: null } });
    const own = await app.gql(`query ($id: ID!) { machine(id: $id) { listed publicAddress createdAt } }`, { id: `Machine:${unlistedId}` }, host.key);
    expect(own.errors).toBeUndefined();
    expect(own.data.machine).toMatchObject({ listed: false, publicAddress: "203.0.113.9" });
  });

  it("takes only a Machine id", async () => {
    const wrong = await app.gql(`{ machine(id: "Instance:1") { gpuName } }`);
    expect(wrong.errors?.[0]?.extensions?.code).toBe("VALIDATION");
  });
});

describe("node(id) and nodes(ids)", () => {
  it("resolves public objects for anyone and the caller's own objects, and nothing of another account", async () => {
    const apiKey = await issueApiKey(prisma, { userId: host.userId, name: "second", scope: "ACCOUNT" });
    const { machine: own } = await registerMachine(other.userId, {
      gpuName: "RTX 4090", numGpus: 1, gpuRamMb: 24_000, computeCap: 890, tflopsPerGpu: 82, gpuMemBw: 1000, pcieGen: 4, pcieBw: 24,
      cpuName: "x", cpuCores: 8, cpuRamMb: 32_000, diskSpaceGb: 500, diskBw: 2000, inetUpMbps: 100, inetDownMbps: 100,
      cudaMaxGood: 12.4, driverVersion: "550.54.15", countryCode: "US", geolocation: "Ohio, US",
    });
    const query = `query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Machine { numGpus } ... on ApiKey { name } ... on Offer { numGpus } } }`;
    const ids = [`Machine:${listedId}`, `Offer:${listedId}-1`, `ApiKey:${apiKey.id}`, `Machine:${unlistedId}`, `Machine:${own.id}`, "User:" + host.userId, "Nothing:1", "Machine:x"];

    const asOther = await app.gql(query, { ids }, other.key);
    expect(asOther.errors).toBeUndefined();
    expect(asOther.data.nodes).toEqual([
      { __typename: "Machine", id: `Machine:${listedId}`, numGpus: 4 },
      { __typename: "Offer", id: `Offer:${listedId}-1`, numGpus: 1 },
      null,
      null,
      { __typename: "Machine", id: `Machine:${own.id}`, numGpus: 1 },
      null,
      null,
      null,
    ]);

    const asHost = await app.gql(query, { ids: ids.slice(0, 4) }, host.key);
    expect(asHost.data.nodes).toEqual([
      { __typename: "Machine", id: `Machine:${listedId}`, numGpus: 4 },
      { __typename: "Offer", id: `Offer:${listedId}-1`, numGpus: 1 },
      { __typename: "ApiKey", id: `ApiKey:${apiKey.id}`, name: "second" },
      { __typename: "Machine", id: `Machine:${unlistedId}`, numGpus: 2 },
    ]);

    const single = await app.gql(`query ($id: ID!) { node(id: $id) { id } }`, { id: `ApiKey:${apiKey.id}` }, other.key);
    expect(single).toEqual({ data: { node: null } });
  });

  it("refuses more than 100 ids", async () => {
    const ids = Array.from({ length: 101 }, (_, i) => `Machine:${i + 1}`);
    const result = await app.gql(`query ($ids: [ID!]!) { nodes(ids: $ids) { id } }`, { ids });
    expect(result.errors?.[0]?.message).toMatch(/at most 100/);
  });
});
