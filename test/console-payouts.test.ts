import { deliver, fakeStripe, signedEvent } from "./support/fake-stripe.ts";
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { createAccount } from "../domain/accounts.ts";
import { prisma } from "../infra/db.ts";
import { eventually, useConsoleServer } from "./support/browser.ts";

// A host in Chromium sets up payouts: the account page sends it to Stripe's onboarding (played by the
// test: Stripe reports the account can receive payouts and sends the browser back), and the page
// then shows payouts enabled.
const server = useConsoleServer();

it("onboards a host for payouts through Stripe's hosted onboarding", async () => {
  const email = `payee-${randomBytes(4).toString("hex")}@example.com`;
  const { userId } = await createAccount({ email, password: "the host's password" });
  const { page } = await server.newPage();
  await page.goto("/login");
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill("the host's password");
  await page.getByRole("button", { name: "Log in" }).click();
  await eventually(() => page.url()).toContain("/instances");

  await page.route("https://connect.stripe.test/**", async (route) => {
    const accountId = new URL(route.request().url()).pathname.split("/")[3];
    const account = { id: accountId, object: "account", type: "express", payouts_enabled: true, charges_enabled: true, details_submitted: true };
    expect((await deliver(server.origin, signedEvent("account.updated", account))).status).toBe(200);
    await route.fulfill({ status: 303, headers: { location: `${server.origin}/account?payouts=return` } });
  });
  await page.goto("/account");
  await eventually(() => page.getByTestId("payouts").textContent()).toBe("Not set up");
  await page.getByRole("button", { name: "Set up payouts with Stripe" }).click();
  await eventually(() => page.url()).toContain("/account?payouts=return");
  await eventually(() => page.getByTestId("payouts").textContent()).toBe("Payouts enabled: earnings are paid on Fridays");
  const host = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
  expect(host).toMatchObject({ payoutsEnabled: true, stripeConnectAccountId: expect.stringMatching(/^acct_/) });
  expect(fakeStripe.requestsTo("POST", "/v1/accounts").at(-1)!.body.email).toBe(email);
});
