import { generateKeyPairSync } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sshpk from "sshpk";
import { beforeAll, describe, expect, it } from "vitest";
import { vetMachine } from "../domain/verification.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { runCli } from "./support/cli.ts";
import { createAccount, createListedMachine } from "./support/rentals.ts";

// The reference CLI's commands that the API supports, by their names and flags, against a real server.
const app = useTestApp();

let configDir: string;
function cli(argv: string[], options: Parameters<typeof runCli>[3] = {}) {
  return runCli(app.url, join(configDir, "config.json"), argv, options);
}

let host: { userId: number; key: string };
let other: { userId: number; key: string };
let machineId: number;

beforeAll(async () => {
  configDir = await mkdtemp(join(tmpdir(), "gm-cli-parity-"));
  [host, other] = [await createAccount("host"), await createAccount("other")];
  machineId = await createListedMachine(host.userId, { numGpus: 4 });
});

const machineRow = () => prisma.machine.findUniqueOrThrow({ where: { id: machineId } });

describe("--help", () => {
  it("lists the reference's command names and says how our prices differ from its --bid_price", async () => {
    const { code, stdout } = await cli(["--help"]);
    expect(code).toBe(0);
    const names = stdout.split("\n").map((line) => /^ {2}(\S+(?: \S+)?)\s{2}/.exec(line)?.[1]).filter(Boolean);
    for (const name of [
      "search offers", "show instances", "show instance", "label instance", "show user", "show machines", "list machine",
      "unlist machine", "set min-bid", "schedule maint", "cancel maint", "show api-keys", "create api-key", "delete api-key",
      "show ssh-keys", "create ssh-key", "delete ssh-key", "show invoices", "show earnings",
    ]) {
      expect(names).toContain(name);
    }
    expect(stdout).toMatch(/--bid_price is per machine-hour/);
    expect(stdout).toMatch(/"create instance --bid" and "change bid --price" are per GPU-hour/);
  });
});

describe("show user", () => {
  it("prints the account behind the key; --raw as JSON", async () => {
    const { code, stdout } = await cli(["show", "user"], { key: host.key });
    expect(code).toBe(0);
    const email = (await prisma.user.findUniqueOrThrow({ where: { id: host.userId } })).email;
    expect(stdout).toMatch(/^\s*ID\s+Email\s+Balance/);
    expect(stdout).toContain(email);
    const raw = JSON.parse((await cli(["show", "user", "--raw"], { key: host.key })).stdout);
    expect(raw).toMatchObject({ id: `User:${host.userId}`, email, operator: false });
  });
});

