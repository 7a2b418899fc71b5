import { type ExecutionResult, buildSchema, execute, parse } from "graphql";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { beforeAll, describe, expect, it } from "vitest";
import { executeCompiled } from "../api/jit.ts";
import { config } from "../infra/config.ts";
import { issueApiKey } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";
import { wsUrl } from "./support/ws.ts";

/** What a client can send that is not a valid value: always a typed error, never INTERNAL_SERVER_ERROR, nothing written. */
const app = useTestApp();

let client: { userId: number; key: string };
let machineId: number;
beforeAll(async () => {
  client = await createAccount("edge");
  const host = await createAccount("host");
  machineId = await createListedMachine(host.userId);
});

const codes = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.map((error) => error.extensions?.code);

describe("scalars sent as variables", () => {
  it("refuses bad Money and DateTime values with BAD_USER_INPUT, as inline values are refused by validation", async () => {
    for (const amount of ["1e5", "NaN", "+5", "", "1.0000001", true]) {
      const response = await app.gql(`mutation ($a: Money!) { changeBid(instanceId: "Instance:1", pricePerGpuHour: $a) { __typename } }`, { a: amount }, client.key);
      expect(codes(response), JSON.stringify(amount)).toEqual(["BAD_USER_INPUT"]);
      expect(response.errors![0]!.message).toContain("$a");
    }
    const inline = await app.gql(`mutation { changeBid(instanceId: "Instance:1", pricePerGpuHour: "1e5") { __typename } }`, {}, client.key);
    expect(codes(inline)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    for (const date of ["not-a-date", "", 5]) {
      const response = await app.gql(
        `mutation ($d: DateTime!) { extendMachineEndDate(machineId: "Machine:${machineId}", endDate: $d) { __typename } }`,
        { d: date },
        client.key,
      );
      expect(codes(response), JSON.stringify(date)).toEqual(["BAD_USER_INPUT"]);
    }
    // Plain graphql-js refusals carry the code too.
    const int = await app.gql(`query ($f: Int) { offers(first: $f) { edges { cursor } } }`, { f: "x" });
    expect(codes(int)).toEqual(["BAD_USER_INPUT"]);
  });
});

describe("text PostgreSQL cannot store", () => {
  it("is refused once at the edge, inline or in variables, in any argument, and nothing is written", async () => {
    const before = await databaseSnapshot();
    for (const bad of ["a\u0000b", "\ud800", "x\udc00", "\udc00\ud800"]) {
      const viaVariables = await app.gql(
        `query ($g: String!) { priceHistory(gpuName: $g, from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z") { __typename } }`,
        { g: bad },
        client.key,
      );
      expect(codes(viaVariables)).toEqual(["BAD_USER_INPUT"]);
      const nested = await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1, { env: [{ key: "A", value: bad }] }) }, client.key);
      expect(codes(nested)).toEqual(["BAD_USER_INPUT"]);
      // A lone surrogate escape does not even parse; a NUL escape does, and is refused by validation.
      const inline = await app.gql(`mutation { createApiKey(name: ${JSON.stringify(bad)}) { __typename } }`, {}, client.key);
      expect(codes(inline)).toEqual([bad.includes("\u0000") ? "BAD_USER_INPUT" : "GRAPHQL_PARSE_FAILED"]);
    }
    expect(await databaseSnapshot()).toBe(before);
    // Paired surrogates (an emoji) are text like any other.
    const emoji = await app.gql(`mutation { createApiKey(name: "laptop 😀") { __typename } }`, {}, client.key);
    expect(emoji.data.createApiKey.__typename).toBe("MutationCreateApiKeySuccess");
  });
});

