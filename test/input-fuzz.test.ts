import {
  type IntrospectionField,
  type IntrospectionInputTypeRef,
  type IntrospectionInputValue,
  type IntrospectionQuery,
  type IntrospectionType,
  getIntrospectionQuery,
} from "graphql";
import { type Client, createClient } from "graphql-ws";
import { beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { issueApiKey } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";
import { wsUrl } from "./support/ws.ts";

/**
 * Every argument of every query and mutation, found by introspection, sent bad values as variables
 * (what typed clients send): each answer is a typed error or data, never INTERNAL_SERVER_ERROR or
 * an HTTP 5xx, and the database is exactly as it was afterwards. Subscriptions get the same over
 * one graphql-ws connection per key, which stays open through all of it.
 */
const app = useTestApp();

/** Text no field can store, whatever it is for. */
const STRINGS = ["\u0000", "a\u0000b", "\ud800", "x\udc00y", "x".repeat(20_000)];
/** Values that are text but bad for what the argument or field of this name holds. */
const BY_NAME: Record<string, unknown[]> = {
  image: ["--privileged/ubuntu", "-vdata:1/x", "ubuntu --rm", "-"],
  rxBytes: ["99999999999999999999", "9223372036854775807", "-1", "1e5"],
  txBytes: ["99999999999999999999", "9223372036854775807", "-1", "1e5"],
  email: ["not-an-email", "a@b"],
};
const IDS = ["", "Machine:99999999999", "Instance:-1", "Offer:9999999999-1", "99999999999999999999-99", "ApiKey:2147483648", "\u0000", "\ud800", "Nope:1", ":"];
const BAD: Record<string, unknown[]> = {
  String: STRINGS,
  ID: IDS,
  Int: [2_147_483_647, -2_147_483_648, 0, -1],
  Float: [1e308, -1e308, 0, -1, 5e-324],
  Boolean: ["true", 1],
  Money: ["1e5", "NaN", "+5", "", "-0.000001", "999999999999.999999", "-999999999999.999999", 1e300, "0.0000001"],
  DateTime: ["not-a-date", "", "275760-09-13T00:00:00Z", "2026-02-30T00:00:00Z", 1e15],
};
const BASE: Record<string, unknown> = { String: "x", ID: "Thing:2000000000", Int: 1, Float: 1.5, Boolean: false, Money: "1.00", DateTime: "2030-01-01T00:00:00Z" };

let types: Map<string, IntrospectionType>;
let accountKey: string;
let machineKey: string;
let machineId: number;

function typeText(ref: IntrospectionInputTypeRef): string {
  if (ref.kind === "NON_NULL") return `${typeText(ref.ofType)}!`;
  if (ref.kind === "LIST") return `[${typeText(ref.ofType)}]`;
  return ref.name;
}

function named(ref: IntrospectionInputTypeRef): { name: string; list: boolean } {
  let list = false;
  let current = ref;
  while (current.kind === "NON_NULL" || current.kind === "LIST") {
    if (current.kind === "LIST") list = true;
    current = current.ofType;
  }
  return { name: current.name, list };
}

/** A plausible value of the type (required input fields only). */
function baseValue(ref: IntrospectionInputTypeRef, depth = 0): unknown {
  const { name, list } = named(ref);
  const type = types.get(name)!;
  let value: unknown;
  if (type.kind === "ENUM") value = type.enumValues[0]!.name;
  else if (type.kind === "INPUT_OBJECT") {
    const object: Record<string, unknown> = {};
    for (const field of type.inputFields) if (field.type.kind === "NON_NULL" && depth < 4) object[field.name] = baseValue(field.type, depth + 1);
    value = object;
  } else value = BASE[name] ?? "x";
  return list ? [value] : value;
}

/** Bad values of the type: its scalar's list, or for an input object each field's bad values in turn. */
function badValues(ref: IntrospectionInputTypeRef, name: string, depth = 0): unknown[] {
  const { name: typeName, list } = named(ref);
  const type = types.get(typeName)!;
  let values: unknown[];
  if (type.kind === "ENUM") values = ["NOT_A_VALUE", 1];
  else if (type.kind === "INPUT_OBJECT") {
    const base = baseValue(ref, depth) as Record<string, unknown>;
    const object = (Array.isArray(base) ? base[0] : base) as Record<string, unknown>;
    values = [{}, "x"];
    if (depth < 3) {
      for (const field of type.inputFields as readonly IntrospectionInputValue[]) {
        for (const bad of badValues(field.type, field.name, depth + 1)) values.push({ ...object, [field.name]: bad });
      }
    }
  } else values = [...(BAD[type.name] ?? STRINGS), ...(BY_NAME[name] ?? []), { not: "a scalar" }];
  return list ? [...values.map((value) => [value]), values.slice(0, 3)] : values;
}

function operationText(kind: "query" | "mutation" | "subscription", field: IntrospectionField): string {
  const definitions = field.args.map((arg) => `$${arg.name}: ${typeText(arg.type)}`).join(", ");
  const args = field.args.map((arg) => `${arg.name}: $${arg.name}`).join(", ");
  return `${kind} Fuzz${definitions ? `(${definitions})` : ""} { ${field.name}${args ? `(${args})` : ""} { __typename } }`;
}

beforeAll(async () => {
  const introspection = await app.gql<IntrospectionQuery>(getIntrospectionQuery());
  types = new Map(introspection.data!.__schema.types.map((type) => [type.name, type]));
  const account = await createAccount("fuzz");
  accountKey = account.key;
  machineId = await createListedMachine(account.userId);
  machineKey = (await issueApiKey(prisma, { userId: account.userId, name: "agent", scope: "MACHINE", machineId })).token;
});

describe("every argument of every operation with bad values", () => {
  for (const kind of ["query", "mutation"] as const) {
    it(`${kind}: typed errors only, nothing written`, async () => {
      const root = types.get(kind === "query" ? "Query" : "Mutation")!;
      if (root.kind !== "OBJECT") throw new Error("no root type");
      // Every call authenticates its key first, which stamps last_used_at (left out of the snapshot).
      const before = await databaseSnapshot();
      const failures: string[] = [];
      let sent = 0;
      const changedBy: string[] = [];
      const accepted: string[] = [];
      for (const field of root.fields) {
        const text = operationText(kind, field);
        const fieldBefore = kind === "mutation" ? await databaseSnapshot() : null;
        const base = Object.fromEntries(field.args.filter((arg) => arg.type.kind === "NON_NULL").map((arg) => [arg.name, baseValue(arg.type)]));
        for (const arg of field.args) {
          for (const bad of badValues(arg.type, arg.name)) {
            for (const key of [accountKey, machineKey, undefined]) {
              const variables = { ...base, [arg.name]: bad };
              const response = await fetch(app.url, {
                method: "POST",
                headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
                body: JSON.stringify({ query: text, variables }),
              });
              sent++;
              const body = await response.text();
              const { errors = [] } = JSON.parse(body) as { errors?: { extensions?: { code?: string } }[] };
              const uncoded = errors.some((error) => !error.extensions?.code || error.extensions.code === "INTERNAL_SERVER_ERROR");
              if (response.status >= 500 || uncoded) failures.push(`${field.name}(${arg.name}: ${JSON.stringify(bad).slice(0, 80)}) → ${response.status} ${body.slice(0, 300)}`);
              if (!errors.length && !body.includes("Error")) accepted.push(`${field.name}(${arg.name}: ${JSON.stringify(bad).slice(0, 80)})`);
            }
          }
        }
        if (fieldBefore !== null && (await databaseSnapshot()) !== fieldBefore) changedBy.push(`${field.name}: ${accepted.join(", ")}`);
        accepted.length = 0;
      }
      expect(failures).toEqual([]);
      expect(changedBy).toEqual([]);
      expect(sent).toBeGreaterThan(100);
      expect(JSON.parse(await databaseSnapshot())).toEqual(JSON.parse(before));
    }, 600_000);
  }
});

/** The errors in one graphql-ws answer that carry no code or INTERNAL_SERVER_ERROR. */
function uncodedErrors(errors: readonly { extensions?: { code?: unknown } }[] | undefined): boolean {
  return (errors ?? []).some((error) => !error.extensions?.code || error.extensions.code === "INTERNAL_SERVER_ERROR");
}

/**
 * The first answer to one subscription over `client`: its first event, error or completion. A
 * stream the bad value did not stop is closed after its first event; one that stays silent (none
 * is expected: every argument names something the caller must be allowed to watch) ends the wait
 * after `silentMs`, counted apart.
 */
function firstAnswer(client: Client, query: string, variables: Record<string, unknown>, silentMs = 10_000): Promise<{ kind: "next" | "error" | "complete" | "silent"; uncoded: boolean; text: string }> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (kind: "next" | "error" | "complete" | "silent", uncoded: boolean, text: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      resolve({ kind, uncoded, text: text.slice(0, 300) });
    };
    const timer = setTimeout(() => finish("silent", false, ""), silentMs);
    const unsubscribe = client.subscribe(
      { query, variables },
      {
        next: (result) => finish("next", uncodedErrors(result.errors as { extensions?: { code?: unknown } }[] | undefined), JSON.stringify(result)),
        error: (error) => {
          const errors = Array.isArray(error) ? (error as { extensions?: { code?: unknown } }[]) : [{ extensions: {} }];
          finish("error", uncodedErrors(errors), JSON.stringify(error));
        },
        complete: () => finish("complete", false, "complete"),
      },
    );
  });
}