describe("host commands", () => {
  it("show machines lists the caller's machines only", async () => {
    const mine = await cli(["show", "machines"], { key: host.key });
    expect(mine.code).toBe(0);
    const [header, row, ...rest] = mine.stdout.trim().split("\n");
    expect(header).toMatch(/^\s*ID\s+N\s+Model/);
    expect(rest).toEqual([]);
    expect(row!.trim().split(/\s+/).slice(0, 2)).toEqual([String(machineId), "4x"]);
    expect(row).toContain("$0.40");
    expect((await cli(["show", "machines", "-q"], { key: host.key })).stdout).toBe(`${machineId}\n`);
    expect(JSON.parse((await cli(["show", "machines", "--raw"], { key: other.key })).stdout)).toEqual([]);
  });

  it("list machine changes only the prices given; -l sets a rolling end date", async () => {
    const disk = await cli(["list", "machine", String(machineId), "--price_disk", "0.2"], { key: host.key });
    expect(disk.stderr).toBe("");
    expect(disk.code).toBe(0);
    expect(await machineRow()).toMatchObject({
      listed: true,
      pricePerGpuHourMicros: 400_000n,
      minBidPerGpuHourMicros: 100_000n,
      storagePricePerGbMonthMicros: 200_000n,
      inetUpPricePerGbMicros: 5_000n,
      inetDownPricePerGbMicros: 2_000n,
    });

    const gpu = await cli(["list", "machine", String(machineId), "-g", "0.5", "-u", "0.01", "-l", "30 days", "--raw"], { key: host.key });
    expect(gpu.code).toBe(0);
    expect(JSON.parse(gpu.stdout)).toMatchObject({ id: `Machine:${machineId}`, pricePerGpuHour: "0.50", listed: true, duration: 30 });
    expect(await machineRow()).toMatchObject({
      pricePerGpuHourMicros: 500_000n,
      storagePricePerGbMonthMicros: 200_000n,
      inetUpPricePerGbMicros: 10_000n,
      inetDownPricePerGbMicros: 2_000n,
      listingDurationSeconds: 30 * 86_400,
    });

    const both = await cli(["list", "machine", String(machineId), "-e", "2030-01-01", "-l", "3 days"], { key: host.key });
    expect(both.code).toBe(2);
  });

  it("set min-bid sets the lowest bid per GPU-hour; above the price is a typed error", async () => {
    const set = await cli(["set", "min-bid", String(machineId), "--price", "0.15"], { key: host.key });
    expect(set.code).toBe(0);
    expect((await machineRow()).minBidPerGpuHourMicros).toBe(150_000n);
    const tooHigh = await cli(["set", "min-bid", String(machineId), "--price", "9"], { key: host.key });
    expect(tooHigh.code).toBe(1);
    expect(tooHigh.stderr).toMatch(/^error: [A-Z_]+: /);
    expect((await machineRow()).minBidPerGpuHourMicros).toBe(150_000n);
  });

  it("another host's machine cannot be listed, unlisted or repriced", async () => {
    for (const argv of [
      ["list", "machine", String(machineId), "-g", "0.1"],
      ["unlist", "machine", String(machineId)],
      ["set", "min-bid", String(machineId), "--price", "0.1"],
    ]) {
      const { code, stderr } = await cli(argv, { key: other.key });
      expect(code).toBe(1);
      expect(stderr).toMatch(/^error: (NOT_FOUND|FORBIDDEN): /);
    }
    expect(await machineRow()).toMatchObject({ listed: true, pricePerGpuHourMicros: 500_000n, minBidPerGpuHourMicros: 150_000n });
  });

  it("schedule maint takes the reference's unix-seconds --sdate and hours --duration; cancel maint takes the machine", async () => {
    const start = Math.floor(Date.now() / 1000) + 2 * 86_400;
    const scheduled = await cli(["schedule", "maint", String(machineId), "--sdate", String(start), "--duration", "2", "--reason", "PSU swap"], { key: host.key });
    expect(scheduled.stderr).toBe("");
    expect(scheduled.stdout).toMatch(/^scheduled MaintenanceWindow:\d+ on Machine:\d+: .* \(2 h\): PSU swap/);
    const windows = await prisma.maintenanceWindow.findMany({ where: { machineId } });
    expect(windows).toHaveLength(1);
    expect(windows[0]!.startsAt.getTime()).toBe(start * 1000);
    expect(windows[0]!.endsAt.getTime() - windows[0]!.startsAt.getTime()).toBe(2 * 3_600_000);

    const past = await cli(["schedule", "maint", String(machineId), "--sdate", String(start - 3 * 86_400), "--duration", "1"], { key: host.key });
    expect(past.code).toBe(1);
    expect(await prisma.maintenanceWindow.count({ where: { machineId } })).toBe(1);

    const cancelled = await cli(["cancel", "maint", String(machineId)], { key: host.key });
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(/^cancelled MaintenanceWindow:/);
    expect((await prisma.maintenanceWindow.findFirstOrThrow({ where: { machineId } })).cancelledAt).not.toBeNull();
    expect((await cli(["cancel", "maint", String(machineId)], { key: host.key })).code).toBe(1);
  });

  it("unlist machine withdraws its offers", async () => {
    const unlisted = await cli(["unlist", "machine", String(machineId), "--raw"], { key: host.key });
    expect(JSON.parse(unlisted.stdout)).toMatchObject({ listed: false });
    const search = await cli(["search", "offers", `machine_id=${machineId}`, "--raw"]);
    expect(JSON.parse(search.stdout)).toEqual([]);
    // Listing again without --price_gpu keeps the last price.
    expect((await cli(["list", "machine", String(machineId)], { key: host.key })).code).toBe(0);
    expect(await machineRow()).toMatchObject({ listed: true, pricePerGpuHourMicros: 500_000n });
  });
});

