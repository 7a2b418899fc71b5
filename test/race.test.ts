import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clearMachineNow, closeAuctionQueue } from "../domain/auction/service.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, expectAllocationValid, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();
afterAll(() => closeAuctionQueue());

const CLIENTS = 50;
let host: { userId: number; key: string };
let clients: { userId: number; key: string }[];

beforeAll(async () => {
  host = await createAccount("host");
  clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => createAccount(`racer${i}`)));
});

async function race(machineId: number, numGpus: number) {
  const results = await Promise.all(
    clients.map(async (client) => unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus) }, client.key)).data.createInstance)),
  );
  return {
    won: results.filter((r) => r.__typename === "CreateInstancePayload"),
    lost: results.filter((r) => r.__typename !== "CreateInstancePayload"),
  };
}

describe("50 clients racing for the last GPUs of a machine", () => {
  it("admits exactly as many on-demand rentals as fit and double-books nothing", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const first = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 4) }, host.key)).data.createInstance);
    expect(first.__typename).toBe("CreateInstancePayload");

    // 4 GPUs left, 50 clients each want 1: exactly 4 win.
    const { won, lost } = await race(machineId, 1);
    expect(won).toHaveLength(4);
    expect(lost).toHaveLength(CLIENTS - 4);
    expect(lost.every((r) => r.__typename === "InsufficientGpusError" && r.available === 0)).toBe(true);

    const rows = await prisma.instance.findMany({ where: { machineId } });
    expect(rows.reduce((sum, i) => sum + i.numGpus, 0)).toBe(8);
    await clearMachineNow(machineId);
    expect((await prisma.instance.findMany({ where: { machineId } })).every((i) => i.status === "LOADING")).toBe(true);
    await expectAllocationValid(machineId);
    expect(await prisma.offer.count({ where: { machineId, rentable: true } })).toBe(0);
  });

  it("admits 2-GPU chunks until the 8 GPUs are taken, while bids placed alongside never count", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const [onDemand, bids] = await Promise.all([
      race(machineId, 2),
      Promise.all(
        clients.slice(0, 10).map(async (client, i) =>
          unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 2, { bidPricePerGpuHour: `0.${20 + i}` }) }, client.key)).data.createInstance),
        ),
      ),
    ]);
    expect(onDemand.won).toHaveLength(4);
    expect(bids.every((r) => r.__typename === "CreateInstancePayload")).toBe(true);
    await clearMachineNow(machineId);
    const rows = await prisma.instance.findMany({ where: { machineId } });
    expect(rows.filter((i) => i.status === "LOADING").every((i) => i.kind === "ON_DEMAND")).toBe(true);
    expect(rows.filter((i) => i.kind === "INTERRUPTIBLE").every((i) => i.status === "PAUSED")).toBe(true);
    await expectAllocationValid(machineId);
  });
});
