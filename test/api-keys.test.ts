import { createHash } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { createAccount } from "../domain/accounts.ts";
import { issueApiKey, issueSessionKey, SESSION_TTL_MS } from "../domain/apiKeys.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { signedUpAccount } from "./support/rentals.ts";
import { connectionCloseCode, subscribe } from "./support/ws.ts";

const app = useTestApp();

const KEY_FIELDS = "id name prefix scope machineId instanceId createdAt lastUsedAt revokedAt";
const CREATE = `mutation ($name: String!) {
  createApiKey(name: $name) {
    __typename
    ... on MutationCreateApiKeySuccess { data { token apiKey { ${KEY_FIELDS} } } }
    ... on Error { code message }
    ... on ValidationError { issues { path } }
  }
}`;
const REVOKE = `mutation ($id: ID!) {
  revokeApiKey(id: $id) {
    __typename
    ... on MutationRevokeApiKeySuccess { data { ${KEY_FIELDS} } }
    ... on Error { code message }
    ... on ValidationError { issues { path } }
  }
}`;
const LIST = `{ apiKeys { nodes { ${KEY_FIELDS} } } }`;

const newAccount = () => signedUpAccount("keys");

async function keyRows(userId: number) {
  return prisma.apiKey.findMany({ where: { userId }, orderBy: { id: "asc" } });
}

describe("createApiKey", () => {
  it("issues a full-account key, shown once and stored only as its SHA-256", async () => {
    const account = await newAccount();
    const result = (await app.gql(CREATE, { name: "  laptop  " }, account.token)).data.createApiKey;
    expect(result.__typename).toBe("MutationCreateApiKeySuccess");
    const { token, apiKey } = result.data;
    expect(apiKey).toMatchObject({ name: "laptop", scope: "ACCOUNT", machineId: null, instanceId: null, revokedAt: null, lastUsedAt: null });
    expect(apiKey.id).toMatch(/^ApiKey:\d+$/);
    expect(token.startsWith(apiKey.prefix)).toBe(true);
    expect(token.length).toBeGreaterThan(40);

    const row = await prisma.apiKey.findUniqueOrThrow({ where: { id: Number(apiKey.id.split(":")[1]) } });
    expect(row.hash).toBe(createHash("sha256").update(token).digest("hex"));
    expect(Object.values(row)).not.toContain(token);

    expect((await app.gql("{ me { id } }", {}, token)).data.me).not.toBeNull();
  });

  it.each([[""], ["   "], ["n".repeat(101)]])("refuses the name %j with a ValidationError and writes nothing", async (name) => {
    const account = await newAccount();
    const before = await prisma.apiKey.count();
    const result = (await app.gql(CREATE, { name }, account.token)).data.createApiKey;
    expect(result).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["name"] }] });
    expect(await prisma.apiKey.count()).toBe(before);
  });

  it("returns NotAuthenticatedError as data when called without a key", async () => {
    const before = await prisma.apiKey.count();
    const result = await app.gql(CREATE, { name: "x" });
    expect(result).toEqual({
      data: { createApiKey: { __typename: "NotAuthenticatedError", code: "UNAUTHENTICATED", message: "A valid API key is required" } },
    });
    expect(await prisma.apiKey.count()).toBe(before);
  });
});