describe("search offers -n", () => {
  it("lifts the default verified=true rentable=true, as the reference's --no-default", async () => {
    const unverified = await createListedMachine(host.userId, { numGpus: 1 });
    await prisma.$transaction((tx) => vetMachine(tx, unverified, { verification: "UNVERIFIED", datacenter: false }));
    const plain = await cli(["search", "offers", `machine_id=${unverified}`, "--raw"]);
    expect(JSON.parse(plain.stdout)).toEqual([]);
    const noDefault = await cli(["search", "offers", `machine_id=${unverified}`, "-n", "--raw"]);
    expect(noDefault.code).toBe(0);
    expect(JSON.parse(noDefault.stdout).map((o: { machineId: string }) => o.machineId)).toEqual([`Machine:${unverified}`]);
    // The query's own clauses still win over -n.
    const verifiedOnly = await cli(["search", "offers", `machine_id=${unverified} verified=true`, "-n", "--raw"]);
    expect(JSON.parse(verifiedOnly.stdout)).toEqual([]);
  });
});

describe("api keys", () => {
  it("create api-key prints a working key once; show api-keys lists it; delete api-key revokes it", async () => {
    const created = await cli(["create", "api-key", "--name", "ci", "--permissions", "read,instances"], { key: other.key });
    expect(created.stderr).toBe("");
    const id = /created (ApiKey:\d+): ci \(([A-Z,]+)\)/.exec(created.stdout);
    expect(id?.[2]?.split(",").sort()).toEqual(["INSTANCES", "READ"]);
    const token = /key \(shown once\): (\S+)/.exec(created.stdout)?.[1];
    expect(token).toBeDefined();
    expect((await cli(["show", "user", "--raw"], { key: token })).code).toBe(0);

    const shown = await cli(["show", "api-keys"], { key: other.key });
    expect(shown.stdout).toMatch(new RegExp(`\\s${id![1]!.split(":")[1]}\\s+ci\\s`));
    expect(shown.stdout).not.toContain(token);
    const raw = JSON.parse((await cli(["show", "api-keys", "--raw"], { key: other.key })).stdout);
    expect(raw.map((k: { id: string }) => k.id)).toContain(id![1]);

    const deleted = await cli(["delete", "api-key", id![1]!], { key: other.key });
    expect(deleted.stdout).toContain(`revoked ${id![1]}`);
    const refused = await cli(["show", "user"], { key: token });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: UNAUTHENTICATED: /);
  });

  it("an unknown permission is a usage error; another account's key is not revoked", async () => {
    expect((await cli(["create", "api-key", "--name", "x", "--permissions", "root"], { key: other.key })).code).toBe(2);
    const hostKey = await prisma.apiKey.findFirstOrThrow({ where: { userId: host.userId } });
    const attempt = await cli(["delete", "api-key", String(hostKey.id)], { key: other.key });
    expect(attempt.code).toBe(1);
    expect((await prisma.apiKey.findUniqueOrThrow({ where: { id: hostKey.id } })).revokedAt).toBeNull();
  });
});

