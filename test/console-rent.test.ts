import { fakeStripe, deliver, signedEvent } from "./support/fake-stripe.ts";
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { prisma } from "../infra/db.ts";
import { eventually, useConsoleServer } from "./support/browser.ts";

// A new client in Chromium: signs up, pays on (the local stand-in for) Stripe Checkout, bids for a
// demo machine that has a demo agent, watches it reach RUNNING and the balance fall without a reload,
// then stops and destroys it.
const server = useConsoleServer();

const dollars = (text: string | null) => Number((text ?? "").replace(/[^0-9.-]/g, ""));

/** Stripe's hosted page, played by the test: the payment succeeds, Stripe calls the webhook, the browser returns. */
async function payOnCheckout(page: Page): Promise<void> {
  await page.route("https://checkout.stripe.test/**", async (route) => {
    const sessionId = new URL(route.request().url()).pathname.split("/").pop()!;
    const created = fakeStripe.requestsTo("POST", "/v1/checkout/sessions").at(-1)!.body;
    const session = {
      id: sessionId,
      object: "checkout.session",
      mode: "payment",
      payment_status: "paid",
      status: "complete",
      amount_total: Number(created["line_items[0][price_data][unit_amount]"]),
      currency: "usd",
      payment_intent: `pi_for_${sessionId}`,
      metadata: { userId: created["metadata[userId]"], saveCard: created["metadata[saveCard]"] ?? "false", paymentId: created["metadata[paymentId]"] },
    };
    expect((await deliver(server.origin, signedEvent("checkout.session.completed", session))).status).toBe(200);
    await route.fulfill({ status: 303, headers: { location: `${server.origin}/billing?checkout=success&session_id=${sessionId}` } });
  });
}