describe("apiKeys", () => {
  it("lists the caller's keys of every scope, newest first, never the hash or another account's keys", async () => {
    const account = await newAccount();
    const other = await newAccount();
    await app.gql(CREATE, { name: "ci" }, account.token);
    await issueApiKey(prisma, { userId: account.userId, name: "agent", scope: "MACHINE" });
    const list = (await app.gql(LIST, {}, account.token)).data.apiKeys.nodes;
    expect(list.map((key: { name: string; scope: string }) => [key.name, key.scope])).toEqual([
      ["agent", "MACHINE"],
      ["ci", "ACCOUNT"],
      ["signup", "ACCOUNT"],
    ]);
    // The signup key has just authenticated this request.
    expect(list[2].lastUsedAt).not.toBeNull();
    expect(list[0].lastUsedAt).toBeNull();
    expect((await app.gql(LIST, {}, other.token)).data.apiKeys.nodes).toHaveLength(1);

    const hashQuery = await app.gql("{ apiKeys { nodes { hash } } }", {}, account.token);
    expect(hashQuery.errors?.[0].message).toMatch(/Cannot query field "hash"/);
  });

  it("is an UNAUTHENTICATED error without a key", async () => {
    const result = await app.gql(LIST);
    expect(result.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
    expect(result.data).toBeNull();
  });
});

describe("revokeApiKey", () => {
  it("revokes a key so that it stops working at once; revoking again keeps the first time", async () => {
    const account = await newAccount();
    const created = (await app.gql(CREATE, { name: "temp" }, account.token)).data.createApiKey.data;
    expect((await app.gql("{ me { id } }", {}, created.token)).data.me).not.toBeNull();

    const revoked = (await app.gql(REVOKE, { id: created.apiKey.id }, account.token)).data.revokeApiKey;
    expect(revoked.__typename).toBe("MutationRevokeApiKeySuccess");
    expect(revoked.data.revokedAt).not.toBeNull();

    const rejected = await app.gql("{ me { id } }", {}, created.token);
    expect(rejected.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
    expect(rejected.data).toBeUndefined();
    const rejectedMutation = await app.gql(CREATE, { name: "x" }, created.token);
    expect(rejectedMutation.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");

    const again = (await app.gql(REVOKE, { id: created.apiKey.id }, account.token)).data.revokeApiKey;
    expect(again.data.revokedAt).toBe(revoked.data.revokedAt);
    // The caller's own key is untouched.
    expect((await app.gql("{ me { id } }", {}, account.token)).data.me).not.toBeNull();
  });

  it("treats another account's key like a missing one and changes nothing", async () => {
    const owner = await newAccount();
    const intruder = await newAccount();
    const victimKey = (await app.gql(CREATE, { name: "victim" }, owner.token)).data.createApiKey.data;
    const before = await keyRows(owner.userId);

    const result = (await app.gql(REVOKE, { id: victimKey.apiKey.id }, intruder.token)).data.revokeApiKey;
    expect(result).toEqual({ __typename: "NotFoundError", code: "NOT_FOUND", message: "ApiKey not found" });
    const missing = (await app.gql(REVOKE, { id: "ApiKey:999999" }, intruder.token)).data.revokeApiKey;
    expect(missing).toEqual(result);

    expect(await keyRows(owner.userId)).toEqual(before);
    expect((await app.gql("{ me { id } }", {}, victimKey.token)).data.me).not.toBeNull();
  });

  it.each([["SshKey:1"], ["ApiKey:abc"], ["ApiKey:-1"], ["ApiKey:99999999999"], ["12"]])(
    "refuses the id %j with a ValidationError",
    async (id) => {
      const account = await newAccount();
      const result = (await app.gql(REVOKE, { id }, account.token)).data.revokeApiKey;
      expect(result).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["id"] }] });
    },
  );
});

