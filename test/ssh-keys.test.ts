import { createHash, generateKeyPairSync } from "node:crypto";
import sshpk from "sshpk";
import { describe, expect, it } from "vitest";
import { MAX_SSH_KEYS_PER_ACCOUNT } from "../domain/sshKeys.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { signedUpAccount } from "./support/rentals.ts";

const app = useTestApp();

const KEY_FIELDS = "id keyType fingerprint comment publicKey createdAt";
const ADD = `mutation ($publicKey: String!) {
  addSshKey(publicKey: $publicKey) {
    __typename
    ... on MutationAddSshKeySuccess { data { ${KEY_FIELDS} } }
    ... on Error { code message }
    ... on ValidationError { issues { path message } }
  }
}`;
const REMOVE = `mutation ($id: ID!) {
  removeSshKey(id: $id) {
    __typename
    ... on MutationRemoveSshKeySuccess { data { ${KEY_FIELDS} } }
    ... on Error { code message }
    ... on ValidationError { issues { path } }
  }
}`;

type KeyPair = ReturnType<typeof generateKeyPairSync>;

/** A real key from node:crypto in OpenSSH's one-line format, as `ssh-keygen` would print it. */
function opensshLine(pair: KeyPair, comment?: string): string {
  const key = sshpk.parseKey(pair.publicKey.export({ type: "spki", format: "pem" }), "pem");
  key.comment = comment ?? "";
  return key.toString("ssh");
}

/** OpenSSH's SHA256 fingerprint, computed from the wire blob independently of sshpk. */
function fingerprintOf(line: string): string {
  const blob = Buffer.from(line.split(" ")[1], "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

const newAccount = () => signedUpAccount("ssh");

describe("addSshKey", () => {
  it.each([
    ["ssh-ed25519", () => generateKeyPairSync("ed25519")],
    ["ssh-rsa", () => generateKeyPairSync("rsa", { modulusLength: 2048 })],
    ["ssh-rsa", () => generateKeyPairSync("rsa", { modulusLength: 4096 })],
    ["ecdsa-sha2-nistp256", () => generateKeyPairSync("ec", { namedCurve: "P-256" })],
    ["ecdsa-sha2-nistp384", () => generateKeyPairSync("ec", { namedCurve: "P-384" })],
    ["ecdsa-sha2-nistp521", () => generateKeyPairSync("ec", { namedCurve: "P-521" })],
  ] as [string, () => KeyPair][])("accepts a %s key and stores its type, fingerprint and comment", async (keyType, generate) => {
    const account = await newAccount();
    const line = opensshLine(generate(), "alice@laptop");
    expect(line.startsWith(`${keyType} `)).toBe(true);

    const result = (await app.gql(ADD, { publicKey: `\n  ${line}  \n` }, account.token)).data.addSshKey;
    expect(result.__typename).toBe("MutationAddSshKeySuccess");
    expect(result.data).toMatchObject({ keyType, fingerprint: fingerprintOf(line), comment: "alice@laptop", publicKey: line });
    expect(result.data.id).toMatch(/^SshKey:\d+$/);

    const stored = await prisma.sshKey.findMany({ where: { userId: account.userId } });
    expect(stored).toMatchObject([{ keyType, fingerprint: fingerprintOf(line), comment: "alice@laptop", publicKey: line }]);
  });

  it("keeps a key without a comment", async () => {
    const account = await newAccount();
    const line = opensshLine(generateKeyPairSync("ed25519"));
    const result = (await app.gql(ADD, { publicKey: line }, account.token)).data.addSshKey;
    expect(result.data).toMatchObject({ comment: null, publicKey: line });
  });

  it.each([
    ["garbage", "hello world"],
    ["a truncated key", opensshLine(generateKeyPairSync("ed25519")).slice(0, 40)],
    ["a private key", generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString()],
    ["a DSA key", opensshLine(generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 }))],
    ["a 1024-bit RSA key", opensshLine(generateKeyPairSync("rsa", { modulusLength: 1024 }))],
    ["two keys at once", `${opensshLine(generateKeyPairSync("ed25519"))}\n${opensshLine(generateKeyPairSync("ed25519"))}`],
    ["an empty string", "   "],
    ["more than 16 KB", `ssh-ed25519 ${"A".repeat(16 * 1024)}`],
  ])("refuses %s with a ValidationError and writes nothing", async (_what, publicKey) => {
    const account = await newAccount();
    const before = await prisma.sshKey.count();
    const result = (await app.gql(ADD, { publicKey }, account.token)).data.addSshKey;
    expect(result).toMatchObject({ __typename: "ValidationError", code: "VALIDATION", issues: [{ path: ["publicKey"] }] });
    expect(await prisma.sshKey.count()).toBe(before);
  });

  it("names the reason for weak or unsupported keys", async () => {
    const account = await newAccount();
    const rsa = opensshLine(generateKeyPairSync("rsa", { modulusLength: 1024 }));
    const dsa = opensshLine(generateKeyPairSync("dsa", { modulusLength: 1024, divisorLength: 160 }));
    expect((await app.gql(ADD, { publicKey: rsa }, account.token)).data.addSshKey.issues[0].message).toMatch(/at least 2048 bits/);
    expect((await app.gql(ADD, { publicKey: dsa }, account.token)).data.addSshKey.issues[0].message).toMatch(/dsa keys are not accepted/);
  });

  it("refuses the same key twice for one account (whatever the comment) but not for another account", async () => {
    const first = await newAccount();
    const second = await newAccount();
    const pair = generateKeyPairSync("ed25519");
    expect((await app.gql(ADD, { publicKey: opensshLine(pair, "one") }, first.token)).data.addSshKey.__typename).toBe(
      "MutationAddSshKeySuccess",
    );
    const again = (await app.gql(ADD, { publicKey: opensshLine(pair, "two") }, first.token)).data.addSshKey;
    expect(again).toMatchObject({ __typename: "ConflictError", code: "CONFLICT" });
    expect(await prisma.sshKey.count({ where: { userId: first.userId } })).toBe(1);
    expect((await app.gql(ADD, { publicKey: opensshLine(pair) }, second.token)).data.addSshKey.__typename).toBe(
      "MutationAddSshKeySuccess",
    );
  });

  it(`holds at most ${MAX_SSH_KEYS_PER_ACCOUNT} keys per account`, async () => {
    const account = await newAccount();
    await prisma.sshKey.createMany({
      data: Array.from({ length: MAX_SSH_KEYS_PER_ACCOUNT }, (_, i) => ({
        userId: account.userId,
        publicKey: `ssh-ed25519 placeholder${i}`,
        keyType: "ssh-ed25519",
        fingerprint: `SHA256:placeholder${i}`,
      })),
    });
    const result = (await app.gql(ADD, { publicKey: opensshLine(generateKeyPairSync("ed25519")) }, account.token)).data
      .addSshKey;
    expect(result).toMatchObject({ __typename: "ConflictError", code: "CONFLICT" });
    expect(result.message).toMatch(/at most 50/);
    expect(await prisma.sshKey.count({ where: { userId: account.userId } })).toBe(MAX_SSH_KEYS_PER_ACCOUNT);
  });

  it("keeps the limit under concurrent adds", async () => {
    const account = await newAccount();
    await prisma.sshKey.createMany({
      data: Array.from({ length: MAX_SSH_KEYS_PER_ACCOUNT - 2 }, (_, i) => ({
        userId: account.userId,
        publicKey: `ssh-ed25519 placeholder${i}`,
        keyType: "ssh-ed25519",
        fingerprint: `SHA256:placeholder${i}`,
      })),
    });
    const results = await Promise.all(
      Array.from({ length: 6 }, () => app.gql(ADD, { publicKey: opensshLine(generateKeyPairSync("ed25519")) }, account.token)),
    );
    const types = results.map((r) => r.data.addSshKey.__typename).sort();
    expect(types).toEqual([...Array(4).fill("ConflictError"), ...Array(2).fill("MutationAddSshKeySuccess")]);
    expect(await prisma.sshKey.count({ where: { userId: account.userId } })).toBe(MAX_SSH_KEYS_PER_ACCOUNT);
  });

  it("returns NotAuthenticatedError as data without a key", async () => {
    const result = await app.gql(ADD, { publicKey: opensshLine(generateKeyPairSync("ed25519")) });
    expect(result.data.addSshKey).toMatchObject({ __typename: "NotAuthenticatedError", code: "UNAUTHENTICATED" });
  });
});

