import axe from "axe-core";
import type { BrowserContext, BrowserContextOptions, Page } from "playwright-core";
import { afterAll, expect, it } from "vitest";
import { eventually, useConsoleServer } from "./support/browser.ts";

// The console for everyone and everywhere, in Chromium: no accessibility violations axe-core can
// find (labels, names, roles, contrast) on any page, usable by keyboard alone, laid out for a
// phone's width, and working with every request to another origin refused.
const server = useConsoleServer();

type Account = "client@demo.local" | "host@demo.local";

/** Each page with what shows it has rendered its data, and the demo account it is opened as (none: a visitor). */
const PAGES: { path: string; ready: string; as?: Account }[] = [
  { path: "/", ready: "tbody td[data-label=GPUs]" },
  { path: "/?type=bid", ready: "tbody td[data-label^='Bid to win now']" },
  { path: "/market", ready: "figure.chart canvas" },
  { path: "/login", ready: "form button[type=submit]" },
  { path: "/signup", ready: "form button[type=submit]" },
  { path: "/instances", ready: "table.data-table tbody td", as: "client@demo.local" },
  { path: "/account", ready: "tbody td[data-label=Amount]", as: "client@demo.local" },
  { path: "/host", ready: "tbody td[data-label=Machine]", as: "host@demo.local" },
];

