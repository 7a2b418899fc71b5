// The web console's budgets: the search page's production JavaScript (gzipped) and the time to the
// first offers on screen on the demo data, against a floor: a hand-written page on the same origin
// that only fetches the same query and writes the same 25 rows with innerHTML.
//   npx tsx bench/console.ts [--runs 10] [--screenshots]
// `--screenshots` also refreshes docs/screenshots/ (the README's pictures of the main pages).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { print } from "graphql";
import { type Browser, chromium, type Page } from "playwright-core";
import { CONSOLE_DIST, ensureConsoleBuilt } from "../client/web/build.ts";
import { SearchOffersDocument } from "../client/web/src/gql/graphql.ts";
import { spawnStart } from "../test/support/start-process.ts";
import { openBenchDatabase, percentile } from "./support.ts";

const SERVER_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const RUNS = Number(process.argv[process.argv.indexOf("--runs") + 1]) || 10;
const SCREENSHOTS = process.argv.includes("--screenshots");
const root = fileURLToPath(new URL("..", import.meta.url));
const CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** The entry script, the chunks it preloads and the stylesheet: what the search page loads. */
async function searchPageBundle(): Promise<{ files: string[]; js: number; jsGzip: number; css: number; cssGzip: number }> {
  const html = await readFile(join(CONSOLE_DIST, "index.html"), "utf8");
  const files = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]);
  const sizes = { js: 0, jsGzip: 0, css: 0, cssGzip: 0 };
  for (const file of files) {
    const body = await readFile(join(CONSOLE_DIST, file));
    const kind = file.endsWith(".css") ? "css" : "js";
    sizes[kind] += body.length;
    sizes[`${kind}Gzip`] += gzipSync(body, { level: 9 }).length;
  }
  return { files, ...sizes };
}

const FIRST_OFFERS_PROBE = `
  new MutationObserver((_, observer) => {
    if (document.querySelectorAll("tbody td[data-label=GPUs]").length > 0) {
      window.__firstOffersAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
`;

function floorPage(): string {
  const body = JSON.stringify({ query: print(SearchOffersDocument), variables: { filter: {}, first: 25, storageGb: 10 } });
  return `<!doctype html><html><body><table><tbody id="rows"></tbody></table><script>
    fetch("/graphql", { method: "POST", headers: { "content-type": "application/json" }, body: ${JSON.stringify(body)} })
      .then((response) => response.json())
      .then(({ data }) => {
        document.getElementById("rows").innerHTML = data.offers.edges
          .map(({ node }) => "<tr><td data-label=GPUs>" + node.numGpus + "x " + node.gpuName + "</td><td>" + node.dphTotal + "</td></tr>").join("");
        window.__firstOffersAt = performance.now();
      });
  </script></body></html>`;
}

/** Milliseconds from navigation start to the first offer rows, in a fresh context (cold cache) each run. */
async function timeToOffers(browser: Browser, url: string, route?: string): Promise<{ offers: number; fcp: number | null }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  if (route) await page.route(url, (r) => r.fulfill({ contentType: "text/html", body: route }));
  await page.addInitScript(FIRST_OFFERS_PROBE);
  await page.goto(url);
  await page.waitForFunction(() => (window as unknown as { __firstOffersAt?: number }).__firstOffersAt !== undefined);
  const result = await page.evaluate(() => ({
    offers: (window as unknown as { __firstOffersAt: number }).__firstOffersAt,
    fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
  }));
  await context.close();
  return result;
}