const OFFERS = `query ($after: String, $orderBy: [OfferOrder!]) { offers(after: $after, orderBy: $orderBy) { edges { cursor } } }`;
const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("offer cursors", () => {
  it("are checked before they reach SQL: a crafted key is a VALIDATION error naming `after`", async () => {
    const page = await app.gql(OFFERS, {});
    const issued = JSON.parse(Buffer.from(page.data.offers.edges[0].cursor, "base64url").toString());
    // The issued cursor works.
    expect(codes(await app.gql(OFFERS, { after: page.data.offers.edges[0].cursor }))).toBeUndefined();
    const crafted = [
      { ...issued, k: issued.k.map(() => "abc") },
      { ...issued, k: issued.k.map(() => "1e999") },
      { ...issued, k: issued.k.map(() => "NaN") },
      { ...issued, id: "x'; --" },
    ];
    for (const value of crafted) {
      const response = await app.gql(OFFERS, { after: cursor(value) });
      expect(codes(response), JSON.stringify(value)).toEqual(["VALIDATION"]);
      expect(response.errors![0]!.message).toContain("after");
    }
    for (const [field, key] of [["NUM_GPUS", "99999999999"], ["NUM_GPUS", "1.5"], ["DURATION", "not-a-date"], ["DPH_TOTAL", "99999999999999999999"], ["RELIABILITY", "1e999"]]) {
      const orderBy = [{ field, direction: "ASC" }];
      const first = await app.gql(OFFERS, { orderBy });
      const made = JSON.parse(Buffer.from(first.data.offers.edges[0].cursor, "base64url").toString());
      const response = await app.gql(OFFERS, { orderBy, after: cursor({ ...made, k: [key] }) });
      expect(codes(response), `${field} ${key}`).toEqual(["VALIDATION"]);
    }
  });
});

describe("ids past their column's range", () => {
  it("are typed errors", async () => {
    const before = await databaseSnapshot();
    for (const offerId of ["9999999999-1", "Offer:4294967296-1", "2147483648-1"]) {
      const response = await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1, { offerId }) }, client.key);
      expect(unwrap(response.data.createInstance).__typename, offerId).toBe("ValidationError");
    }
    for (const id of ["Instance:99999999999", "Instance:2147483648", "Instance:99999999999999999999"]) {
      const response = await app.gql(`query ($id: ID!) { instance(id: $id) { id } }`, { id }, client.key);
      expect(codes(response), id).toEqual(["VALIDATION"]);
    }
    expect(await databaseSnapshot()).toBe(before);
  });
});

describe("limits", () => {
  it("carry codes, and a cost refusal is not called a syntax error", async () => {
    const aliases = await app.gql(`query { ${Array.from({ length: 40 }, (_, i) => `a${i}: offers { pageInfo { hasNextPage } }`).join(" ")} }`);
    expect(codes(aliases)).toEqual(["QUERY_LIMIT_EXCEEDED"]);
    const deep = `query { offers(first: 100) { edges { node { id } } } ${Array.from({ length: 30 }, (_, i) => `o${i}: offers(first: 100) { edges { node { id gpuName numGpus } } }`).join(" ")} }`;
    const cost = await app.gql(deep);
    expect(codes(cost)).toContain("QUERY_LIMIT_EXCEEDED");
    expect(cost.errors!.every((error) => !error.message.startsWith("Syntax Error"))).toBe(true);
    const tokens = await app.gql(`query { ${"__typename ".repeat(6000)} }`);
    expect(codes(tokens)).toEqual(["QUERY_LIMIT_EXCEEDED"]);
  });
});

