import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Locator, Page } from "playwright-core";
import { expect, it } from "vitest";
import { runMarketSampler } from "../domain/market/sampler.ts";
import { toMicros } from "../client/web/src/format.ts";
import { prisma } from "../infra/db.ts";
import { eventually, useConsoleServer } from "./support/browser.ts";

// Hosts, analysts and account owners in Chromium against `npm start`: listing and repricing a machine
// as seen by another visitor's search, the price history chart, the account's keys, settings and
// statements, and a revoked key signing the page out.
const server = useConsoleServer();

async function signInWithKey(page: Page, key: string): Promise<void> {
  await page.goto("/login");
  await page.getByLabel("API key", { exact: true }).fill(key);
  await page.getByRole("button", { name: "Use this key" }).click();
  await eventually(() => page.getByTestId("balance").count()).toBe(1);
}

/** How many of the chart's canvas pixels are exactly this colour ("#rrggbb"): what uPlot drew of a series. */
function pixelsOf(chart: Locator, color: string): Promise<number> {
  const [r, g, b] = [1, 3, 5].map((at) => parseInt(color.slice(at, at + 2), 16));
  return chart.locator("canvas").evaluate(
    (canvas: HTMLCanvasElement, [r, g, b]) => {
      const { data } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) count++;
      return count;
    },
    [r, g, b],
  );
}

async function gql(query: string, variables: Record<string, unknown>, key?: string) {
  const response = await fetch(`${server.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data: any };
}

it("a host unlists a machine, lists it again at a new price, and another visitor's search shows each change", async () => {
  const machine = await prisma.machine.findFirstOrThrow({ orderBy: { id: "desc" } });
  const search = `/?verified=any&q=${encodeURIComponent(`machine_id=${machine.id}`)}`;
  const priceCells = (page: Page) => page.locator("tbody td[data-label^='$/hr']").allTextContents();
  const apiPrices = async () =>
    (
      await gql(`query($q: String) { offers(query: $q, filter: { verified: null }) { edges { node { dphTotal } } } }`, { q: `machine_id=${machine.id}` })
    ).data.offers.edges.map((e: { node: { dphTotal: string } }) => e.node.dphTotal);

  const { page: visitor } = await server.newPage();
  await visitor.goto(search);
  await eventually(async () => (await priceCells(visitor)).length).toBeGreaterThan(0);
  const before = await priceCells(visitor);

  const { page: host } = await server.newPage();
  await signInWithKey(host, server.keys["host@demo.local"]);
  await host.goto("/host");
  const row = host.locator("tbody tr").filter({ hasText: `#${machine.id} ·` });
  await eventually(() => row.count()).toBe(1);
  await row.getByRole("button", { name: "Unlist" }).click();
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machine.id } })).listed).toBe(false);
  await visitor.goto(search);
  await eventually(() => visitor.locator("tbody td.empty").count()).toBe(1);

  await eventually(() => row.getByRole("button", { name: "List…" }).count()).toBe(1);
  await row.getByRole("button", { name: "List…" }).click();
  const form = host.getByRole("form", { name: `Listing of machine ${machine.id}` });
  // A min bid above the price is refused next to its field; the machine stays unlisted.
  await form.getByLabel("Price $/GPU·h").fill("0.777");
  await form.getByLabel("Min bid $/GPU·h").fill("9");
  await form.getByRole("button", { name: "List" }).click();
  await eventually(() => form.locator(".field.invalid input[name=minBid]").count()).toBe(1);
  expect((await prisma.machine.findUniqueOrThrow({ where: { id: machine.id } })).listed).toBe(false);
  await form.getByLabel("Min bid $/GPU·h").fill("0.3");
  await form.getByRole("button", { name: "List" }).click();
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: machine.id } })).pricePerGpuHourMicros).toBe(777_000n);
  await eventually(() => row.locator("td[data-label='$/GPU·h']").textContent()).toBe("$0.777");

  await visitor.goto(search);
  await eventually(async () => (await priceCells(visitor)).length).toBeGreaterThan(0);
  const after = await priceCells(visitor);
  expect(after).not.toEqual(before);
  // As the API prices the offers now, to the tenth of a cent and beyond when exact (the console never rounds money).
  const shown = (price: string) => {
    const [whole, fraction = ""] = price.split(".");
    return `$${whole}.${fraction.replace(/0+$/, "").padEnd(3, "0")}`;
  };
  expect(after).toEqual((await apiPrices()).map(shown));
}, 120_000);