async function screenshots(browser: Browser, origin: string, keys: Record<string, string>): Promise<void> {
  const { prisma } = await import("../infra/db.ts");
  const { runMarketSampler } = await import("../domain/market/sampler.ts");
  for (let minutes = 120; minutes >= 1; minutes--) await runMarketSampler(prisma, new Date(Date.now() - minutes * 60_000));
  const dir = join(root, "docs", "screenshots");
  const open = async (email: string | null, width = 1280, height = 800): Promise<Page> => {
    const context = await browser.newContext({ baseURL: origin, viewport: { width, height } });
    if (email) await context.addInitScript((session) => localStorage.setItem("gm.session", session), JSON.stringify({ apiKey: keys[email], email }));
    return context.newPage();
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(dir, `${name}.png`) });

  const visitor = await open(null);
  await visitor.goto("/?type=bid&gpus=2&sort=DLPERF_PER_DPHTOTAL%3ADESC");
  await visitor.waitForSelector("tbody td[data-label=GPUs]");
  await shot(visitor, "search");
  const phone = await open(null, 390, 844);
  await phone.goto("/?gpu=RTX+4090");
  await phone.waitForSelector("tbody td[data-label=GPUs]");
  await shot(phone, "search-phone");

  const client = await open("client@demo.local");
  const machine = await prisma.machine.findFirstOrThrow({ orderBy: { id: "asc" } });
  await client.goto(`/?type=bid&q=machine_id%3D${machine.id}`);
  await client.getByRole("link", { name: /^Bid: / }).first().click();
  await client.getByLabel("Label").fill("training-run");
  await client.getByLabel("Ports").fill("8080");
  await client.getByLabel("On-start script").fill('for epoch in 1 2 3; do echo "epoch $epoch/3: loss 0.$((9 - epoch))"; done');
  await shot(client, "rent");
  await client.getByRole("button", { name: "Place bid and rent" }).click();
  await client.waitForSelector("h1 .status.RUNNING", { timeout: 60_000 });
  await client.waitForSelector("text=epoch 3/3", { timeout: 30_000 }).catch(() => undefined);
  await shot(client, "instance");
  await client.goto("/instances");
  await client.waitForSelector("tbody .status");
  await shot(client, "instances");
  await client.goto("/account");
  await client.waitForSelector("text=Saved card");
  await client.waitForSelector("table[aria-label], tbody td[data-label=Amount]");
  await shot(client, "account");

  const host = await open("host@demo.local");
  await host.goto("/host");
  await host.waitForSelector("tbody td[data-label=Machine]");
  await shot(host, "host");
  const analyst = await open(null);
  await analyst.goto("/market?gpu=RTX+4090&range=6h&bucket=MINUTE");
  await analyst.waitForSelector("figure.chart canvas");
  await analyst.waitForSelector("tbody td");
  await shot(analyst, "market");
  await prisma.$disconnect();
}

const database = await openBenchDatabase(SERVER_URL, "bench_console");
// The screenshots' market samples are taken in this process, on the server's database and Redis.
process.env.REDIS_URL = REDIS_URL;
process.env.REDIS_PREFIX = database.name;
await ensureConsoleBuilt();
const bundle = await searchPageBundle();
const server = spawnStart({ DATABASE_URL: database.url, REDIS_URL, REDIS_PREFIX: database.name, PORT: "0" });
try {
  const started = await server.waitForLog((line) => typeof line.url === "string", 120_000);
  const origin = new URL(String(started.url)).origin;
  const keys: Record<string, string> = {};
  for (const line of server.logs()) if (typeof line.key === "string") keys[line.email as string] = line.key;
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_FLAGS });
  // One unmeasured load each: the server's first queries and chromium's first start.
  await timeToOffers(browser, `${origin}/`);
  await timeToOffers(browser, `${origin}/floor.html`, floorPage());
  const product: number[] = [];
  const floor: number[] = [];
  const fcp: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const console_ = await timeToOffers(browser, `${origin}/`);
    product.push(console_.offers);
    if (console_.fcp !== null) fcp.push(console_.fcp);
    floor.push((await timeToOffers(browser, `${origin}/floor.html`, floorPage())).offers);
  }
  const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
  const [p, f, c] = [sorted(product), sorted(floor), sorted(fcp)];
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  console.log(`search page bundle (${bundle.files.join(", ")}):`);
  console.log(`  JavaScript ${kb(bundle.js)} raw, ${kb(bundle.jsGzip)} gzipped (budget 250 KB gzipped); CSS ${kb(bundle.css)} raw, ${kb(bundle.cssGzip)} gzipped`);
  console.log(`first offers on screen over ${RUNS} cold loads (ms from navigation start): product p50 ${p[Math.floor(RUNS / 2)].toFixed(0)} / p90 ${percentile(p, 90).toFixed(0)} / max ${p.at(-1)!.toFixed(0)}`);
  console.log(`  floor (same query, rows by innerHTML, same origin): p50 ${f[Math.floor(RUNS / 2)].toFixed(0)} / p90 ${percentile(f, 90).toFixed(0)}; ratio p50 ${(p[Math.floor(RUNS / 2)] / f[Math.floor(RUNS / 2)]).toFixed(2)}`);
  if (c.length) console.log(`  first contentful paint: p50 ${c[Math.floor(c.length / 2)].toFixed(0)} ms`);
  if (SCREENSHOTS) {
    await screenshots(browser, origin, keys);
    console.log("screenshots written to docs/screenshots/");
  }
  await browser.close();
} finally {
  server.child.kill("SIGTERM");
  await server.exited;
  await database.release();
}
