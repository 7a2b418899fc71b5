import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../client/cli.ts";
import { postEntry } from "../domain/billing/ledger.ts";
import { meterUpTo } from "../domain/billing/metering.ts";
import { PERIOD_SECONDS, periodStart } from "../domain/billing/rates.ts";
import { runMarketSampler } from "../domain/market/sampler.ts";
import { HOUR_MS } from "../domain/time.ts";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { runCli } from "./support/cli.ts";
import { at, eventAt, instanceAt } from "./support/metering.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

const app = useTestApp();

let configDir: string;

/** Runs the CLI in-process with the test server's URL and no config file unless told. */
function cli(argv: string[], options: Parameters<typeof runCli>[3] = {}) {
  return runCli(app.url, join(configDir, "config.json"), argv, options);
}

let client: { userId: number; key: string };
let host: { userId: number; key: string };
let other: { userId: number; key: string };
let machineId: number;
// Three days ago, one instance ran 24 hours on 1 GPU at $0.40 (and 20 GB of storage).
const D = periodStart(Math.floor(Date.now() / 1000)) - 3 * PERIOD_SECONDS;
let billed: number;

beforeAll(async () => {
  configDir = await mkdtemp(join(tmpdir(), "gm-cli-"));
  [client, host, other] = [await createAccount("client"), await createAccount("host"), await createAccount("other")];
  machineId = await createListedMachine(host.userId, { numGpus: 4 });
  // Metered while live and before the API meters anything, so that the metering clock starts at D.
  billed = await instanceAt(client.userId, machineId, D);
  await eventAt(billed, "ALLOCATED", D);
  await eventAt(billed, "AGENT_RUNNING", D);
  await meterUpTo(at(D + PERIOD_SECONDS + config().METERING_LAG_SECONDS));
  await eventAt(billed, "DESTROY_REQUESTED", D + PERIOD_SECONDS);
  await prisma.$transaction((tx) =>
    postEntry(tx, { userId: client.userId, kind: "ADJUSTMENT", amountMicros: 2_000_000n, description: "Goodwill credit" }),
  );
});

