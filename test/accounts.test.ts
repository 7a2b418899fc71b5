import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";

const app = useTestApp();

const SIGNUP = `mutation ($email: String!, $password: String!) {
  signup(email: $email, password: $password) {
    __typename
    ... on MutationSignupSuccess { data { user { id email } apiKey { token apiKey { id name prefix scope } } } }
    ... on Error { code message }
    ... on ValidationError { issues { path message } }
    ... on RateLimitedError { retryAfterSeconds }
  }
}`;

const LOGIN = `mutation ($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename
    ... on MutationLoginSuccess { data { user { id email } apiKey { token apiKey { id name scope } } } }
    ... on RateLimitedError { retryAfterSeconds }
    ... on Error { code message }
    ... on ValidationError { issues { path message } }
  }
}`;

const ME = `{ me { id email emailVerified balance createdAt settings { debitMode } sshKeys { id } apiKeys { id name scope revokedAt } } }`;

let addressCounter = 1;
/** A loopback address of its own for each caller, so the per-address limits do not couple tests. */
function freshClientAddress(): string {
  addressCounter += 1;
  return `127.0.${Math.floor(addressCounter / 250)}.${(addressCounter % 250) + 2}`;
}

function uniqueEmail(): string {
  return `user-${randomBytes(6).toString("hex")}@example.com`;
}

async function counts() {
  const [users, keys] = await Promise.all([prisma.user.count(), prisma.apiKey.count()]);
  return { users, keys };
}

async function signup(email: string, password = "correct horse battery") {
  const result = await app.gqlFrom(freshClientAddress(), SIGNUP, { email, password });
  expect(result.errors).toBeUndefined();
  return result.data.signup;
}

