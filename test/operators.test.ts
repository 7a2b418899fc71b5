import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";

const app = useTestApp();
const run = promisify(execFile);

/** The administrators' tool as people run it: `npm run admin -- <args>`, against this file's database. */
async function admin(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run("npm", ["run", "-s", "admin", "--", ...args], { env: process.env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const emailOf = async (userId: number) => (await prisma.user.findUniqueOrThrow({ where: { id: userId } })).email;
const ME = "{ me { operator } }";

describe("the operator role", () => {
  it("is granted and revoked by the admin tool, and a key has it from its next request", async () => {
    const account = await createAccount("staff");
    const email = await emailOf(account.userId);
    expect((await app.gql(ME, {}, account.key)).data.me.operator).toBe(false);

    const granted = await admin("grant-operator", email.toUpperCase());
    expect(granted, granted.stderr).toMatchObject({ code: 0 });
    expect(granted.stdout).toContain(`${email} (User:${account.userId}) is now an operator`);
    expect((await app.gql(ME, {}, account.key)).data.me.operator).toBe(true);
    expect((await admin("list-operators")).stdout).toContain(email);

    const revoked = await admin("revoke-operator", email);
    expect(revoked.code).toBe(0);
    expect((await app.gql(ME, {}, account.key)).data.me.operator).toBe(false);
    expect((await admin("list-operators")).stdout).not.toContain(email);
  }, 120_000);

  it("refuses an unknown account or a malformed command and writes nothing", async () => {
    const before = await prisma.user.count({ where: { operator: true } });
    const unknown = await admin("grant-operator", "nobody-at-all@example.com");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("Account not found");
    const malformed = await admin("grant-operator", "not an email");
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain("email");
    const usage = await admin("grant-operator");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("Usage: npm run admin");
    expect(await prisma.user.count({ where: { operator: true } })).toBe(before);
  }, 120_000);
});
