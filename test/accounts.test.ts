import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { hashPassword, passwordWorkInLine, verifyPassword } from "../domain/passwordHashing.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";

// argon2 itself, counted: which hashes a login verifies against is what reveals accounts or not.
const argon2Verify = vi.hoisted(() => ({ calls: [] as string[] }));
vi.mock("@node-rs/argon2", async (importOriginal) => {
  const argon2 = await importOriginal<typeof import("@node-rs/argon2")>();
  return {
    ...argon2,
    verify: (...args: Parameters<typeof argon2.verify>) => {
      argon2Verify.calls.push(String(args[0]));
      return argon2.verify(...args);
    },
  };
});

const app = useTestApp();

const SIGNUP = `mutation ($email: String!, $password: String!) {
  signup(email: $email, password: $password) {
    __typename
    ... on MutationSignupSuccess { data { email } }
    ... on Error { code message }
    ... on ValidationError { issues { path message } }
    ... on RateLimitedError { retryAfterSeconds }
  }
}`;

const COMPLETE_SIGNUP = `mutation ($token: String!) {
  completeSignup(token: $token) {
    __typename
    ... on MutationCompleteSignupSuccess { data { user { id email } apiKey { token apiKey { id name prefix scope } } } }
    ... on InvalidTokenError { reason }
    ... on Error { code message }
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

const ME = `{ me { id email emailVerified balance createdAt settings { debitMode } sshKeys { totalCount nodes { id } } apiKeys { totalCount nodes { id name scope revokedAt } } } }`;

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

/** The token of the last signup link mailed to `email`. */
async function mailedSignupToken(email: string): Promise<string> {
  const mail = await prisma.notificationOutbox.findFirstOrThrow({ where: { recipient: email, kind: "SIGNUP_LINK" }, orderBy: { id: "desc" } });
  return /token=(gmt_[A-Za-z0-9_-]+)/.exec(mail.body)![1];
}

/** Signs up and opens the mailed link, both from `address`: the account and its first key. */
async function signup(email: string, password = "correct horse battery", address = freshClientAddress()) {
  const started = await app.gqlFrom(address, SIGNUP, { email, password });
  expect(started.errors).toBeUndefined();
  expect(started.data.signup.__typename).toBe("MutationSignupSuccess");
  const completed = await app.gqlFrom(address, COMPLETE_SIGNUP, { token: await mailedSignupToken(started.data.signup.data.email) });
  expect(completed.errors).toBeUndefined();
  return completed.data.completeSignup;
}

/** Every write signup may make: accounts, keys, tokens and mail. */
async function signupWrites() {
  const [users, keys, tokens, mails] = await Promise.all([prisma.user.count(), prisma.apiKey.count(), prisma.accountToken.count(), prisma.notificationOutbox.count()]);
  return { users, keys, tokens, mails };
}

describe("signup", () => {
  it("mails a link that creates the account (email verified) with an argon2id hash and returns a working key stored only as its SHA-256", async () => {
    const email = uniqueEmail();
    const result = await signup(`  ${email.toUpperCase()} `, "correct horse battery");
    expect(result.__typename).toBe("MutationCompleteSignupSuccess");
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
      emailVerified: true,
      balance: "0.00",
      settings: { debitMode: false },
      sshKeys: { totalCount: 0, nodes: [] },
      apiKeys: { totalCount: 1, nodes: [{ id: apiKey.apiKey.id, name: "signup", scope: "ACCOUNT", revokedAt: null }] },
    });
    expect(new Date(me.data.me.createdAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it("creates no account before the link is opened, and a link works once", async () => {
    const email = uniqueEmail();
    const before = await signupWrites();
    const started = (await app.gqlFrom(freshClientAddress(), SIGNUP, { email, password: "s3cret-password" })).data.signup;
    expect(started).toEqual({ __typename: "MutationSignupSuccess", data: { email } });
    expect(await signupWrites()).toEqual({ ...before, tokens: before.tokens + 1, mails: before.mails + 1 });
    expect(await prisma.user.count({ where: { email } })).toBe(0);
    const login = (await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: "s3cret-password" })).data.login;
    expect(login.__typename).toBe("InvalidCredentialsError");

    const token = await mailedSignupToken(email);
    const completed = (await app.gql(COMPLETE_SIGNUP, { token })).data.completeSignup;
    expect(completed.__typename).toBe("MutationCompleteSignupSuccess");
    const again = (await app.gql(COMPLETE_SIGNUP, { token })).data.completeSignup;
    expect(again).toMatchObject({ __typename: "InvalidTokenError", reason: "USED" });
    expect((await app.gql(COMPLETE_SIGNUP, { token: "gmt_not-a-token" })).data.completeSignup).toMatchObject({ __typename: "InvalidTokenError", reason: "UNKNOWN" });
    expect(await prisma.user.count({ where: { email } })).toBe(1);
    const loggedIn = (await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: "s3cret-password" })).data.login;
    expect(loggedIn.__typename).toBe("MutationLoginSuccess");
  });

  it("answers an address that has an account exactly as a new one: no key, no account, its owner is mailed instead", async () => {
    const email = uniqueEmail();
    await signup(email, "the owner's password");
    const fresh = uniqueEmail();
    const before = await signupWrites();
    const taken = await app.gqlFrom(freshClientAddress(), SIGNUP, { email: ` ${email.toUpperCase()}`, password: "another password" });
    const open = await app.gqlFrom(freshClientAddress(), SIGNUP, { email: fresh, password: "another password" });
    // The same answer, byte for byte but the address.
    expect(JSON.stringify(taken).replace(email, "ADDRESS")).toBe(JSON.stringify(open).replace(fresh, "ADDRESS"));
    expect(taken).toEqual({ data: { signup: { __typename: "MutationSignupSuccess", data: { email } } } });
    // The new address got a link; the owner a notice, and the account is as it was.
    expect(await signupWrites()).toEqual({ ...before, tokens: before.tokens + 1, mails: before.mails + 2 });
    const notice = await prisma.notificationOutbox.findFirstOrThrow({ where: { recipient: email }, orderBy: { id: "desc" } });
    expect(notice).toMatchObject({ kind: "SIGNUP_ATTEMPT", userId: (await prisma.user.findUniqueOrThrow({ where: { email } })).id });
    expect(notice.body).not.toContain("gmt_");
    expect(await prisma.accountToken.count({ where: { email } })).toBe(1);
    const login = (await app.gqlFrom(freshClientAddress(), LOGIN, { email, password: "the owner's password" })).data.login;
    expect(login.__typename).toBe("MutationLoginSuccess");
  });

  it("hashes the password whether or not the address has an account: both wait for the same hashing line", async () => {
    const email = uniqueEmail();
    await signup(email);
    const { PASSWORD_HASHES_AT_ONCE, PASSWORD_HASH_QUEUE } = config();
    const stored = await hashPassword("a password");
    // The line is kept full (each check that ends is replaced before any request is read): a signup
    // that hashes is refused for load, one that did not hash would go through.
    let keepFull = true;
    const pump = async () => {
      while (keepFull) await verifyPassword(stored, "wrong");
    };
    const pumps = Array.from({ length: PASSWORD_HASHES_AT_ONCE + PASSWORD_HASH_QUEUE }, pump);
    expect(passwordWorkInLine()).toBe(PASSWORD_HASHES_AT_ONCE + PASSWORD_HASH_QUEUE);
    const before = await signupWrites();
    const [taken, open] = await Promise.all([
      app.gqlFrom(freshClientAddress(), SIGNUP, { email, password: "another password" }),
      app.gqlFrom(freshClientAddress(), SIGNUP, { email: uniqueEmail(), password: "another password" }),
    ]);
    keepFull = false;
    await Promise.all(pumps);
    expect(taken.data.signup).toMatchObject({ __typename: "RateLimitedError", code: "RATE_LIMITED" });
    expect(open.data.signup).toEqual(taken.data.signup);
    expect(await signupWrites()).toEqual(before);
  });

  it("mails one address at most 3 signup emails an hour, answering the same beyond", async () => {
    const email = uniqueEmail();
    for (let i = 0; i < 5; i++) {
      const result = await app.gqlFrom(freshClientAddress(), SIGNUP, { email, password: "long enough password" });
      expect(result.data.signup).toEqual({ __typename: "MutationSignupSuccess", data: { email } });
    }
    expect(await prisma.notificationOutbox.count({ where: { recipient: email } })).toBe(3);
  });

  it("refuses a link whose address has an account by then, creating nothing", async () => {
    const email = uniqueEmail();
    for (const password of ["first password", "second password"]) await app.gqlFrom(freshClientAddress(), SIGNUP, { email, password });
    const [first, second] = (await prisma.notificationOutbox.findMany({ where: { recipient: email }, orderBy: { id: "asc" } })).map(
      (mail) => /token=(gmt_[A-Za-z0-9_-]+)/.exec(mail.body)![1],
    );
    expect((await app.gql(COMPLETE_SIGNUP, { token: second })).data.completeSignup.__typename).toBe("MutationCompleteSignupSuccess");
    const before = await signupWrites();
    expect((await app.gql(COMPLETE_SIGNUP, { token: first })).data.completeSignup).toMatchObject({ __typename: "ConflictError", code: "CONFLICT" });
    expect(await signupWrites()).toEqual(before);
  });

  it.each([
    ["not-an-email", "long enough password", "email"],
    ["", "long enough password", "email"],
    [`${"a".repeat(250)}@example.com`, "long enough password", "email"],
    ["valid@example.com", "short", "password"],
    ["valid@example.com", "x".repeat(257), "password"],
  ])("rejects email %j / a password of %j with a ValidationError on %s, writing nothing", async (email, password, field) => {
    const before = await signupWrites();
    const result = (await app.gql(SIGNUP, { email, password })).data.signup;
    expect(result.__typename).toBe("ValidationError");
    expect(result.issues.map((issue: { path: string[] }) => issue.path)).toEqual([[field]]);
    expect(await signupWrites()).toEqual(before);
  });

  it("limits signups per client address to the hour's budget, writing nothing once it is spent", async () => {
    const address = freshClientAddress();
    for (let i = 0; i < 20; i++) {
      const result = await app.gqlFrom(address, SIGNUP, { email: uniqueEmail(), password: "long enough password" });
      expect(result.data.signup.__typename).toBe("MutationSignupSuccess");
    }
    const before = await signupWrites();
    const limited = (await app.gqlFrom(address, SIGNUP, { email: uniqueEmail(), password: "long enough password" })).data.signup;
    expect(limited).toMatchObject({ __typename: "RateLimitedError", code: "RATE_LIMITED" });
    expect(limited.retryAfterSeconds).toBeGreaterThan(60);
    expect(limited.retryAfterSeconds).toBeLessThanOrEqual(3600);
    expect(await signupWrites()).toEqual(before);
    // Another address is not affected.
    expect((await signup(uniqueEmail())).__typename).toBe("MutationCompleteSignupSuccess");
  });

  it("accepts passwords of exactly 8 and 256 characters", async () => {
    expect((await signup(uniqueEmail(), "12345678")).__typename).toBe("MutationCompleteSignupSuccess");
    expect((await signup(uniqueEmail(), "p".repeat(256))).__typename).toBe("MutationCompleteSignupSuccess");
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
    const verifiedBy = async (variables: Record<string, unknown>) => {
      argon2Verify.calls.length = 0;
      const result = await app.gqlFrom(freshClientAddress(), LOGIN, variables);
      expect(result.data.login.__typename).toBe("InvalidCredentialsError");
      return [...argon2Verify.calls];
    };
    const known = await verifiedBy({ email, password: "wrong-password" });
    const unknown = await verifiedBy({ email: uniqueEmail(), password: "wrong-password" });
    const { passwordHash } = await prisma.user.findUniqueOrThrow({ where: { email } });
    expect(known).toEqual([passwordHash]);
    // One verification of the same cost: an argon2id hash with the same parameters, of no account's password.
    expect(unknown).toHaveLength(1);
    expect(unknown[0]).not.toBe(passwordHash);
    expect(unknown[0].split("$").slice(0, 4)).toEqual(passwordHash.split("$").slice(0, 4));
    expect(await prisma.user.count({ where: { passwordHash: unknown[0] } })).toBe(0);
  });

  it("validates its input before anything else", async () => {
    const result = (await app.gqlFrom(freshClientAddress(), LOGIN, { email: "nope", password: "" })).data.login;
    expect(result.__typename).toBe("ValidationError");
    expect(result.issues.map((issue: { path: string[] }) => issue.path)).toEqual([["email"], ["password"]]);
  });

  it("limits failed attempts per email across new client addresses, even with the right password, but not from the owner's known address", async () => {
    const email = uniqueEmail();
    const home = freshClientAddress();
    expect((await signup(email, "s3cret-password", home)).__typename).toBe("MutationCompleteSignupSuccess");
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