/** A graphql-transport-ws connection spoken by hand, to send what a well-behaved client would not. */
async function rawConnection(key: string): Promise<{ socket: WebSocket; messages: any[]; closed: Promise<number>; waitFor(check: (message: any) => boolean): Promise<any> }> {
  const socket = new WebSocket(wsUrl(app.url), "graphql-transport-ws");
  const messages: any[] = [];
  const waiters = new Set<() => void>();
  socket.on("message", (data) => {
    messages.push(JSON.parse(data.toString()));
    for (const waiter of waiters) waiter();
  });
  const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
  const waitFor = (check: (message: any) => boolean) =>
    new Promise<any>((resolve, reject) => {
      const waiter = () => {
        const found = messages.find(check);
        if (found) {
          waiters.delete(waiter);
          resolve(found);
        }
      };
      waiters.add(waiter);
      void closed.then((code) => reject(new Error(`closed ${code}; got ${JSON.stringify(messages)}`)));
      waiter();
    });
  await new Promise((resolve) => socket.once("open", resolve));
  socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${key}` } }));
  await waitFor((message) => message.type === "connection_ack");
  return { socket, messages, closed, waitFor };
}

describe("WebSocket operations", () => {
  it("a malformed or refused subscription gets its own error; the connection and its other subscriptions go on", async () => {
    const connection = await rawConnection(client.key);
    const subscribe = (id: string, query: string) => connection.socket.send(JSON.stringify({ id, type: "subscribe", payload: { query } }));
    subscribe("good", "subscription { balance { balance } }");
    await connection.waitFor((message) => message.id === "good" && message.type === "next");
    subscribe("broken", "subscription { balance { ");
    const broken = await connection.waitFor((message) => message.id === "broken");
    expect(broken.type).toBe("error");
    expect(broken.payload[0].extensions.code).toBe("GRAPHQL_PARSE_FAILED");
    subscribe("invalid", "subscription { nope }");
    expect((await connection.waitFor((message) => message.id === "invalid")).payload[0].extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
    subscribe("nul", "subscription { balance { balance } } # \u0000");
    expect((await connection.waitFor((message) => message.id === "nul")).payload[0].extensions.code).toBe("BAD_USER_INPUT");
    // Still open, and the first subscription still gets events.
    const seen = connection.messages.filter((message) => message.id === "good").length;
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: { increment: 1n } } });
    const { publish } = await import("../infra/pubsub.ts");
    publish("balance", client.userId, { immediate: true });
    await connection.waitFor((message) => message.id === "good" && connection.messages.filter((m) => m.id === "good").indexOf(message) >= seen);
    connection.socket.close();
  });

  it("caps live operations per connection and connections per key, and refuses oversized messages", async () => {
    const { WS_MAX_OPERATIONS_PER_CONNECTION, WS_MAX_CONNECTIONS_PER_KEY, WS_MAX_PAYLOAD_BYTES } = config();
    const { key } = await createAccount("flood");
    const connection = await rawConnection(key);
    for (let i = 0; i <= WS_MAX_OPERATIONS_PER_CONNECTION; i++) {
      connection.socket.send(JSON.stringify({ id: `s${i}`, type: "subscribe", payload: { query: "subscription { balance { balance } }" } }));
    }
    const refused = await connection.waitFor((message) => message.type === "error");
    expect(refused.payload[0].extensions.code).toBe("RATE_LIMITED");
    expect(connection.messages.filter((message) => message.type === "error")).toHaveLength(1);

    const others = [];
    for (let i = 1; i < WS_MAX_CONNECTIONS_PER_KEY; i++) others.push(await rawConnection(key));
    const socket = new WebSocket(wsUrl(app.url), "graphql-transport-ws");
    socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${key}` } })));
    expect(await new Promise((resolve) => socket.once("close", resolve))).toBe(4403);
    for (const other of others) other.socket.close();

    const big = await rawConnection(client.key);
    big.socket.send(JSON.stringify({ id: "big", type: "subscribe", payload: { query: `subscription { balance { balance } } #${"x".repeat(WS_MAX_PAYLOAD_BYTES)}` } }));
    expect(await big.closed).toBe(1009);
    connection.socket.close();
  });
});