it("draws the price history chart from the market's samples", async () => {
  // A running interruptible rental of an RTX 4090 (a demo agent runs it), so the market has bids.
  const machine = await prisma.machine.findFirstOrThrow({ where: { gpuName: "RTX 4090" }, orderBy: { id: "asc" } });
  const offers = await gql(`query($q: String) { offers(query: $q, first: 1, filter: { rentable: null }) { edges { node { id winningBid } } } }`, { q: `machine_id=${machine.id}` });
  const offer = offers.data.offers.edges[0].node;
  const bid = await gql(
    `mutation($input: CreateInstanceInput!) { createInstance(input: $input) { __typename } }`,
    { input: { offerId: offer.id, image: "busybox", diskGb: 10, launchMode: "ENTRYPOINT", bidPricePerGpuHour: offer.winningBid } },
    server.keys["client@demo.local"],
  );
  expect(bid.data.createInstance.__typename).toBe("MutationCreateInstanceSuccess");
  await eventually(async () => (await prisma.instance.findFirstOrThrow({ where: { kind: "INTERRUPTIBLE", machineId: machine.id } })).status, 60_000).toBe("RUNNING");
  // An hour of minute samples of today's market, taken by the real sampler.
  const now = Date.now();
  for (let minutes = 60; minutes >= 1; minutes--) await runMarketSampler(prisma, new Date(now - minutes * 60_000));
  const { page } = await server.newPage();
  await page.goto("/market?gpu=RTX+4090&range=6h&bucket=MINUTE");
  const chart = page.locator("figure.chart");
  await eventually(async () => Number(await chart.getAttribute("data-points"))).toBeGreaterThanOrEqual(60);
  // uPlot drew the series: the median on-demand and the lowest bid lines' colours are on the canvas.
  expect(await pixelsOf(chart, "#1d4ed8")).toBeGreaterThan(50);
  expect(await pixelsOf(chart, "#be185d")).toBeGreaterThan(50);
  await eventually(() => page.locator("tbody tr").filter({ hasText: "RTX 4090" }).count()).toBe(1);
}, 120_000);

it("signs the page out when its key is revoked", async () => {
  const clientKey = server.keys["client@demo.local"];
  const issued = (await gql(`mutation { createApiKey(name: "browser") { ... on MutationCreateApiKeySuccess { data { token apiKey { id } } } } }`, {}, clientKey)).data
    .createApiKey.data;
  const { page } = await server.newPage();
  await signInWithKey(page, issued.token);
  await page.reload();
  await eventually(() => page.getByTestId("balance").textContent()).toMatch(/^\$/);
  const revoked = await gql(`mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }`, { id: issued.apiKey.id }, clientKey);
  expect(revoked.data.revokeApiKey.__typename).toBe("MutationRevokeApiKeySuccess");
  // The server closes the subscription socket (4403) within WS_KEY_RECHECK_SECONDS; the page signs out.
  await eventually(() => page.locator("header").getByRole("link", { name: "Log in" }).count(), 40_000).toBe(1);
  expect(await page.getByTestId("balance").count()).toBe(0);
  expect(await page.evaluate(() => localStorage.getItem("gm.session"))).toBeNull();
  await eventually(() => page.getByText("its API key was revoked").count()).toBe(1);
}, 90_000);

