import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { expect, it } from "vitest";
import { CONSOLE_DIST } from "../client/web/build.ts";
import { prisma } from "../infra/db.ts";
import { eventually, useConsoleServer } from "./support/browser.ts";

// The console at `/` and GraphiQL at `/graphql`, both from the API's own origin, in Chromium.
const server = useConsoleServer();

it("serves GraphiQL with every asset from its own origin", async () => {
  const { page } = await server.newPage();
  const foreign: string[] = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(server.origin) && !/^(data|blob):/.test(request.url())) foreign.push(request.url());
  });
  await page.goto("/graphql", { waitUntil: "load" });
  await eventually(() => page.locator(".graphiql-container").count(), 30_000).toBeGreaterThan(0);
  expect(await page.content()).not.toContain("Loading");
  expect(foreign).toEqual([]);
}, 60_000);

it("searches anonymously with filters and sorting, the search held in the URL", async () => {
  const { page } = await server.newPage();
  const foreign: string[] = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(server.origin) && !/^(data|blob):/.test(request.url())) foreign.push(request.url());
  });
  await page.goto("/");
  const rows = page.locator("table.data-table tbody tr");
  await eventually(() => rows.count()).toBe(25);

  // A GPU model from the filter controls: every row is that model, and the URL says so.
  const model = "RTX 4090";
  const expected = await prisma.offer.count({ where: { gpuName: model, verified: true, rentable: true } });
  expect(expected).toBeGreaterThan(1);
  await page.getByLabel("GPU model").selectOption(model);
  await eventually(() => page.url()).toContain("gpu=RTX+4090");
  await eventually(async () => (await page.locator("tbody td[data-label=GPUs]").allTextContents()).every((text) => text.includes(model))).toBe(true);
  await eventually(() => rows.count()).toBe(Math.min(expected, 25));

  // Sorting by a column: the prices come back in ascending, then descending order.
  const prices = async () => (await page.locator("tbody td[data-label^='$/hr']").allTextContents()).map((t) => Number(t.replace(/[^0-9.]/g, "")));
  await page.getByRole("button", { name: /\$\/hr/ }).click();
  await eventually(() => page.url()).toContain("sort=DPH_TOTAL%3AASC");
  await eventually(async () => {
    const list = await prices();
    return list.length === Math.min(expected, 25) && list.every((p, i) => i === 0 || list[i - 1] <= p);
  }).toBe(true);
  await expect(page.getByRole("columnheader", { name: /\$\/hr/ }).getAttribute("aria-sort")).resolves.toBe("ascending");
  await page.getByRole("button", { name: /\$\/hr/ }).click();
  await eventually(async () => {
    const list = await prices();
    return list.length > 1 && list[0] > list[list.length - 1] && list.every((p, i) => i === 0 || list[i - 1] >= p);
  }).toBe(true);

  // The query-language box narrows the same search; a bad query names its token next to the box.
  await page.getByLabel("Query").fill("num_gpus>=2");
  await page.getByLabel("Query").press("Enter");
  await eventually(async () => (await page.locator("tbody td[data-label=GPUs]").allTextContents()).every((text) => !/^1×/.test(text))).toBe(true);
  await page.getByLabel("Query").fill("num_gpus>>2");
  await page.getByLabel("Query").press("Enter");
  await expect(page.locator(".field-error").first().textContent()).resolves.toBeTruthy();
  await eventually(() => page.locator(".field.invalid textarea[name=q]").count()).toBe(1);

  // Direct ports (a query-language field the filter panel adds to the query): the rows are the API's.
  await page.getByLabel("Query").fill("num_gpus>=2");
  await page.getByLabel("Query").press("Enter");
  await page.getByLabel("Min direct ports").fill("1");
  await eventually(() => page.url()).toContain("direct_ports=1");
  const response = await fetch(`${server.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: `{ offers(first: 25, query: "num_gpus>=2 direct_port_count>=1", filter: { gpuNames: ["${model}"] }) { edges { node { id } } } }` }),
  });
  const withPorts = ((await response.json()) as { data: { offers: { edges: unknown[] } } }).data.offers.edges.length;
  if (withPorts === 0) await eventually(() => page.locator("tbody td.empty").count()).toBe(1);
  else await eventually(() => page.locator("tbody td[data-label='Direct ports']").count()).toBe(withPorts);
  await page.getByLabel("Min direct ports").fill("");
  await eventually(() => page.url()).not.toContain("direct_ports");

  // The URL holds the search: another visitor opening it sees the same filters.
  await page.getByLabel("Query").fill("num_gpus>=2");
  await page.getByLabel("Query").press("Enter");
  await eventually(() => page.locator(".field-error").count()).toBe(0);
  const shared = page.url();
  const { page: other } = await server.newPage();
  await other.goto(shared);
  await eventually(() => other.getByLabel("GPU model").inputValue()).toBe(model);
  await eventually(() => other.getByLabel("Query").inputValue()).toBe("num_gpus>=2");
  await eventually(async () => {
    const list = await other.locator("tbody td[data-label=GPUs]").allTextContents();
    return list.length > 0 && list.every((text) => text.includes(model) && !/^1×/.test(text));
  }).toBe(true);
  expect(foreign).toEqual([]);
}, 120_000);

it("keeps the search page's production JavaScript within 250 KB gzipped", async () => {
  const html = await readFile(join(CONSOLE_DIST, "index.html"), "utf8");
  const scripts = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  expect(scripts.length).toBeGreaterThan(0);
  let gzipped = 0;
  for (const file of scripts) {
    const body = await readFile(join(CONSOLE_DIST, file), "utf8");
    // React's production build: no development warnings.
    expect(body).not.toContain("react.dev/link/warning-keys");
    gzipped += gzipSync(body).length;
  }
  expect(gzipped).toBeLessThanOrEqual(250 * 1024);
});