describe("machine and instance keys", () => {
  const ACCOUNT_OPERATIONS: [string, string, Record<string, unknown>][] = [
    ["createApiKey", CREATE, { name: "escalate" }],
    ["revokeApiKey", REVOKE, { id: "ApiKey:1" }],
    ["addSshKey", `mutation { addSshKey(publicKey: "ssh-ed25519 AAAA") { __typename ... on Error { code } } }`, {}],
    ["removeSshKey", `mutation { removeSshKey(id: "SshKey:1") { __typename ... on Error { code } } }`, {}],
  ];

  it.each(["MACHINE", "INSTANCE"] as const)("a %s key cannot use account mutations or queries", async (scope) => {
    const account = await newAccount();
    const { token } = await issueApiKey(prisma, { userId: account.userId, name: "scoped", scope });
    const before = await keyRows(account.userId);
    const sshBefore = await prisma.sshKey.count();

    for (const [field, query, variables] of ACCOUNT_OPERATIONS) {
      const result = await app.gql(query, variables, token);
      expect(result.data?.[field], field).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
    }
    for (const query of ["{ me { id } }", "{ apiKeys { nodes { id } } }", "{ sshKeys { nodes { id } } }"]) {
      const result = await app.gql(query, {}, token);
      expect(result.errors?.[0].extensions?.code, query).toBe("FORBIDDEN");
    }

    // Only lastUsedAt of the scoped key moved.
    const after = await keyRows(account.userId);
    expect(after.map(({ lastUsedAt: _, ...row }) => row)).toEqual(before.map(({ lastUsedAt: _, ...row }) => row));
    expect(await prisma.sshKey.count()).toBe(sshBefore);
  });

  it("an INSTANCE key reports its instance as a global id", async () => {
    const account = await newAccount();
    await issueApiKey(prisma, { userId: account.userId, name: "container", scope: "INSTANCE", instanceId: 7 });
    const list = (await app.gql(LIST, {}, account.token)).data.apiKeys.nodes;
    expect(list[0]).toMatchObject({ name: "container", scope: "INSTANCE", machineId: null, instanceId: "Instance:7" });
  });
});

describe("permissions and expiry", () => {
  const CREATE_SCOPED = `mutation ($name: String!, $permissions: [ApiKeyPermission!], $expiresAt: DateTime) {
    createApiKey(name: $name, permissions: $permissions, expiresAt: $expiresAt) {
      __typename
      ... on MutationCreateApiKeySuccess { data { token apiKey { id scope permissions expiresAt } } }
      ... on Error { code }
      ... on ValidationError { issues { path } }
    }
  }`;

  it("makes a key with the permissions named, READ always, and all of them when none are", async () => {
    const account = await newAccount();
    const billing = (await app.gql(CREATE_SCOPED, { name: "accounting", permissions: ["BILLING"] }, account.token)).data.createApiKey;
    expect(billing.data.apiKey).toMatchObject({ scope: "ACCOUNT", permissions: ["READ", "BILLING"], expiresAt: null });
    const full = (await app.gql(CREATE_SCOPED, { name: "full" }, account.token)).data.createApiKey;
    expect(full.data.apiKey.permissions).toEqual(["READ", "INSTANCES", "BILLING", "MACHINES", "KEYS"]);
    // A key without KEYS cannot make keys, so it cannot make itself a stronger one.
    const escalation = (await app.gql(CREATE_SCOPED, { name: "more" }, billing.data.token)).data.createApiKey;
    expect(escalation).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
  });

  it("refuses an expiry in the past with a ValidationError and writes nothing", async () => {
    const account = await newAccount();
    const before = await keyRows(account.userId);
    const result = await app.gql(CREATE_SCOPED, { name: "old", expiresAt: new Date(Date.now() - 60_000).toISOString() }, account.token);
    expect(result.data.createApiKey).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["expiresAt"] }] });
    expect((await keyRows(account.userId)).map((row) => row.id)).toEqual(before.map((row) => row.id));
  });

  it("refuses a key past its expiry over HTTP and closes its WebSocket connections (4403)", async () => {
    const account = await newAccount();
    const expiresAt = new Date(Date.now() + 1500);
    const created = (await app.gql(CREATE_SCOPED, { name: "short", expiresAt: expiresAt.toISOString() }, account.token)).data.createApiKey;
    const { token } = created.data;
    expect((await app.gql("{ me { id } }", {}, token)).data.me.id).toBe(`User:${account.userId}`);
    const balance = subscribe(app.url, token, "subscription { balance { balance } }");
    const kept = subscribe(app.url, account.token, "subscription { balance { balance } }");
    await Promise.all([balance.next(), kept.next()]);

    await vi.waitFor(
      async () => {
        const refused = await app.gql("{ me { id } }", {}, token);
        expect(refused.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
      },
      { timeout: 10_000, interval: 200 },
    );
    expect(await app.closeRevokedConnections()).toBe(1);
    expect((await balance.failed()).code).toBe(4403);
    expect(kept.errors).toEqual([]);
    expect(await connectionCloseCode(app.url, { authorization: `Bearer ${token}` })).toBe(4403);
    await Promise.all([balance.close(), kept.close()]);
  });
});

