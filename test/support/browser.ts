import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";
import { ensureConsoleBuilt } from "../../client/web/build.ts";
import { type StartProcess, spawnStart } from "./start-process.ts";

/** Debian's chromium; playwright's own browser downloads cannot reach the internet. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export interface ConsoleServer {
  /** The console's origin, such as http://127.0.0.1:41234. */
  origin: string;
  /** The demo accounts' fresh API keys, by email. */
  keys: Record<string, string>;
  process: StartProcess;
  browser: Browser;
  /** A fresh browser context (its own storage: a separate visitor). */
  newPage(): Promise<{ context: BrowserContext; page: Page }>;
}

/**
 * `npm start` (the whole system: API, workers, demo data, demo agents) on this file's database and
 * Redis prefix, with the console built, and headless Chromium; all stopped after the file's tests.
 */
export function useConsoleServer(): ConsoleServer {
  const contexts: BrowserContext[] = [];
  const handle = { keys: {} as Record<string, string> } as ConsoleServer;
  beforeAll(async () => {
    await ensureConsoleBuilt();
    handle.process = spawnStart({
      DATABASE_URL: process.env.DATABASE_URL,
      REDIS_URL: process.env.REDIS_URL,
      REDIS_PREFIX: process.env.REDIS_PREFIX,
      PORT: "0",
    });
    const started = await handle.process.waitForLog((line) => typeof line.url === "string", 120_000);
    handle.origin = new URL(String(started.url)).origin;
    for (const line of handle.process.logs()) if (typeof line.key === "string") handle.keys[line.email as string] = line.key;
    handle.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    handle.newPage = async () => {
      const context = await handle.browser.newContext({ baseURL: handle.origin, viewport: { width: 1400, height: 900 } });
      contexts.push(context);
      const page = await context.newPage();
      return { context, page };
    };
  }, 180_000);
  afterAll(async () => {
    await Promise.all(contexts.map((context) => context.close().catch(() => undefined)));
    await handle.browser?.close();
    if (handle.process && handle.process.child.exitCode === null) {
      handle.process.child.kill("SIGTERM");
      await handle.process.exited;
    }
  }, 60_000);
  return handle;
}

/** Polls until the assertion holds: pages update live, after a query, a subscription event or a worker's tick. */
export function eventually<T>(read: () => T | Promise<T>, timeoutMs = 30_000, message?: string) {
  return expect.poll(read, { timeout: timeoutMs, interval: 100, message });
}