describe("input defaults under compiled execution", () => {
  it("a defaulted argument left out takes its default, as graphql-js does", async () => {
    const to = new Date();
    const from = new Date(to.getTime() - 2 * 86_400_000);
    const response = await app.gql(
      `query ($g: String!, $from: DateTime!, $to: DateTime!) { priceHistory(gpuName: $g, from: $from, to: $to) { __typename } }`,
      { g: "RTX 4090", from: from.toISOString(), to: to.toISOString() },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data.priceHistory).toEqual(expect.any(Array));
  });

  it("every operation's arguments reach the resolver the same through graphql-js and the compiled path", async () => {
    // The printed schema without resolvers: each root field records the arguments it was given.
    const sdl = buildSchema(readFileSync(new URL("../schema.graphql", import.meta.url), "utf8"));
    let compared = 0;
    for (const root of [sdl.getQueryType()!, sdl.getMutationType()!]) {
      const kind = root === sdl.getQueryType() ? "query" : "mutation";
      for (const field of Object.values(root.getFields())) {
        if (field.args.length === 0) continue;
        const definitions = field.args.map((arg) => `$${arg.name}: ${arg.type}`).join(", ");
        const document = parse(`${kind} Op(${definitions}) { ${field.name}(${field.args.map((arg) => `${arg.name}: $${arg.name}`).join(", ")}) { __typename } }`);
        const variables = Object.fromEntries(field.args.filter((arg) => String(arg.type).endsWith("!")).map((arg) => [arg.name, minimalValue(arg.type)]));
        const seen: Record<string, unknown>[] = [];
        field.resolve = (_root, args) => void seen.push(JSON.parse(JSON.stringify(args)));
        const reference = (await execute({ schema: sdl, document, variableValues: variables })) as ExecutionResult;
        const compiledResult = await executeCompiled({ schema: sdl, document, variableValues: variables });
        expect(compiledResult, field.name).not.toBeNull();
        expect(seen, `${field.name}: ${JSON.stringify(reference.errors ?? [])} / ${JSON.stringify(compiledResult!.errors ?? [])}`).toHaveLength(2);
        expect(seen[1], field.name).toEqual(seen[0]);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(30);
  });
});

/** The smallest value the type accepts: required input fields only, so that every default is left to the executor. */
function minimalValue(type: any): unknown {
  if (type.ofType && String(type).endsWith("!")) return minimalValue(type.ofType);
  if (type.ofType) return [minimalValue(type.ofType)];
  if (type.getValues) return type.getValues()[0].name;
  if (type.getFields) {
    return Object.fromEntries(
      Object.values(type.getFields() as Record<string, { name: string; type: any }>)
        .filter((field) => String(field.type).endsWith("!"))
        .map((field) => [field.name, minimalValue(field.type)]),
    );
  }
  return { Int: 1, Float: 1.5, Boolean: true, DateTime: "2030-01-01T00:00:00Z", Money: "1.00" }[type.name as string] ?? "x";
}

describe("launch specs the runtime cannot carry", () => {
  it("image references that read as options and env values with line breaks are refused", async () => {
    const before = await databaseSnapshot();
    for (const image of ["--privileged/ubuntu", "-vdata:1/x", "-", "a/-b"]) {
      const result = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1, { image }) }, client.key)).data.createInstance);
      expect(result.__typename, image).toBe("ValidationError");
      expect(result.issues.map((issue: { path: string[] }) => issue.path.join("."))).toContain("image");
    }
    for (const value of ["a\nb", "a\rb"]) {
      const result = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1, { env: [{ key: "A", value }] }) }, client.key)).data.createInstance);
      expect(result.__typename).toBe("ValidationError");
      expect(result.issues.map((issue: { path: string[] }) => issue.path.join("."))).toContain("env.0.value");
    }
    expect(await databaseSnapshot()).toBe(before);
  });

  it("a launch that fails on a client's stored spec the runtime cannot carry is not held against the host", async () => {
    const host = await createAccount("reliable-host");
    const machine = await createListedMachine(host.userId);
    const agentKey = (await issueApiKey(prisma, { userId: host.userId, name: "agent", scope: "MACHINE", machineId: machine })).token;
    await prisma.user.update({ where: { id: client.userId }, data: { balanceMicros: 100_000_000n } });
    const create = async () => {
      const id: string = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machine, 1) }, client.key)).data.createInstance).instance.id;
      // As the clearing leaves it, for the agent to launch.
      await prisma.instance.update({ where: { id: Number(id.split(":")[1]) }, data: { status: "LOADING" } });
      return id;
    };
    const report = async (instanceId: string) =>
      (await app.gql(`mutation ($id: ID!) { reportInstanceState(instanceId: $id, status: FAILED, message: "docker create failed") { __typename } }`, { id: instanceId }, agentKey))
        .data.reportInstanceState.__typename;
    const reliability = async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machine } })).reliability;

    // Stored before env values were checked.
    const clientsFault = await create();
    await prisma.instance.update({ where: { id: Number(clientsFault.split(":")[1]) }, data: { env: [{ key: "A", value: "x\ny" }] } });
    const before = await reliability();
    expect(await report(clientsFault)).toBe("MutationReportInstanceStateSuccess");
    expect(await reliability()).toBe(before);

    // The same failure of a valid spec is the host's.
    const hostsFault = await create();
    expect(await report(hostsFault)).toBe("MutationReportInstanceStateSuccess");
    expect(await reliability()).toBeLessThan(before);
  });
});