/** The pages, and renting the search's first offer. */
async function pages(): Promise<typeof PAGES> {
  const response = await fetch(`${server.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ offers(first: 1) { edges { node { id } } } }" }),
  });
  const { data } = (await response.json()) as { data: { offers: { edges: { node: { id: string } }[] } } };
  const offer = encodeURIComponent(data.offers.edges[0].node.id);
  return [...PAGES, { path: `/rent/${offer}`, ready: "form[aria-label=Rental] button[type=submit]", as: "client@demo.local" }];
}

/** A browser context signed in as `account` (with its key, as the login page's key form does), or a visitor's. */
async function contextAs(account: Account | undefined, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  const context = await server.browser.newContext({ baseURL: server.origin, viewport: { width: 1400, height: 900 }, ...options });
  contexts.push(context);
  if (account) await context.addInitScript((session) => localStorage.setItem("gm.session", session), JSON.stringify({ apiKey: server.keys[account], email: account }));
  return context;
}
const contexts: BrowserContext[] = [];
afterAll(() => Promise.all(contexts.map((context) => context.close())));

/** A page for each account (and the visitor), in contexts made with `options`. */
function pagesAs(options: BrowserContextOptions = {}): (account: Account | undefined) => Promise<Page> {
  const open = new Map<Account | undefined, Promise<Page>>();
  return (account) => {
    if (!open.has(account)) open.set(account, contextAs(account, options).then((context) => context.newPage()));
    return open.get(account)!;
  };
}

async function open(page: Page, path: string, ready: string): Promise<void> {
  await page.goto(path);
  await eventually(() => page.locator(ready).count(), 30_000, `${path} shows ${ready}`).toBeGreaterThan(0);
}

it("has no accessibility violations that axe-core finds (WCAG 2.1 A and AA, contrast included) on any page", async () => {
  const pageAs = pagesAs();
  for (const { path, ready, as } of await pages()) {
    const page = await pageAs(as);
    await open(page, path, ready);
    // Evaluated by the browser's devtools protocol: the console's CSP rightly refuses inline scripts.
    await page.evaluate(axe.source);
    const violations = await page.evaluate(async () => {
      const results = await (window as unknown as { axe: typeof axe }).axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
      return results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    });
    expect(violations, path).toEqual([]);
  }
}, 120_000);

it("is usable by keyboard alone: skip link, filters, sorting and renting", async () => {
  const { page } = await server.newPage();
  await open(page, "/", "tbody td[data-label=GPUs]");
  const focused = () => page.evaluate(() => document.activeElement?.textContent?.trim() || document.activeElement?.getAttribute("name") || document.activeElement?.tagName);
  /** Presses Tab until the focused element is the one wanted (at most 200 presses). */
  const tabTo = async (matches: () => Promise<boolean>) => {
    for (let presses = 0; presses < 200 && !(await matches()); presses++) await page.keyboard.press("Tab");
    expect(await matches()).toBe(true);
  };

  await page.keyboard.press("Tab");
  expect(await focused()).toBe("Skip to content");
  await page.keyboard.press("Enter");
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("main");

  // The GPU model filter, chosen with the arrow keys.
  await tabTo(() => page.evaluate(() => document.activeElement?.getAttribute("name") === "gpu"));
  await page.keyboard.press("ArrowDown");
  await eventually(() => page.url()).toContain("gpu=");
  const model = await page.getByLabel("GPU model").inputValue();
  await eventually(async () => {
    const cells = await page.locator("tbody td[data-label=GPUs]").allTextContents();
    return cells.length > 0 && cells.every((text) => text.includes(model));
  }).toBe(true);

  // A column's sort button, pressed with Enter.
  await tabTo(() => page.evaluate(() => document.activeElement?.matches("th button.sort") === true && document.activeElement.textContent!.startsWith("$/hr")));
  await page.keyboard.press("Enter");
  await eventually(() => page.url()).toContain("sort=DPH_TOTAL%3AASC");

  // An offer's Rent link, followed with Enter: anonymous visitors are asked to log in first.
  await tabTo(() => page.evaluate(() => document.activeElement?.matches("a[href^='/rent/']") === true));
  await page.keyboard.press("Enter");
  await eventually(() => page.url()).toContain("/rent/");
  await eventually(() => page.getByRole("heading", { name: "Log in to rent this offer" }).count()).toBe(1);
}, 60_000);

it("fits a phone's width: no sideways scrolling, tables as cards, the menu and the filters in reach", async () => {
  const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
  const pageAs = pagesAs(phone);
  for (const { path, ready, as } of await pages()) {
    const page = await pageAs(as);
    await open(page, path, ready);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow, path).toBeLessThanOrEqual(0);
  }
  const page = await pageAs(undefined);
  await open(page, "/", "tbody td[data-label=GPUs]");
  // Each offer is a card: the column headers are off screen and every cell carries its label.
  expect((await page.locator("table.data-table thead").boundingBox())!.width).toBeLessThanOrEqual(1);
  const cell = page.locator("tbody td[data-label='VRAM']").first();
  expect(await cell.evaluate((td) => getComputedStyle(td, "::before").content)).toBe('"VRAM"');
  expect((await page.locator("tbody tr").first().boundingBox())!.width).toBeLessThanOrEqual(390);
  // The filters are on screen, and a filter works by touch.
  await page.getByLabel("Min GPUs").tap();
  await page.getByLabel("Min GPUs").fill("4");
  await eventually(() => page.url()).toContain("gpus=4");
  await eventually(async () => {
    const cells = await page.locator("tbody td[data-label=GPUs]").allTextContents();
    return cells.length > 0 && cells.every((text) => Number(text.split("×")[0]) >= 4);
  }).toBe(true);
  const menu = page.getByRole("navigation", { name: "Main" });
  for (const name of ["Search", "Instances", "Hosting", "Market", "Account"]) {
    const box = (await menu.getByRole("link", { name, exact: true }).boundingBox())!;
    expect(box.x >= 0 && box.x + box.width <= 390, name).toBe(true);
  }
  await menu.getByRole("link", { name: "Market", exact: true }).tap();
  await eventually(() => page.locator("figure.chart canvas").count()).toBe(1);
}, 120_000);

it("works with every request to another origin refused: the console and GraphiQL load only from ours", async () => {
  const refused: string[] = [];
  const offline = async (account?: Account) => {
    const context = await contextAs(account);
    await context.route(
      (url) => url.origin !== server.origin,
      (route) => (refused.push(route.request().url()), route.abort("blockedbyclient")),
    );
    return context.newPage();
  };
  const visitor = await offline();
  await visitor.goto("/graphql");
  await eventually(() => visitor.locator(".graphiql-container .graphiql-editor").count(), 30_000).toBeGreaterThan(0);
  for (const { path, ready, as } of PAGES) if (!as) await open(visitor, path, ready);
  const client = await offline("client@demo.local");
  await open(client, "/instances", "table.data-table tbody td");
  // The header's balance arrives over the WebSocket of the same origin.
  await eventually(() => client.getByTestId("balance").textContent()).toMatch(/^\$/);
  expect(refused).toEqual([]);
}, 90_000);
