import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Page } from "playwright-core";
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

type OfferNode = { id: string; dphTotal: string; winningBid: string | null };

/** The offers the API answers for these variables, as the console asks for them (25 a page). */
async function apiOffers(variables: Record<string, unknown>): Promise<{ nodes: OfferNode[]; endCursor: string | null }> {
  const response = await fetch(`${server.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: `query($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $after: String, $storageGb: Float) {
        offers(query: $query, filter: $filter, orderBy: $orderBy, first: 25, after: $after, storageGb: $storageGb) {
          edges { node { id dphTotal winningBid } } pageInfo { endCursor } } }`,
      variables: { filter: {}, storageGb: 10, ...variables },
    }),
  });
  const { data } = (await response.json()) as { data: { offers: { edges: { node: OfferNode }[]; pageInfo: { endCursor: string | null } } } };
  return { nodes: data.offers.edges.map((e) => e.node), endCursor: data.offers.pageInfo.endCursor };
}
const apiIds = async (variables: Record<string, unknown>) => (await apiOffers(variables)).nodes.map((o) => o.id);

/** The offers on the page, in order, by the offer id each row's Rent link carries. */
const shownIds = (page: Page) =>
  page.locator("tbody a[href^='/rent/']").evaluateAll((links) => links.map((a) => decodeURIComponent(new URL((a as HTMLAnchorElement).href).pathname.slice("/rent/".length))));

/** A price as the console prints it: at least three decimals, never rounded. */
const priceText = (price: string) => {
  const [whole, fraction = ""] = price.split(".");
  return `$${whole}.${fraction.replace(/0+$/, "").padEnd(3, "0")}`;
};

it("narrows the search with each filter control exactly as the API's filter does", async () => {
  const { page } = await server.newPage();
  const everything = await apiIds({});
  // A DLPerf/$ floor that the tenth best offer just meets.
  const best = await fetch(`${server.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ offers(first: 10, orderBy: [{ field: DLPERF_PER_DPHTOTAL, direction: DESC }]) { edges { node { dlperfPerDphTotal } } } }" }),
  });
  const dlperfPerDollar = Math.floor(((await best.json()) as { data: { offers: { edges: { node: { dlperfPerDphTotal: number } }[] } } }).data.offers.edges[9].node.dlperfPerDphTotal);
  const controls: { label: string; value: string | boolean; param: string; api: Record<string, unknown> }[] = [
    { label: "Min GPUs", value: "4", param: "gpus=4", api: { filter: { minNumGpus: 4 } } },
    { label: "Min VRAM (GB)", value: "40", param: "vram=40", api: { filter: { minGpuRamGb: 40 } } },
    { label: "Max $/hr", value: "0.5", param: "max_dph=0.5", api: { filter: { maxDphTotal: "0.5" } } },
    { label: "Min reliability", value: "0.99", param: "reliability=0.99", api: { filter: { minReliability: 0.99 } } },
    { label: "Min DLPerf/$", value: String(dlperfPerDollar), param: `dlperf_usd=${dlperfPerDollar}`, api: { query: `dlperf_usd>=${dlperfPerDollar}` } },
    { label: "Countries", value: "us, de", param: "country=us", api: { filter: { countries: ["US", "DE"] } } },
    { label: "Include unverified", value: true, param: "verified=any", api: { filter: { verified: null } } },
    { label: "Datacenter only", value: true, param: "datacenter=1", api: { filter: { datacenter: true } } },
  ];
  for (const control of controls) {
    await page.goto("/");
    await eventually(() => shownIds(page)).toEqual(everything);
    if (typeof control.value === "boolean") await page.getByLabel(control.label).check();
    else await page.getByLabel(control.label).fill(control.value);
    await eventually(() => page.url()).toContain(control.param);
    const expected = await apiIds(control.api);
    // Each filter changes what the demo data answers, so a control that did nothing would fail here.
    expect(expected, control.label).not.toEqual(everything);
    expect(expected.length, control.label).toBeGreaterThan(0);
    await eventually(() => shownIds(page)).toEqual(expected);
  }
}, 120_000);

