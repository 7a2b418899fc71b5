import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { createAccount, login } from "../domain/accounts.ts";
import { requestPasswordReset } from "../domain/passwords.ts";
import { requestEmailVerification } from "../domain/trust.ts";
import { prisma } from "../infra/db.ts";
import { eventually, useConsoleServer } from "./support/browser.ts";

// The links of account emails, opened in Chromium: the verification link verifies the address, the
// reset link sets a new password and signs the visitor in, whose account page then shows the
// verification and the spend limit, and makes a read-only key.
const server = useConsoleServer();

/** The token of the last email of `kind` queued for the account (what the link in it carries). */
async function mailedToken(userId: number, kind: "EMAIL_VERIFICATION" | "PASSWORD_RESET"): Promise<string> {
  const mail = await prisma.notificationOutbox.findFirstOrThrow({ where: { userId, kind }, orderBy: { id: "desc" } });
  return /token=(gmt_[A-Za-z0-9_-]+)/.exec(mail.body)![1];
}

it("the verification link verifies the address; the reset link sets a new password and signs in", async () => {
  const email = `links-${randomBytes(4).toString("hex")}@example.com`;
  const { userId } = await createAccount({ email, password: "the first password" });
  const { page } = await server.newPage();

  await requestEmailVerification(userId);
  await page.goto(`/verify-email?token=${await mailedToken(userId, "EMAIL_VERIFICATION")}`);
  await eventually(() => page.locator(".alert.success").textContent()).toContain(`${email} is verified.`);
  expect((await prisma.user.findUniqueOrThrow({ where: { id: userId } })).emailVerified).toBe(true);

  await requestPasswordReset({ email });
  const token = await mailedToken(userId, "PASSWORD_RESET");
  await page.goto(`/reset-password?token=${token}`);
  await page.getByLabel("New password").fill("the second password");
  await page.getByRole("button", { name: "Set the password" }).click();
  await eventually(() => page.url()).toContain("/account");
  // Signed in: the account page shows the verification and what raises the spend limit.
  await eventually(() => page.getByTestId("verification").textContent()).toBe("Email verified · card not verified");
  await eventually(() => page.getByTestId("spend-limit").textContent()).toContain("EMAIL_VERIFIED, $20.00/hr");
  await expect(page.getByRole("button", { name: "Add a card" }).count()).resolves.toBe(1);

  // A read-only key made on the account page reads the account and rents nothing.
  await page.getByLabel("New key name").fill("dashboard");
  await page.getByLabel("Read-only").check();
  await page.getByRole("button", { name: "Create key" }).click();
  await eventually(() => page.getByTestId("issued-key").textContent()).toMatch(/^gmk_/);
  const readOnly = (await page.getByTestId("issued-key").textContent())!;
  await eventually(() => page.getByRole("row", { name: /dashboard/ }).textContent()).toContain("READ");
  const gql = async (query: string) =>
    (await fetch(`${server.origin}/graphql`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${readOnly}` }, body: JSON.stringify({ query }) })).json();
  expect((await gql("{ me { email } }")).data.me.email).toBe(email);
  const rent = await gql(`mutation { createInstance(input: { offerId: "1-1", image: "x", diskGb: 10, launchMode: SSH }) { __typename } }`);
  expect(rent.data.createInstance.__typename).toBe("ForbiddenError");
  await expect(login({ email, password: "the second password" }, `10.9.${randomBytes(1)[0]}.1`)).resolves.toMatchObject({ userId });

  // The link works once.
  await page.goto(`/reset-password?token=${token}`);
  await page.getByLabel("New password").fill("a third password");
  await page.getByRole("button", { name: "Set the password" }).click();
  await eventually(() => page.locator(".alert.error").textContent()).toContain("This link was used already");
});