describe("search offers", () => {
  it("prints a table of the offers matching the filter language", async () => {
    const { code, stdout, stderr } = await cli(["search", "offers", "num_gpus>=2 gpu_name=RTX_4090", "--order", "num_gpus-"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+N\s+Model\s+VRAM/);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual([`${machineId}-4`, `${machineId}-2`]);
    expect(lines[1]).toContain("RTX 4090");
    expect(lines[1]).toContain("$0.40");
  });

  it("--raw prints the offers as JSON; --limit and --storage are passed on", async () => {
    const { code, stdout } = await cli(["search", "offers", `machine_id=${machineId}`, "--raw", "--limit", "2", "--storage", "0"]);
    expect(code).toBe(0);
    const offers = JSON.parse(stdout);
    expect(offers).toHaveLength(2);
    expect(offers[0]).toMatchObject({ gpuName: "RTX 4090", machineId: `Machine:${machineId}` });
    // No storage: dphTotal is the GPUs' price alone.
    for (const offer of offers) expect(Number(offer.dphTotal)).toBeCloseTo(0.4 * offer.numGpus, 6);
  });

  it("a query it cannot read is INVALID_QUERY with the server's message, exit 1", async () => {
    const { code, stdout, stderr } = await cli(["search", "offers", "gpu_nam=RTX_4090"]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^error: INVALID_QUERY: .*gpu_nam/);
  });
});

describe("instances", () => {
  let instanceId: string;

  it("create instance rents an offer and prints the new instance", async () => {
    const { code, stdout, stderr } = await cli(
      ["create", "instance", `${machineId}-1`, "--image", "pytorch/pytorch:latest", "--disk", "20", "--bid", "0.2", "--jupyter",
        "--env", "A=1=2", "--port", "8081:8081", "--label", "cli", "--onstart-cmd", "echo hi"],
      { key: client.key },
    );
    expect(stderr).toContain("creating instance");
    expect(code).toBe(0);
    const id = /created (Instance:\d+)/.exec(stdout)?.[1];
    expect(id).toBeDefined();
    instanceId = id!;
    expect(stdout).toMatch(/instance API key \(shown once\): \S+/);
    const stored = await prisma.instance.findUniqueOrThrow({ where: { id: Number(instanceId.split(":")[1]) } });
    expect(stored).toMatchObject({
      clientId: client.userId,
      kind: "INTERRUPTIBLE",
      bidPerGpuHourMicros: 200_000n,
      launchMode: "JUPYTER",
      image: "pytorch/pytorch:latest",
      diskGb: 20,
      label: "cli",
      onstart: "echo hi",
      env: [{ key: "A", value: "1=2" }],
      ports: ["8081:8081"],
    });
  });

  it("show instances lists the caller's instances only", async () => {
    const mine = await cli(["show", "instances"], { key: client.key });
    expect(mine.code).toBe(0);
    const [header, row, ...rest] = mine.stdout.trim().split("\n");
    expect(header).toMatch(/^\s*ID\s+Label\s+Machine\s+Kind\s+Status/);
    expect(rest).toEqual([]);
    expect(row!.trim().split(/\s+/).slice(0, 4)).toEqual([instanceId.split(":")[1], "cli", String(machineId), "INTERRUPTIBLE"]);
    const theirs = await cli(["show", "instances", "--raw"], { key: other.key });
    expect(JSON.parse(theirs.stdout)).toEqual([]);
  });

  it("change bid, stop, start and destroy take plain numeric ids", async () => {
    const number = instanceId.split(":")[1]!;
    const bid = await cli(["change", "bid", number, "--price", "0.25"], { key: client.key });
    expect(bid.stderr).toBe("");
    expect(bid.stdout).toContain(`${instanceId}: bid $0.25/GPU-hr`);

    const stop = await cli(["stop", "instance", number], { key: client.key });
    expect(stop.stdout.trim()).toMatch(new RegExp(`^${instanceId}: STOPPED`));
    const start = await cli(["start", "instance", number, "--raw"], { key: client.key });
    expect(JSON.parse(start.stdout)).toMatchObject({ id: instanceId, intendedStatus: "RUNNING" });
    const destroy = await cli(["destroy", "instance", instanceId], { key: client.key });
    expect(destroy.code).toBe(0);
    expect(destroy.stdout.trim()).toMatch(new RegExp(`^${instanceId}: DESTROYED`));
    // A second destroy is a typed error result.
    const again = await cli(["start", "instance", number], { key: client.key });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: ILLEGAL_TRANSITION: /);
  });

  it("a typed error result prints its code and message: a bid below the minimum", async () => {
    const { code, stderr } = await cli(
      ["create", "instance", `${machineId}-1`, "--image", "ubuntu:22.04", "--disk", "10", "--bid", "0.01"],
      { key: client.key },
    );
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: BID_TOO_LOW: /m);
  });

  it("another account's instance is NOT_FOUND", async () => {
    const { code, stdout, stderr } = await cli(["stop", "instance", instanceId], { key: other.key });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^error: NOT_FOUND: /);
    const watched = await cli(["watch", "instance", instanceId], { key: other.key });
    expect(watched.code).toBe(1);
    expect(watched.stderr).toMatch(/^error: NOT_FOUND: /);
  });

  it("watch instance follows the status through the subscription until --until", async () => {
    const created = await cli(["create", "instance", `${machineId}-1`, "--image", "ubuntu:22.04", "--disk", "10", "--raw"], { key: client.key });
    const { instance } = JSON.parse(created.stdout);
    // Stop it once the watcher has printed the current state (its subscription is live).
    let printed!: () => void;
    const firstLine = new Promise<void>((resolve) => (printed = resolve));
    const watching = cli(["watch", "instance", instance.id, "--until", "STOPPED"], { key: client.key, onStdout: (out) => out.includes("\n") && printed() });
    await firstLine;
    expect((await cli(["stop", "instance", instance.id], { key: client.key })).code).toBe(0);
    const { code, stdout, stderr } = await watching;
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const statuses = stdout.trim().split("\n").map((line) => line.split(/\s{2}/)[2]!.split(":")[0]);
    expect(statuses.at(-1)).toBe("STOPPED");
    expect(statuses[0]).not.toBe("STOPPED");
  });
});