it("sorts by every sortable column, both ways, in the API's order", async () => {
  const { page } = await server.newPage();
  /** Clicks each header twice; the rows (and the bid-to-win cells, shown even where no bid can win) follow the API's order. */
  const sortEach = async (headers: string[], api: Record<string, unknown>) => {
    for (const header of headers) {
      for (let click = 0; click < 2; click++) {
        const before = page.url();
        await page.getByRole("columnheader").getByRole("button", { name: header, exact: true }).click();
        await eventually(() => page.url()).not.toBe(before);
        const [field, direction] = new URL(page.url()).searchParams.get("sort")!.split(":");
        const expected = (await apiOffers({ ...api, orderBy: [{ field, direction }] })).nodes;
        const bidCells = page.locator("tbody td[data-label^='Bid to win now']");
        await eventually(async () => {
          const shown = { ids: await shownIds(page), bids: await bidCells.allTextContents() };
          return api.filter ? shown : shown.ids;
        }, 15_000).toEqual(
          api.filter
            ? {
                ids: expected.filter((o) => o.winningBid).map((o) => o.id),
                bids: expected.map((o) => (o.winningBid ? priceText(o.winningBid) : "on-demand full")),
              }
            : expected.map((o) => o.id),
        );
        await expect(page.getByRole("columnheader", { name: header, exact: true }).getAttribute("aria-sort")).resolves.toBe(direction === "ASC" ? "ascending" : "descending");
      }
    }
  };
  await page.goto("/");
  await eventually(async () => (await shownIds(page)).length).toBe(25);
  const headers = await page.locator("thead button.sort").allTextContents();
  expect(headers).toContain("Location");
  expect(headers.length).toBeGreaterThanOrEqual(13);
  await sortEach(headers, {});

  // The interruptible view's own columns: the min bid and the bid that would win now.
  await page.goto("/?type=bid");
  await eventually(async () => (await page.locator("tbody tr").count())).toBe(25);
  const bidHeaders = (await page.locator("thead button.sort").allTextContents()).filter((header) => !headers.includes(header));
  expect(bidHeaders).toEqual(["Min bid /GPU·h", "Bid to win now /GPU·h"]);
  await sortEach(bidHeaders, { filter: { rentable: null } });
}, 240_000);

it("shows the interruptible view with the live bid to win, prices the storage in, and pages", async () => {
  const { page } = await server.newPage();
  await page.goto("/");
  const firstPage = await apiOffers({});
  await eventually(() => shownIds(page)).toEqual(firstPage.nodes.map((o) => o.id));

  // Paging: the next page is the API's next page, and the URL holds its cursor.
  await page.getByRole("button", { name: "Next page" }).click();
  await eventually(() => page.url()).toContain("after=");
  const secondPage = await apiIds({ after: firstPage.endCursor });
  expect(secondPage.length).toBeGreaterThan(0);
  expect(secondPage.filter((id) => firstPage.nodes.some((o) => o.id === id))).toEqual([]);
  await eventually(() => shownIds(page)).toEqual(secondPage);
  await page.getByRole("button", { name: "First page" }).click();
  await eventually(() => shownIds(page)).toEqual(firstPage.nodes.map((o) => o.id));

  // Storage priced in: 500 GB raises every $/hr to what the API charges for 500 GB.
  await page.getByLabel("Storage (GB)").fill("500");
  await eventually(() => page.url()).toContain("storage=500");
  await eventually(() => page.getByRole("columnheader", { name: /\$\/hr \(with 500 GB\)/ }).count()).toBe(1);
  const withStorage = await apiOffers({ storageGb: 500 });
  await eventually(() => page.locator("tbody td[data-label^='$/hr']").allTextContents()).toEqual(withStorage.nodes.map((o) => priceText(o.dphTotal)));
  expect(withStorage.nodes.map((o) => o.dphTotal)).not.toEqual(firstPage.nodes.map((o) => o.dphTotal));

  // The interruptible view: machines partly rented too, each with the bid that would win now.
  await page.getByRole("button", { name: "Interruptible (bid)" }).click();
  await eventually(() => page.url()).toContain("type=bid");
  await expect(page.getByRole("button", { name: "Interruptible (bid)" }).getAttribute("aria-pressed")).resolves.toBe("true");
  await eventually(async () => {
    const bids = await apiOffers({ filter: { rentable: null }, storageGb: 500 });
    const cells = await page.locator("tbody td[data-label^='Bid to win now']").allTextContents();
    return cells.length === bids.nodes.length && cells.every((text, i) => text === (bids.nodes[i].winningBid ? priceText(bids.nodes[i].winningBid!) : "on-demand full"));
  }).toBe(true);
}, 90_000);