it("manages API keys, SSH keys and alert settings, and exports the statements as CSV", async () => {
  const { page } = await server.newPage();
  await signInWithKey(page, server.keys["client@demo.local"]);
  await page.goto("/account");

  // The demo credit is on the statement, and the export is a CSV of the same rows.
  const invoices = page.getByRole("table", { name: "Invoices" });
  await eventually(() => invoices.locator("tbody td[data-label=Amount]").allTextContents()).toContain("$100.00");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export invoices (CSV)" }).click()]);
  const csv = readFileSync((await download.path())!, "utf8").trim().split("\n");
  expect(csv[0]).toBe("at,kind,status,description,amount");
  const from = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
  const api = await gql(`query($from: DateTime!, $to: DateTime!) { invoices(from: $from, to: $to, first: 100) { totalCount nodes { amount } } }`, { from: `${from}T00:00:00.000Z`, to: new Date(Date.now() + 86_400_000).toISOString() }, server.keys["client@demo.local"]);
  expect(csv.slice(1).map((line) => line.split(",").at(-1))).toEqual(api.data.invoices.nodes.map((i: { amount: string }) => i.amount));
  expect(csv.length).toBeGreaterThan(1);

  // A key is issued and shown once; revoking it marks it revoked.
  await page.getByLabel("New key name").fill("ci deploys");
  await page.getByRole("button", { name: "Create key" }).click();
  await eventually(() => page.getByTestId("issued-key").textContent()).toMatch(/\S{20,}/);
  const keys = page.getByRole("table", { name: "API keys" });
  await eventually(() => keys.locator("tbody tr").filter({ hasText: "ci deploys" }).count()).toBe(1);
  await page.getByRole("button", { name: "Revoke ci deploys" }).click();
  await eventually(() => keys.locator("tbody tr").filter({ hasText: "ci deploys" }).filter({ hasText: "revoked" }).count()).toBe(1);

  // A malformed SSH key is refused next to the field; a real one is listed, then removed.
  await page.getByLabel("Public key").fill("ssh-ed25519 not-a-key");
  await page.getByRole("button", { name: "Add SSH key" }).click();
  await eventually(() => page.locator(".field.invalid textarea[name=publicKey]").count()).toBe(1);
  const dir = mkdtempSync(join(tmpdir(), "console-ssh-"));
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", join(dir, "key")]);
  await page.getByLabel("Public key").fill(readFileSync(join(dir, "key.pub"), "utf8").trim());
  await page.getByRole("button", { name: "Add SSH key" }).click();
  const sshKeys = page.getByRole("table", { name: "SSH keys" });
  await eventually(() => sshKeys.locator("tbody tr").filter({ hasText: "laptop" }).count()).toBe(1);
  await sshKeys.getByRole("button", { name: /^Remove SHA256:/ }).click();
  await eventually(() => sshKeys.locator("tbody td.empty").count()).toBe(1);

  // The balance alert threshold is saved; a malformed amount is named next to its field.
  await page.getByLabel("Email me when the balance falls below ($)").fill("abc");
  await page.getByRole("button", { name: "Save settings" }).click();
  await eventually(() => page.locator(".field.invalid input[name=balanceAlertThreshold]").count()).toBe(1);
  await page.getByLabel("Email me when the balance falls below ($)").fill("12.50");
  await page.getByRole("button", { name: "Save settings" }).click();
  await eventually(() => page.getByRole("status").filter({ hasText: "Saved." }).count()).toBe(1);
  const settings = await gql(`{ billingSettings { balanceAlertThreshold } }`, {}, server.keys["client@demo.local"]);
  expect(settings.data.billingSettings.balanceAlertThreshold).toBe("12.50");
}, 90_000);