describe("every argument of every subscription with bad values, over graphql-ws", () => {
  it("subscription: typed errors only, every socket stays up, nothing written", async () => {
    const root = types.get("Subscription")!;
    if (root.kind !== "OBJECT") throw new Error("no subscription type");
    const before = await databaseSnapshot();
    const keys = { account: accountKey, machine: machineKey };
    const closes: string[] = [];
    const clients = Object.entries(keys).map(([name, key]) =>
      createClient({
        url: wsUrl(app.url),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${key}` },
        retryAttempts: 0,
        lazy: false,
        on: { closed: (event) => closes.push(`${name}: ${(event as { code: number }).code}`) },
      }),
    );
    const failures: string[] = [];
    const silent: string[] = [];
    let sent = 0;
    for (const field of root.fields) {
      const text = operationText("subscription", field);
      const base = Object.fromEntries(field.args.filter((arg) => arg.type.kind === "NON_NULL").map((arg) => [arg.name, baseValue(arg.type)]));
      for (const arg of field.args) {
        const answers = clients.flatMap((client) =>
          badValues(arg.type, arg.name).map(async (bad) => {
            const answer = await firstAnswer(client, text, { ...base, [arg.name]: bad });
            const call = `${field.name}(${arg.name}: ${JSON.stringify(bad).slice(0, 80)})`;
            if (answer.uncoded) failures.push(`${call} → ${answer.text}`);
            if (answer.kind === "silent") silent.push(call);
          }),
        );
        sent += answers.length;
        await Promise.all(answers);
      }
    }
    expect(failures).toEqual([]);
    expect(silent).toEqual([]);
    expect(closes).toEqual([]);
    expect(sent).toBeGreaterThan(100);
    // Both connections still serve: the account's balance and the machine's assignments arrive on them.
    const [accountClient, machineClient] = clients;
    expect((await firstAnswer(accountClient, "subscription { balance { id } }", {})).kind).toBe("next");
    const assignments = await firstAnswer(machineClient, "subscription ($machineId: ID!) { assignments(machineId: $machineId) { __typename } }", {
      machineId: `Machine:${machineId}`,
    });
    expect(assignments).toMatchObject({ kind: "next", uncoded: false });
    expect(closes).toEqual([]);
    await Promise.all(clients.map((client) => client.dispose()));
    expect(JSON.parse(await databaseSnapshot())).toEqual(JSON.parse(before));
  }, 600_000);
});