describe("permissions over WebSocket", () => {
  it("a read-only key subscribes to the account's balance; keys without READ are refused (FORBIDDEN)", async () => {
    const account = await newAccount();
    const readOnly = await issueApiKey(prisma, { userId: account.userId, name: "ro", scope: "ACCOUNT", permissions: ["READ"] });
    const instanceKey = await issueApiKey(prisma, { userId: account.userId, name: "c", scope: "INSTANCE", instanceId: 1 });
    const reading = subscribe(app.url, readOnly.token, "subscription { balance { balance } }");
    expect(await reading.next()).toEqual({ balance: "0.00" });
    const refused = subscribe(app.url, instanceKey.token, "subscription { balance { balance } }");
    expect((await refused.failed())[0].extensions.code).toBe("FORBIDDEN");
    await Promise.all([reading.close(), refused.close()]);
  });
});

describe("sessions", () => {
  const LOGIN = `mutation ($email: String!, $password: String!) {
    login(email: $email, password: $password) { ... on MutationLoginSuccess { data { apiKey { token apiKey { id } } } } }
  }`;
  const SESSIONS = "{ sessions { totalCount nodes { id scope expiresAt } } }";

  it("login issues a session key each time; sessions lists the live ones and revokeApiKey ends one", async () => {
    const email = `sessions-${Date.now()}@example.com`;
    const accountKey = (await createAccount({ email, password: "long enough password" })).key.token;
    const first = (await app.gql(LOGIN, { email, password: "long enough password" })).data.login.data.apiKey;
    const second = (await app.gql(LOGIN, { email, password: "long enough password" })).data.login.data.apiKey;
    const listed = (await app.gql(SESSIONS, {}, accountKey)).data.sessions.nodes;
    expect(listed.map((session: { id: string }) => session.id).sort()).toEqual([first.apiKey.id, second.apiKey.id].sort());
    expect(listed.every((session: { scope: string }) => session.scope === "SESSION")).toBe(true);

    const revoked = await app.gql(REVOKE, { id: first.apiKey.id }, second.token);
    expect(revoked.data.revokeApiKey.__typename).toBe("MutationRevokeApiKeySuccess");
    expect((await app.gql("{ me { id } }", {}, first.token)).errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
    expect((await app.gql(SESSIONS, {}, second.token)).data.sessions.nodes.map((session: { id: string }) => session.id)).toEqual([second.apiKey.id]);
  });

  it("a session's expiry moves forward as it is used, and it is refused once it has passed", async () => {
    const account = await newAccount();
    const session = await issueSessionKey(prisma, account.userId, "login");
    const id = session.id;
    // Last used two minutes ago, expiring in a day: using it now extends it to 30 days from now.
    await prisma.apiKey.update({ where: { id }, data: { lastUsedAt: new Date(Date.now() - 120_000), expiresAt: new Date(Date.now() + 86_400_000) } });
    expect((await app.gql("{ me { id } }", {}, session.token)).data.me.id).toBe(`User:${account.userId}`);
    const slid = await prisma.apiKey.findUniqueOrThrow({ where: { id } });
    expect(Math.abs(slid.expiresAt!.getTime() - Date.now() - SESSION_TTL_MS)).toBeLessThan(60_000);

    await prisma.apiKey.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await app.gql("{ me { id } }", {}, session.token)).errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
    expect(await prisma.apiKey.findUniqueOrThrow({ where: { id } })).toMatchObject({ revokedAt: null });
  });
});
