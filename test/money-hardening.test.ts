import { beforeAll, describe, expect, it } from "vitest";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";
import { databaseSnapshot } from "./support/snapshot.ts";

/** Money that no host, client or webhook input may create, destroy or stall, end to end through the API. */
const app = useTestApp();

let host: { userId: number; key: string };
let machineId: number;
beforeAll(async () => {
  host = await createAccount("host", { credit: 0n });
  machineId = await createListedMachine(host.userId);
});

const START = `mutation ($id: ID!) { startInstance(id: $id) { __typename ... on Error { code } ... on InsufficientBalanceError { balance } } }`;
const STOP = `mutation ($id: ID!) { stopInstance(id: $id) { __typename } }`;

describe("renting and starting need credit", () => {
  it("an account at $0 or below cannot create or start an instance; debit mode can", async () => {
    const broke = await createAccount("broke", { credit: 0n });
    const before = await databaseSnapshot();
    const refused = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, broke.key)).data.createInstance);
    expect(refused).toMatchObject({ __typename: "InsufficientBalanceError", code: "INSUFFICIENT_BALANCE" });
    expect(await databaseSnapshot()).toBe(before);

    const debtor = await createAccount("debtor", { credit: 0n });
    await prisma.user.update({ where: { id: debtor.userId }, data: { debitMode: true } });
    const allowed = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, debtor.key)).data.createInstance);
    expect(allowed.__typename).toBe("CreateInstancePayload");

    const funded = await createAccount("funded", { credit: 5_000_000n });
    const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, funded.key)).data.createInstance);
    const id = created.instance.id;
    expect((await app.gql(STOP, { id }, funded.key)).data.stopInstance.__typename).toBe("MutationStopInstanceSuccess");
    // Its credit is used up meanwhile.
    await prisma.user.update({ where: { id: funded.userId }, data: { balanceMicros: 0n } });
    const stopped = await databaseSnapshot();
    const start = unwrap((await app.gql(START, { id }, funded.key)).data.startInstance);
    expect(start).toEqual({ __typename: "InsufficientBalanceError", code: "INSUFFICIENT_BALANCE", balance: "0.00" });
    expect(await databaseSnapshot()).toBe(stopped);
    await prisma.user.update({ where: { id: funded.userId }, data: { balanceMicros: 1n } });
    expect((await app.gql(START, { id }, funded.key)).data.startInstance.__typename).toBe("MutationStartInstanceSuccess");
  });
});