it("shows a host's machines with status, metrics and reliability, sets an end date, charts earnings per day and estimates new hardware", async () => {
  const hostKey = server.keys["host@demo.local"];
  // A rental on one of the host's machines, so that metering credits the host with earnings.
  const machine = await prisma.machine.findFirstOrThrow({ orderBy: { id: "asc" } });
  const offers = await gql(`query($q: String) { offers(query: $q, first: 1) { edges { node { id } } } }`, { q: `machine_id=${machine.id}` });
  const rented = await gql(
    `mutation($input: CreateInstanceInput!) { createInstance(input: $input) { __typename } }`,
    { input: { offerId: offers.data.offers.edges[0].node.id, image: "busybox", diskGb: 10, launchMode: "ENTRYPOINT" } },
    server.keys["client@demo.local"],
  );
  expect(rented.data.createInstance.__typename).toBe("MutationCreateInstanceSuccess");
  const range = { from: new Date(Date.now() - 30 * 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() };
  const earned = async () => {
    const { data } = await gql(`query($from: DateTime!, $to: DateTime!) { earnings(from: $from, to: $to, first: 100) { nodes { total } } }`, range, hostKey);
    return data.earnings.nodes.reduce((sum: bigint, row: { total: string }) => sum + toMicros(row.total), 0n);
  };
  await eventually(earned, 60_000).toBeGreaterThan(0n);

  const { page } = await server.newPage();
  await signInWithKey(page, hostKey);
  await page.goto("/host");

  // Each machine as the API has it: online and listed or not, verification, reliability, GPU metrics.
  const { data } = await gql(`{ myMachines(first: 100) { nodes { id online listed verification reliability metrics { gpuUtilization } } } }`, {}, hostKey);
  const machines = page.getByRole("table", { name: "Your machines" });
  await eventually(() => machines.locator("tbody tr").count()).toBe(data.myMachines.nodes.length);
  for (const m of data.myMachines.nodes as { id: string; online: boolean; listed: boolean; verification: string; reliability: number; metrics: { gpuUtilization: number[] | null } | null }[]) {
    const row = machines.locator("tbody tr").filter({ hasText: `#${m.id.replace(/^Machine:/, "")} ·` });
    await expect(row.locator("td[data-label=Status]").textContent()).resolves.toBe(`${m.online ? "online" : "offline"} ${m.listed ? "listed" : "unlisted"} · ${m.verification.toLowerCase()}`);
    await expect(row.locator("td[data-label=Reliability]").textContent()).resolves.toBe(`${(m.reliability * 100).toFixed(2)}%`);
    if (m.metrics?.gpuUtilization?.length) await expect(row.locator("td[data-label='GPU util / temp']").textContent()).resolves.toMatch(/^\d+% .* \/ /);
  }

  // The listing's end date, set on the page, is the machine's.
  const last = await prisma.machine.findFirstOrThrow({ where: { listed: true }, orderBy: { id: "desc" } });
  const endDay = new Date(Date.now() + 45 * 86_400_000).toISOString().slice(0, 10);
  const row = machines.locator("tbody tr").filter({ hasText: `#${last.id} ·` });
  await row.getByRole("button", { name: "Edit listing" }).click();
  const form = page.getByRole("form", { name: `Listing of machine ${last.id}` });
  await form.getByLabel("End date").fill(endDay);
  await form.getByRole("button", { name: "Update listing" }).click();
  await eventually(async () => (await prisma.machine.findUniqueOrThrow({ where: { id: last.id } })).endDate?.toISOString().slice(0, 10)).toBe(endDay);
  await eventually(() => row.locator("td[data-label=Ends]").textContent()).toBe(endDay);

  // Earnings per day: the chart's total is the API's, to the micro-dollar, as of when the page asked
  // (they grow every metering tick), and its bars are drawn.
  const before = await earned();
  await page.reload();
  const chart = page.locator("figure.chart");
  const caption = chart.locator("figcaption");
  await eventually(() => caption.textContent()).toMatch(/in all$/);
  const shown = toMicros(/\$([\d,.]+) in all/.exec((await caption.textContent())!)![1].replace(/,/g, ""));
  expect(shown).toBeGreaterThanOrEqual(before);
  expect(shown).toBeLessThanOrEqual(await earned());
  expect(await pixelsOf(chart, "#047857")).toBeGreaterThan(20);

  // The estimate for new hardware is the API's: from yesterday's market, as the real sampler took it.
  for (let hours = 30; hours >= 25; hours--) await runMarketSampler(prisma, new Date(Date.now() - hours * 3_600_000));
  await page.getByLabel("GPU model", { exact: true }).fill("RTX 4090");
  await page.getByLabel("GPUs", { exact: true }).fill("2");
  await page.getByRole("button", { name: "Estimate" }).click();
  const estimate = await gql(`{ earningsEstimate(specs: { gpuName: "RTX 4090", numGpus: 2 }) { perDay source } }`, {});
  expect(estimate.data.earningsEstimate.source).not.toBe("NONE");
  const [whole, fraction = ""] = estimate.data.earningsEstimate.perDay.split(".");
  await eventually(() => page.getByRole("status").filter({ hasText: "2× RTX 4090" }).textContent()).toContain(`2× RTX 4090: about $${whole}.${fraction.replace(/0+$/, "").padEnd(2, "0")} a day`);
}, 150_000);

it("turns auto-billing on once a card is saved, and shows the charges of the range chosen, exported as CSV", async () => {
  const clientKey = server.keys["client@demo.local"];
  const { page } = await server.newPage();
  await signInWithKey(page, clientKey);
  await page.goto("/account");

  // Without a saved card, auto-billing is refused next to its threshold and nothing is saved.
  await page.getByLabel("Auto-bill below ($)").fill("5");
  await page.getByLabel("Auto-bill amount ($)").fill("25");
  await page.getByRole("button", { name: "Save settings" }).click();
  await eventually(() => page.locator(".field.invalid input[name=autoBillThreshold]").count()).toBe(1);
  const settings = async () => (await gql(`{ billingSettings { autoBillThreshold autoBillAmount } }`, {}, clientKey)).data.billingSettings;
  expect(await settings()).toEqual({ autoBillThreshold: null, autoBillAmount: null });
  // The card Stripe Checkout saves (addCredit with saveCard), as its webhook records it.
  await prisma.user.update({ where: { email: "client@demo.local" }, data: { stripePaymentMethodId: "pm_card_visa", savedCardLabel: "visa •••• 4242" } });
  await page.reload();
  await eventually(() => page.getByText("Saved card: visa •••• 4242").count()).toBe(1);
  await page.getByLabel("Auto-bill below ($)").fill("5");
  await page.getByLabel("Auto-bill amount ($)").fill("25");
  await page.getByRole("button", { name: "Save settings" }).click();
  await eventually(() => page.getByRole("status").filter({ hasText: "Saved." }).count()).toBe(1);
  expect(await settings()).toEqual({ autoBillThreshold: "5.00", autoBillAmount: "25.00" });

  // The charges of the demo rentals: the range chosen decides the rows, and the CSV holds the same.
  const today = new Date().toISOString().slice(0, 10);
  const charges = page.getByRole("table", { name: "Charges" });
  const apiCharges = async (from: string, to: string) =>
    (
      await gql(
        `query($from: DateTime!, $to: DateTime!) { charges(from: $from, to: $to, first: 100) { nodes { amount } } }`,
        { from: `${from}T00:00:00.000Z`, to: new Date(new Date(`${to}T00:00:00.000Z`).getTime() + 86_400_000).toISOString() },
        clientKey,
      )
    ).data.charges.nodes.map((c: { amount: string }) => c.amount);
  await page.getByLabel("From", { exact: true }).fill(today);
  await page.getByLabel("To", { exact: true }).fill(today);
  await eventually(async () => (await charges.locator("tbody td[data-label=Amount]").count()) > 0).toBe(true);
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export charges (CSV)" }).click()]);
  const csv = readFileSync((await download.path())!, "utf8").trim().split("\n");
  expect(csv[0]).toBe("day,instance,category,description,quantity,unit,rate,amount");
  expect(csv.slice(1).every((line) => line.startsWith(today))).toBe(true);
  // The charges grow every metering tick: the export is one reading of the API's rows for the range.
  expect(csv.length - 1).toBe((await apiCharges(today, today)).length);
  // A range before the account existed has no charges.
  await page.getByLabel("From", { exact: true }).fill("2020-01-01");
  await page.getByLabel("To", { exact: true }).fill("2020-01-31");
  await eventually(() => charges.locator("tbody td.empty").textContent()).toBe("No charges in this range.");
  expect(await apiCharges("2020-01-01", "2020-01-31")).toEqual([]);
}, 90_000);