it("signs up, adds credit, rents with a bid, sees it run and the balance fall live, stops and destroys it", async () => {
  const { page } = await server.newPage();
  const email = `renter-${Date.now()}@example.com`;
  await page.goto("/signup");
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill("correct horse battery");
  await page.getByRole("button", { name: "Create an account" }).click();
  // The account exists once the link mailed to the address is opened.
  await eventually(() => page.locator(".alert.success").textContent()).toContain(`We sent a link to ${email}.`);
  const mail = await prisma.notificationOutbox.findFirstOrThrow({ where: { recipient: email, kind: "SIGNUP_LINK" } });
  await page.goto(`/complete-signup?token=${/token=(gmt_[A-Za-z0-9_-]+)/.exec(mail.body)![1]}`);
  await eventually(() => page.url()).toContain("/account");
  const balance = page.getByTestId("balance");
  await eventually(() => balance.textContent()).toBe("$0.00");

  // Credit through Checkout: the header's balance follows the webhook without a reload.
  await payOnCheckout(page);
  await page.goto("/account");
  await page.getByLabel("Amount ($)", { exact: true }).fill("20.00");
  await page.getByRole("button", { name: "Add credit" }).click();
  await eventually(() => page.url()).toContain("/billing?checkout=success");
  await eventually(() => balance.textContent(), 30_000).toBe("$20.00");

  // The session survives a reload.
  await page.reload();
  await eventually(() => balance.textContent()).toBe("$20.00");

  // The interruptible view of a machine with a demo agent, found with the query box.
  const machine = await prisma.machine.findFirstOrThrow({ orderBy: { id: "asc" } });
  await page.goto(`/?type=bid&q=${encodeURIComponent(`machine_id=${machine.id}`)}`);
  await page.getByRole("link", { name: /^Bid: / }).first().click();
  await eventually(() => page.getByLabel("Docker image").count()).toBe(1);
  expect(await page.getByLabel("Interruptible bid").isChecked()).toBe(true);

  // A bid below the machine's minimum is refused next to the bid field, and nothing is created.
  await page.getByLabel("Bid per GPU-hour ($)", { exact: true }).fill("0.001");
  await page.getByRole("button", { name: "Place bid and rent" }).click();
  await eventually(() => page.locator(".field.invalid input[name=bid]").count()).toBe(1);
  expect(await prisma.instance.count()).toBe(0);

  // An invalid disk size is named next to the disk field.
  await page.getByLabel("Bid per GPU-hour ($)", { exact: true }).fill("");
  await page.getByLabel("Disk (GB)").fill("0");
  await page.getByRole("button", { name: "Place bid and rent" }).click();
  await eventually(() => page.locator(".field.invalid input[name=diskGb]").count()).toBe(1);
  expect(await prisma.instance.count()).toBe(0);

  await page.getByLabel("Disk (GB)").fill("10");
  await page.getByLabel("Label").fill("browser-bid");
  await page.getByLabel("On-start script").fill("echo hello-from-the-container");
  await page.getByRole("button", { name: "Place bid and rent" }).click();
  await eventually(() => page.url()).toMatch(/\/instances\/[^/]+$/);
  const instance = await prisma.instance.findFirstOrThrow();
  expect(instance.kind).toBe("INTERRUPTIBLE");
  expect(instance.machineId).toBe(machine.id);

  // The demo agent starts it: RUNNING appears without a reload, and metering lowers the balance.
  const status = page.locator("h1 .status");
  await eventually(() => status.textContent(), 60_000).toBe("RUNNING");
  // Its output follows on the page, and the connection details the agent reported appear.
  await eventually(() => page.getByTestId("logs").textContent(), 30_000).toContain("hello-from-the-container");
  await eventually(() => page.getByLabel("SSH command").textContent(), 30_000).toMatch(/^ssh -p \d+ root@\S+$/);
  await eventually(async () => dollars(await balance.textContent()), 30_000).toBeLessThan(20);
  const whileRunning = dollars(await balance.textContent());
  await eventually(async () => dollars(await balance.textContent()), 30_000).toBeLessThan(whileRunning);
  await eventually(() => page.locator("table tbody td[data-label=Status]").allTextContents()).toContain("LOADING → RUNNING");

  // The live list shows it too.
  const { page: list } = await server.newPage();
  await list.addInitScript((session) => localStorage.setItem("gm.session", session), await page.evaluate(() => localStorage.getItem("gm.session")!));
  await list.goto("/instances");
  await eventually(() => list.locator("tbody td[data-label=Status]").allTextContents()).toEqual(["RUNNING"]);
  await eventually(async () => dollars(await list.locator("tbody td[data-label='Cost so far']").textContent()), 40_000).toBeGreaterThan(0);

  // A reboot takes it through LOADING back to RUNNING, live on the page.
  await page.getByRole("button", { name: "Reboot" }).click();
  await eventually(async () => (await page.locator("table tbody td[data-label=Status]").allTextContents()).filter((t) => t === "LOADING → RUNNING").length, 60_000).toBe(2);
  await eventually(() => status.textContent()).toBe("RUNNING");

  // Changing the bid: one below the machine's minimum is named next to the field and changes nothing;
  // a higher one becomes the instance's bid.
  const bidForm = page.getByRole("form", { name: "Change bid" });
  const placed = (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).bidPerGpuHourMicros!;
  await bidForm.getByLabel("New bid per GPU-hour ($)").fill("0.001");
  await bidForm.getByRole("button", { name: "Change bid" }).click();
  await eventually(() => bidForm.locator(".field.invalid input[name=bid]").count()).toBe(1);
  expect((await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).bidPerGpuHourMicros).toBe(placed);
  const raised = placed + 10_000n;
  await bidForm.getByLabel("New bid per GPU-hour ($)").fill(`${raised / 1_000_000n}.${String(raised % 1_000_000n).padStart(6, "0")}`);
  await bidForm.getByRole("button", { name: "Change bid" }).click();
  await eventually(() => bidForm.getByRole("status").textContent()).toBe("Bid changed.");
  expect((await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).bidPerGpuHourMicros).toBe(raised);

  // A new label: the page's title follows, and the list shows it when next opened.
  const labelForm = page.getByRole("form", { name: "Label" });
  await labelForm.getByLabel("Label").fill("renamed-in-browser");
  await labelForm.getByRole("button", { name: "Save label" }).click();
  await eventually(() => page.locator("h1").textContent()).toContain("renamed-in-browser");
  await list.reload();
  await eventually(() => list.locator("tbody td[data-label=Instance] a").textContent()).toContain("renamed-in-browser");
  expect((await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).label).toBe("renamed-in-browser");

  // Stopped, then started again: the page follows each change without a reload.
  await page.getByRole("button", { name: "Stop" }).click();
  await eventually(() => status.textContent(), 30_000).toBe("STOPPED");
  await eventually(() => list.locator("tbody td[data-label=Status]").allTextContents(), 30_000).toEqual(["STOPPED"]);
  await page.getByRole("button", { name: "Start" }).click();
  await eventually(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).intendedStatus).toBe("RUNNING");
  await eventually(() => status.textContent(), 30_000).toBe("RUNNING");
  await eventually(() => list.locator("tbody td[data-label=Status]").allTextContents(), 30_000).toEqual(["RUNNING"]);

  await page.getByRole("button", { name: "Stop" }).click();
  await eventually(() => status.textContent(), 30_000).toBe("STOPPED");

  await page.getByRole("button", { name: "Destroy…" }).click();
  await page.getByRole("button", { name: "Destroy for good" }).click();
  await eventually(() => page.url()).toMatch(/\/instances$/);
  expect((await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).status).toBe("DESTROYED");
  await eventually(() => list.locator("tbody td.empty").count(), 30_000).toBe(1);

  // Logging out ends the session: the page forgets it, a reload stays signed out, and the key the
  // signup issued for it is revoked (a copy of it, as the other tab holds, is refused).
  const sessionKey = (JSON.parse((await page.evaluate(() => localStorage.getItem("gm.session")))!) as { apiKey: string }).apiKey;
  const me = async () =>
    (await (await fetch(`${server.origin}/graphql`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${sessionKey}` }, body: JSON.stringify({ query: "{ me { email } }" }) })).json()) as {
      data?: { me: { email: string } } | null;
      errors?: { extensions: { code: string } }[];
    };
  expect((await me()).data?.me.email).toBe(email);
  await page.getByRole("button", { name: "Log out" }).click();
  await eventually(() => page.locator("header").getByRole("link", { name: "Log in" }).count()).toBe(1);
  expect(await page.evaluate(() => localStorage.getItem("gm.session"))).toBeNull();
  await eventually(async () => (await me()).errors?.[0]?.extensions.code).toBe("UNAUTHENTICATED");
  await page.goto("/instances");
  await eventually(() => page.getByRole("heading", { name: "Log in to see your instances" }).count()).toBe(1);
  expect(await page.getByTestId("balance").count()).toBe(0);
  // A deliberate log out is not reported as a revoked session.
  expect(await page.getByText("its API key was revoked").count()).toBe(0);
}, 240_000);

it("rents on demand in Jupyter mode with env and ports, and shows the Jupyter link and the mapped ports the agent reported", async () => {
  const clientKey = server.keys["client@demo.local"];
  const { context, page } = await server.newPage();
  await context.addInitScript((session) => localStorage.setItem("gm.session", session), JSON.stringify({ apiKey: clientKey, email: "client@demo.local" }));
  const machine = await prisma.machine.findFirstOrThrow({ orderBy: { id: "asc" } });
  await page.goto(`/?q=${encodeURIComponent(`machine_id=${machine.id}`)}`);
  await page.getByRole("link", { name: /^Rent: / }).first().click();
  await eventually(() => page.getByLabel("Docker image").count()).toBe(1);
  expect(await page.getByRole("radio", { name: /On-demand at/ }).isChecked()).toBe(true);
  await page.getByRole("radio", { name: "Jupyter" }).check();
  await page.getByLabel("Environment").fill("TRAINING_RUN=42");

  // A malformed port is named next to the ports field, and nothing is rented.
  await page.getByLabel("Ports", { exact: true }).fill("http");
  await page.getByRole("button", { name: "Rent now" }).click();
  await eventually(() => page.locator(".field.invalid input[name=ports]").count()).toBe(1);
  expect(await prisma.instance.count({ where: { client: { email: "client@demo.local" } } })).toBe(0);

  await page.getByLabel("Ports", { exact: true }).fill("8081");
  await page.getByRole("button", { name: "Rent now" }).click();
  await eventually(() => page.url()).toMatch(/\/instances\/[^/]+$/);
  const instance = await prisma.instance.findFirstOrThrow({ where: { client: { email: "client@demo.local" } } });
  expect(instance).toMatchObject({ kind: "ON_DEMAND", launchMode: "JUPYTER", ports: ["8081"] });
  await eventually(() => page.locator("h1 .status").textContent(), 60_000).toBe("RUNNING");
  await expect(page.locator("dd", { hasText: "TRAINING_RUN" }).count()).resolves.toBe(1);

  // The connection details are the API's: the Jupyter link and each container port's external one.
  const response = await fetch(`${server.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
    body: JSON.stringify({ query: `{ instance(id: "Instance:${instance.id}") { connection { publicHost jupyterUrl ports { containerPort hostPort protocol } } } }` }),
  });
  const { connection } = ((await response.json()) as { data: { instance: { connection: { publicHost: string; jupyterUrl: string | null; ports: { containerPort: number; hostPort: number; protocol: string }[] } } } }).data.instance;
  expect(connection.jupyterUrl).toBeTruthy();
  expect(connection.ports.map((p) => p.containerPort)).toContain(8081);
  await eventually(() => page.getByRole("link", { name: "Open Jupyter" }).getAttribute("href"), 30_000).toBe(connection.jupyterUrl);
  await eventually(() => page.getByRole("region", { name: "Connect" }).locator("dt:text-is('Ports') + dd").textContent()).toBe(
    connection.ports.map((p) => `${p.containerPort}/${p.protocol} → ${connection.publicHost}:${p.hostPort}`).join(", "),
  );

  await page.getByRole("button", { name: "Destroy…" }).click();
  await page.getByRole("button", { name: "Destroy for good" }).click();
  await eventually(async () => (await prisma.instance.findUniqueOrThrow({ where: { id: instance.id } })).status).toBe("DESTROYED");
}, 150_000);