describe("sshKeys and removeSshKey", () => {
  it("lists only the caller's keys, also under me, oldest first", async () => {
    const account = await newAccount();
    const other = await newAccount();
    const lines = [opensshLine(generateKeyPairSync("ed25519"), "a"), opensshLine(generateKeyPairSync("ec", { namedCurve: "P-256" }), "b")];
    for (const publicKey of lines) await app.gql(ADD, { publicKey }, account.token);
    await app.gql(ADD, { publicKey: opensshLine(generateKeyPairSync("ed25519"), "other") }, other.token);

    const listed = (await app.gql("{ sshKeys { nodes { comment } } me { sshKeys { nodes { comment } } } }", {}, account.token)).data;
    expect(listed.sshKeys.nodes).toEqual([{ comment: "a" }, { comment: "b" }]);
    expect(listed.me.sshKeys).toEqual(listed.sshKeys);
  });

  it("removes the caller's key and returns it", async () => {
    const account = await newAccount();
    const added = (await app.gql(ADD, { publicKey: opensshLine(generateKeyPairSync("ed25519"), "gone") }, account.token)).data
      .addSshKey.data;
    const removed = (await app.gql(REMOVE, { id: added.id }, account.token)).data.removeSshKey;
    expect(removed).toEqual({ __typename: "MutationRemoveSshKeySuccess", data: added });
    expect((await app.gql("{ sshKeys { nodes { id } } }", {}, account.token)).data.sshKeys.nodes).toEqual([]);
    const again = (await app.gql(REMOVE, { id: added.id }, account.token)).data.removeSshKey;
    expect(again).toMatchObject({ __typename: "NotFoundError", code: "NOT_FOUND" });
  });

  it("treats another account's key like a missing one and keeps it", async () => {
    const owner = await newAccount();
    const intruder = await newAccount();
    const added = (await app.gql(ADD, { publicKey: opensshLine(generateKeyPairSync("ed25519")) }, owner.token)).data.addSshKey
      .data;
    const result = (await app.gql(REMOVE, { id: added.id }, intruder.token)).data.removeSshKey;
    expect(result).toEqual({ __typename: "NotFoundError", code: "NOT_FOUND", message: "SshKey not found" });
    expect(await prisma.sshKey.count({ where: { userId: owner.userId } })).toBe(1);
  });

  it.each([["ApiKey:1"], ["SshKey:x"], ["SshKey:0"]])("refuses the id %j with a ValidationError", async (id) => {
    const account = await newAccount();
    const result = (await app.gql(REMOVE, { id }, account.token)).data.removeSshKey;
    expect(result).toMatchObject({ __typename: "ValidationError", issues: [{ path: ["id"] }] });
  });

  it("is an UNAUTHENTICATED error to list without a key", async () => {
    const result = await app.gql("{ sshKeys { nodes { id } } }");
    expect(result.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
  });
});