describe("ssh keys", () => {
  it("create ssh-key, show ssh-keys and delete ssh-key", async () => {
    const key = sshpk.parseKey(generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }), "pem");
    key.comment = "me@laptop";
    const created = await cli(["create", "ssh-key", key.toString("ssh")], { key: other.key });
    expect(created.code).toBe(0);
    const id = /^added (\d+) SHA256:/.exec(created.stdout)?.[1];
    expect(id).toBeDefined();
    const shown = await cli(["show", "ssh-keys"], { key: other.key });
    expect(shown.stdout).toMatch(new RegExp(`\\s${id}\\s+ssh-ed25519\\s+SHA256:\\S+\\s+me@laptop`));
    expect(JSON.parse((await cli(["show", "ssh-keys", "--raw"], { key: host.key })).stdout)).toEqual([]);
    expect((await cli(["delete", "ssh-key", id!], { key: host.key })).code).toBe(1);
    expect((await cli(["delete", "ssh-key", id!], { key: other.key })).code).toBe(0);
    expect((await cli(["show", "ssh-keys"], { key: other.key })).stdout).toBe("No SSH keys.\n");
  });
});

describe("label instance", () => {
  it("sets and clears an instance's label", async () => {
    const created = await cli(["create", "instance", `${machineId}-1`, "--image", "ubuntu:22.04", "--disk", "10", "--raw"], { key: other.key });
    const { instance } = JSON.parse(created.stdout);
    const labelled = await cli(["label", "instance", instance.id.split(":")[1], "training run"], { key: other.key });
    expect(labelled.stdout).toBe(`${instance.id}: label "training run"\n`);
    const number = Number(instance.id.split(":")[1]);
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: number } })).label).toBe("training run");
    expect((await cli(["label", "instance", instance.id, "x"], { key: host.key })).code).toBe(1);
    await cli(["label", "instance", instance.id, ""], { key: other.key });
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: number } })).label).toBeNull();
    await cli(["destroy", "instance", instance.id], { key: other.key });
  });
});

describe("create instance --bid_price", () => {
  it("is per machine-hour as the reference's: split exactly over the offer's GPUs", async () => {
    const created = await cli(["create", "instance", `${machineId}-2`, "--image", "ubuntu:22.04", "--disk", "10", "--bid_price", "0.5", "--raw"], { key: other.key });
    expect(created.code).toBe(0);
    const { instance } = JSON.parse(created.stdout);
    expect(instance.bidPerGpuHour).toBe("0.25");
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: Number(instance.id.split(":")[1]) } })).bidPerGpuHourMicros).toBe(250_000n);
    await cli(["destroy", "instance", instance.id], { key: other.key });

    const count = await prisma.instance.count();
    const uneven = await cli(["create", "instance", `${machineId}-4`, "--image", "ubuntu:22.04", "--disk", "10", "--bid_price", "1.000001"], { key: other.key });
    expect(uneven.code).toBe(2);
    expect(uneven.stderr).toMatch(/does not split evenly over 4 GPUs/);
    const both = await cli(["create", "instance", `${machineId}-1`, "--image", "ubuntu:22.04", "--disk", "10", "--bid_price", "1", "--bid", "1"], { key: other.key });
    expect(both.code).toBe(2);
    expect(await prisma.instance.count()).toBe(count);
  });
});

describe("billing settings", () => {
  it("set billing changes only what is given; show billing prints them", async () => {
    const alert = await cli(["set", "billing", "--alert", "5"], { key: other.key });
    expect(alert.stderr).toBe("");
    expect(alert.stdout).toContain("balance alert: below $5.00");
    expect((await prisma.user.findUniqueOrThrow({ where: { id: other.userId } })).balanceAlertThresholdMicros).toBe(5_000_000n);
    const shown = await cli(["show", "billing", "--raw"], { key: other.key });
    expect(JSON.parse(shown.stdout)).toMatchObject({ balanceAlertThreshold: "5.00", autoBillThreshold: null });
    await cli(["set", "billing", "--alert", "off"], { key: other.key });
    expect((await prisma.user.findUniqueOrThrow({ where: { id: other.userId } })).balanceAlertThresholdMicros).toBeNull();
    expect((await cli(["set", "billing"], { key: other.key })).code).toBe(2);
  });
});