describe("signup", () => {
  it("creates the account with an argon2id hash and returns a working key stored only as its SHA-256", async () => {
    const email = uniqueEmail();
    const result = await signup(`  ${email.toUpperCase()} `, "correct horse battery");
    expect(result.__typename).toBe("MutationSignupSuccess");
    const { user, apiKey } = result.data;
    expect(user.email).toBe(email);
    expect(apiKey.apiKey).toMatchObject({ name: "signup", scope: "ACCOUNT" });
    expect(apiKey.token.startsWith(apiKey.apiKey.prefix)).toBe(true);

    const stored = await prisma.user.findUniqueOrThrow({ where: { email }, include: { apiKeys: true } });
    expect(stored.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(stored.passwordHash).not.toContain("correct horse battery");
    expect(stored.apiKeys).toHaveLength(1);
    expect(stored.apiKeys[0].hash).toBe(createHash("sha256").update(apiKey.token).digest("hex"));

    const me = await app.gql(ME, {}, apiKey.token);
    expect(me.errors).toBeUndefined();
    expect(me.data.me).toMatchObject({
      id: user.id,
      email,
      emailVerified: false,
      balance: "0.00",
      settings: { debitMode: false },
      sshKeys: [],
      apiKeys: [{ id: apiKey.apiKey.id, name: "signup", scope: "ACCOUNT", revokedAt: null }],
    });
    expect(new Date(me.data.me.createdAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it("refuses an email that is taken, whatever its case and spacing, and writes nothing", async () => {
    const email = uniqueEmail();
    await signup(email);
    const before = await counts();
    const result = await signup(` ${email.toUpperCase()}`, "another password");
    expect(result).toMatchObject({ __typename: "ConflictError", code: "CONFLICT" });
    expect(await counts()).toEqual(before);
  });

  it.each([
    ["not-an-email", "long enough password", "email"],
    ["", "long enough password", "email"],
    [`${"a".repeat(250)}@example.com`, "long enough password", "email"],
    ["valid@example.com", "short", "password"],
    ["valid@example.com", "x".repeat(257), "password"],
  ])("rejects email %j / a password of %j with a ValidationError on %s, writing nothing", async (email, password, field) => {
    const before = await counts();
    const result = (await app.gql(SIGNUP, { email, password })).data.signup;
    expect(result.__typename).toBe("ValidationError");
    expect(result.issues.map((issue: { path: string[] }) => issue.path)).toEqual([[field]]);
    expect(await counts()).toEqual(before);
  });

  it("limits signups per client address to the hour's budget, writing nothing once it is spent", async () => {
    const address = freshClientAddress();
    for (let i = 0; i < 20; i++) {
      const result = await app.gqlFrom(address, SIGNUP, { email: uniqueEmail(), password: "long enough password" });
      expect(result.data.signup.__typename).toBe("MutationSignupSuccess");
    }
    const before = await counts();
    const limited = (await app.gqlFrom(address, SIGNUP, { email: uniqueEmail(), password: "long enough password" })).data.signup;
    expect(limited).toMatchObject({ __typename: "RateLimitedError", code: "RATE_LIMITED" });
    expect(limited.retryAfterSeconds).toBeGreaterThan(60);
    expect(limited.retryAfterSeconds).toBeLessThanOrEqual(3600);
    expect(await counts()).toEqual(before);
    // Another address is not affected.
    expect((await signup(uniqueEmail())).__typename).toBe("MutationSignupSuccess");
  });

  it("accepts passwords of exactly 8 and 256 characters", async () => {
    expect((await signup(uniqueEmail(), "12345678")).__typename).toBe("MutationSignupSuccess");
    expect((await signup(uniqueEmail(), "p".repeat(256))).__typename).toBe("MutationSignupSuccess");
  });
});

describe("login", () => {
  it("returns the account and a new session key (every permission, expiring in 30 days) for the right password", async () => {
    const email = uniqueEmail();
    const created = (await signup(email, "s3cret-password")).data;
    const result = (await app.gqlFrom(freshClientAddress(), LOGIN, { email: ` ${email.toUpperCase()}`, password: "s3cret-password" }))
      .data.login;
    expect(result.__typename).toBe("MutationLoginSuccess");
    expect(result.data.user).toEqual(created.user);
    expect(result.data.apiKey.apiKey).toMatchObject({ name: "login", scope: "SESSION" });
    const hash = createHash("sha256").update(result.data.apiKey.token).digest("hex");
    const stored = await prisma.apiKey.findUniqueOrThrow({ where: { hash } });
    expect(stored.permissions).toEqual(["READ", "INSTANCES", "BILLING", "MACHINES", "KEYS"]);
    expect(Math.abs(stored.expiresAt!.getTime() - Date.now() - 30 * 86_400_000)).toBeLessThan(60_000);
    expect(result.data.apiKey.token).not.toBe(created.apiKey.token);
    expect((await app.gql("{ me { email } }", {}, result.data.apiKey.token)).data.me.email).toBe(email);
  });

  it("answers a wrong password and an unknown email alike, without issuing a key", async () => {
    const email = uniqueEmail();
    await signup(email, "s3cret-password");
    const before = await counts();
    const wrong = (await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: "not-the-password" })).data.login;
    const unknown = (await app.gqlFrom(freshClientAddress(), LOGIN, { email: uniqueEmail(), password: "s3cret-password" })).data
      .login;
    expect(wrong).toEqual({ __typename: "InvalidCredentialsError", code: "INVALID_CREDENTIALS", message: "Email or password is wrong" });
    expect(unknown).toEqual(wrong);
    expect(await counts()).toEqual(before);
  });

  it("spends an argon2 verification on unknown emails too, so timing does not reveal accounts", async () => {
    const email = uniqueEmail();
    await signup(email, "s3cret-password");
    const timed = async (variables: Record<string, unknown>) => {
      const started = performance.now();
      const result = await app.gqlFrom(freshClientAddress(), LOGIN, variables);
      expect(result.data.login.__typename).toBe("InvalidCredentialsError");
      return performance.now() - started;
    };
    // Back-to-back pairs see the same machine load; the median ratio ignores outliers. Measured
    // here: ~1.0 with the dummy verification, ~0.4 without it.
    const ratios: number[] = [];
    for (let i = 0; i < 9; i++) {
      const known = await timed({ email, password: "wrong-password" });
      const unknown = await timed({ email: uniqueEmail(), password: "wrong-password" });
      ratios.push(unknown / known);
    }
    ratios.sort((a, b) => a - b);
    expect(ratios[4]).toBeGreaterThan(0.65);
  });

  it("validates its input before anything else", async () => {
    const result = (await app.gqlFrom(freshClientAddress(), LOGIN, { email: "nope", password: "" })).data.login;
    expect(result.__typename).toBe("ValidationError");
    expect(result.issues.map((issue: { path: string[] }) => issue.path)).toEqual([["email"], ["password"]]);
  });

  it("limits failed attempts per email across new client addresses, even with the right password, but not from the owner's known address", async () => {
    const email = uniqueEmail();
    const home = freshClientAddress();
    expect((await app.gqlFrom(home, SIGNUP, { email, password: "s3cret-password" })).data.signup.__typename).toBe("MutationSignupSuccess");
    for (let i = 0; i < 10; i++) {
      const result = await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: `wrong-${i}` });
      expect(result.data.login.__typename).toBe("InvalidCredentialsError");
    }
    const before = await counts();
    const limited = (await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: "s3cret-password" })).data.login;
    expect(limited).toMatchObject({ __typename: "RateLimitedError", code: "RATE_LIMITED" });
    expect(limited.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(limited.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(await counts()).toEqual(before);

    // The owner, from where they signed up, is not locked out by someone guessing elsewhere.
    const owner = (await app.gqlFrom(home, LOGIN, { email, password: "s3cret-password" })).data.login;
    expect(owner.__typename).toBe("MutationLoginSuccess");

    // Other accounts are not affected.
    const other = uniqueEmail();
    await signup(other, "s3cret-password");
    const ok = await app.gqlFrom(freshClientAddress(), LOGIN, { email: other, password: "s3cret-password" });
    expect(ok.data.login.__typename).toBe("MutationLoginSuccess");
  });

  it("limits attempts per client address, across emails", async () => {
    const address = freshClientAddress();
    const email = uniqueEmail();
    await signup(email, "s3cret-password");
    for (let i = 0; i < 10; i++) {
      const result = await app.gqlFrom(address, LOGIN, { email: uniqueEmail(), password: "whatever-password" });
      expect(result.data.login.__typename).toBe("InvalidCredentialsError");
    }
    const limited = (await app.gqlFrom(address, LOGIN, { email, password: "s3cret-password" })).data.login;
    expect(limited.__typename).toBe("RateLimitedError");
    const elsewhere = await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: "s3cret-password" });
    expect(elsewhere.data.login.__typename).toBe("MutationLoginSuccess");
  });
});

describe("me", () => {
  it("is null for anonymous callers", async () => {
    expect(await app.gql("{ me { email } }")).toEqual({ data: { me: null } });
  });

  it("shows the account's balance and settings as stored", async () => {
    const email = uniqueEmail();
    const { apiKey } = (await signup(email)).data;
    await prisma.user.update({ where: { email }, data: { balanceMicros: 12_345_678n, debitMode: true, emailVerified: true } });
    const me = (await app.gql("{ me { balance emailVerified settings { debitMode } } }", {}, apiKey.token)).data.me;
    expect(me).toEqual({ balance: "12.345678", emailVerified: true, settings: { debitMode: true } });
  });
});