describe("templates", () => {
  it("create template, search templates and create instance --template launch with the template's settings", async () => {
    const created = await cli(
      ["create", "template", "cli web", "--image", "org/web", "--tag", "2", "--entrypoint", "--options=-p 8081:8081 -e MODE=prod",
        "--args=--serve", "--disk", "30", "--public"],
      { key: client.key },
    );
    expect(created.stderr).toBe("");
    const templateId = /created (Template:\d+)/.exec(created.stdout)?.[1];
    expect(templateId).toBeDefined();

    const found = await cli(["search", "templates", "cli web"], { key: other.key });
    const [header, row, ...rest] = found.stdout.trim().split("\n");
    expect(header).toMatch(/^\s*ID\s+Name\s+Image\s+Mode/);
    expect(rest).toEqual([]);
    expect(row).toContain("org/web:2");
    expect(row).toContain("-p 8081:8081 -e MODE=prod");
    const recommended = await cli(["search", "templates", "--recommended", "--raw"], { key: client.key });
    expect(JSON.parse(recommended.stdout).map((t: { name: string }) => t.name)).toContain("Ubuntu");

    const launched = await cli(["create", "instance", `${machineId}-1`, "--template", templateId!.split(":")[1]!, "--env", "EXTRA=1"], { key: other.key });
    expect(launched.code).toBe(0);
    const instanceId = Number(/created Instance:(\d+)/.exec(launched.stdout)?.[1]);
    expect(await prisma.instance.findUniqueOrThrow({ where: { id: instanceId } })).toMatchObject({
      image: "org/web:2",
      launchMode: "ENTRYPOINT",
      diskGb: 30,
      args: ["--serve"],
      ports: ["8081:8081"],
      env: [{ key: "MODE", value: "prod" }, { key: "EXTRA", value: "1" }],
    });
    await prisma.instance.update({ where: { id: instanceId }, data: { status: "DESTROYED" } });

    const deleted = await cli(["delete", "template", templateId!], { key: client.key });
    expect(deleted.stdout).toContain(`deleted ${templateId}`);
  });
});

describe("billing", () => {
  const range = ["--from", at(D).toISOString(), "--to", at(D + PERIOD_SECONDS).toISOString()];

  it("show charges prints the itemized charges and their exact total", async () => {
    const { code, stdout } = await cli(["show", "charges", ...range, "--instance", String(billed)], { key: client.key });
    expect(code).toBe(0);
    expect(stdout).toMatch(/GPU\s+24\.000 GPU-hours at \$0\.40\/GPU-hour\s+\$9\.60\n/);
    expect(stdout).toMatch(/STORAGE\s+0\.667 GB-months at \$0\.10\/GB-month\s+\$0\.066666\n/);
    // The total is exact: summed as micro-dollars, never as floats.
    const rows = await cli(["show", "charges", ...range, "--instance", String(billed), "--raw"], { key: client.key });
    const toMicros = (money: string) => {
      const [whole, fraction = ""] = money.split(".");
      return BigInt(whole!) * 1_000_000n + BigInt(fraction.padEnd(6, "0"));
    };
    const micros = (JSON.parse(rows.stdout) as { amount: string }[]).reduce((sum, c) => sum + toMicros(c.amount), 0n);
    expect(micros).toBe(9_666_666n);
    expect(stdout).toContain("Total: $9.666666");
    expect((await cli(["show", "charges", ...range], { key: other.key })).stdout).toContain("No charges in this period.");
  });

  it("show earnings is the host's side; show invoices lists the credit", async () => {
    const earnings = await cli(["show", "earnings", ...range], { key: host.key });
    expect(earnings.code).toBe(0);
    expect(earnings.stdout).toMatch(new RegExp(`\\s${machineId}\\s+\\$\\d`));
    const invoices = await cli(["show", "invoices"], { key: client.key });
    expect(invoices.code).toBe(0);
    expect(invoices.stdout).toMatch(/ADJUSTMENT\s+COMPLETED\s+Goodwill credit\s+\$2\.00/);
  });
});

describe("price history", () => {
  beforeAll(async () => {
    const now = Date.now();
    await prisma.$transaction((tx) => runMarketSampler(tx, new Date(now - 3 * HOUR_MS)));
    await prisma.$transaction((tx) => runMarketSampler(tx, new Date(now - 2 * HOUR_MS)));
    // A dearer machine joins: the p90 price rises.
    await createListedMachine(host.userId, { numGpus: 2, listing: { pricePerGpuHour: 800_000n, minBidPerGpuHour: 100_000n } });
    await prisma.$transaction((tx) => runMarketSampler(tx, new Date(now - HOUR_MS)));
  });

  it("charts the hourly prices in the terminal, with the latest figures", async () => {
    const { code, stdout, stderr } = await cli(["price", "history", "RTX_4090", "--bucket", "hour", "--days", "1"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.split("\n");
    expect(lines[0]).toMatch(/^RTX 4090: \$\/GPU-hour per hour, /);
    // The axis spans the lowest to the highest charted price.
    expect(lines[1]).toMatch(/^\$0\.800 ┤/);
    expect(lines.find((line) => line.startsWith("$0.400 ┤"))).toContain("●");
    expect(stdout).toContain("● median price");
    expect(stdout).toMatch(/latest: median \$0\.40, p90 \$0\.80, min \$0\.40/);

    const raw = await cli(["price", "history", "RTX 4090", "--days", "1", "--raw"]);
    expect(JSON.parse(raw.stdout).map((p: { p90Price: string }) => p.p90Price)).toEqual(["0.40", "0.40", "0.80"]);
  });

  it("a bad bucket is a usage error", async () => {
    expect((await cli(["price", "history", "RTX_4090", "--bucket", "week"])).code).toBe(2);
  });
});

describe("api key and errors", () => {
  it("without a key anywhere, an account command says how to give one", async () => {
    const { code, stdout, stderr } = await cli(["show", "instances"]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^error: no API key: pass --api-key KEY, set GM_API_KEY, or save one with "set api-key KEY"/);
  });

  it("a refused key is the server's UNAUTHENTICATED error, not a crash", async () => {
    const { code, stderr } = await cli(["show", "instances"], { key: "gm_not_a_real_key" });
    expect(code).toBe(1);
    expect(stderr).toBe("error: UNAUTHENTICATED: The API key is unknown, revoked or expired\n");
  });

  it("GM_API_KEY, then the config file written by set api-key (mode 0600)", async () => {
    const fromEnv = await cli(["show", "instances", "--raw"], { env: { GM_API_KEY: other.key } });
    expect(fromEnv.code).toBe(0);

    const saved = await cli(["set", "api-key", client.key]);
    expect(saved.code).toBe(0);
    const path = join(configDir, "config.json");
    expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({ apiKey: client.key });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const fromFile = await cli(["show", "instances", "--raw", "--all"]);
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.stdout).length).toBeGreaterThan(0);
    // The environment wins over the file.
    const envWins = await cli(["show", "instances", "--raw"], { env: { GM_API_KEY: other.key } });
    expect(JSON.parse(envWins.stdout)).toEqual([]);
  });

  it("an unreachable API is a NETWORK_ERROR; a bad id or option is a usage error (exit 2)", async () => {
    const down = await main(["show", "instances", "--url", "http://127.0.0.1:9/graphql", "--api-key", "k"], {
      stdout: { write: () => true },
      stderr: { write: (text: string) => expect(text).toMatch(/^error: NETWORK_ERROR: cannot reach http:\/\/127\.0\.0\.1:9\/graphql/) },
      env: {},
      configPath: join(configDir, "none.json"),
    });
    expect(down).toBe(1);
    expect((await cli(["stop", "instance", "abc"], { key: client.key })).code).toBe(2);
    const unknown = await cli(["show", "instances", "--nope"], { key: client.key });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("usage: npm run cli -- show instances");
  });
});
