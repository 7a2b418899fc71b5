import { beforeAll, describe, expect, it } from "vitest";
import { machineHeartbeat, sweepMachineLiveness } from "../domain/agent/liveness.ts";
import { DISCONNECT_PENALTY_SECONDS } from "../domain/agent/reliability.ts";
import { scheduleMaintenance } from "../domain/maintenance.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { databaseSnapshot } from "./support/snapshot.ts";
import { subscribe } from "./support/ws.ts";
import { CREATE_INSTANCE, DAY, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();
const HOUR = 3_600_000;

let host: { userId: number; key: string };
let renter: { userId: number; key: string };
let bystander: { userId: number; key: string };

beforeAll(async () => {
  host = await createAccount("host");
  renter = await createAccount("renter");
  bystander = await createAccount("bystander");
});

const SCHEDULE = /* GraphQL */ `
  mutation ($machineId: ID!, $start: DateTime!, $hours: Float!, $reason: String) {
    scheduleMaintenance(machineId: $machineId, start: $start, durationHours: $hours, reason: $reason) {
      __typename
      ... on MutationScheduleMaintenanceSuccess { data { id machineId startsAt endsAt durationHours reason cancelledAt } }
      ... on Error { code message }
      ... on ValidationError { issues { path message } }
      ... on MaintenanceOverlapError { existingStartsAt existingEndsAt }
    }
  }
`;
const CANCEL = /* GraphQL */ `
  mutation ($id: ID!) { cancelMaintenance(id: $id) { __typename ... on MutationCancelMaintenanceSuccess { data { id cancelledAt } } ... on Error { code } } }
`;
const INSTANCE = /* GraphQL */ `
  query ($id: ID!) { instance(id: $id) { id statusMessage endDate maintenance { id startsAt endsAt reason } } }
`;
const INSTANCE_STATUS = /* GraphQL */ `
  subscription ($id: ID) { instanceStatus(instanceId: $id) { id statusMessage } }
`;

const rent = async (client: { key: string }, machineId: number, numGpus = 1) =>
  unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus) }, client.key)).data.createInstance);
const offersOf = (machineId: number) => prisma.offer.findMany({ where: { machineId }, orderBy: { numGpus: "asc" } });
const outbox = (userId: number) => prisma.notificationOutbox.findMany({ where: { userId }, orderBy: { id: "asc" } });

describe("scheduleMaintenance", () => {
  it("tells the machine's renters (status message, event, email) and sells only rentals that end before the window", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const otherMachine = await createListedMachine(host.userId, { numGpus: 1 });
    const rental = await rent(renter, machineId);
    const elsewhere = await rent(bystander, otherMachine);
    const events = subscribe(app.url, renter.key, INSTANCE_STATUS, { id: rental.instance.id });
    await events.next();

    const start = new Date(Date.now() + 2 * HOUR);
    const result = await app.gql(SCHEDULE, { machineId: `Machine:${machineId}`, start: start.toISOString(), hours: 3, reason: "new PSU" }, host.key);
    const window = result.data.scheduleMaintenance;
    expect(window.__typename, JSON.stringify(result)).toBe("MutationScheduleMaintenanceSuccess");
    expect(window.data).toMatchObject({
      machineId: `Machine:${machineId}`,
      startsAt: start.toISOString(),
      endsAt: new Date(start.getTime() + 3 * HOUR).toISOString(),
      durationHours: 3,
      reason: "new PSU",
      cancelledAt: null,
    });

    // The renter: an event with the new status message, the window on its instance, one email.
    const event = await events.next((i) => /maintenance/i.test(i.statusMessage ?? ""));
    expect(event.statusMessage).toContain(start.toISOString());
    const seen = (await app.gql(INSTANCE, { id: rental.instance.id }, renter.key)).data.instance;
    expect(seen.maintenance).toEqual([{ id: window.data.id, startsAt: start.toISOString(), endsAt: window.data.endsAt, reason: "new PSU" }]);
    const mails = await outbox(renter.userId);
    expect(mails.map((mail) => mail.kind)).toEqual(["MAINTENANCE_SCHEDULED"]);
    expect(mails[0].body).toContain(String(Number(rental.instance.id.split(":")[1])));
    // Nobody else is told.
    expect(await outbox(bystander.userId)).toEqual([]);
    expect(await outbox(host.userId)).toEqual([]);
    const untouched = (await app.gql(INSTANCE, { id: elsewhere.instance.id }, bystander.key)).data.instance;
    expect(untouched.maintenance).toEqual([]);
    expect(untouched.statusMessage ?? "").not.toMatch(/maintenance/i);

    // Offers end when the window starts, and so does a rental sold now; the existing contract keeps its end.
    for (const offer of await offersOf(machineId)) expect(offer.endDate).toEqual(start);
    expect(seen.endDate).toBe(rental.instance.endDate);
    const later = await rent(bystander, machineId);
    expect(later.instance.endDate).toBe(start.toISOString());
    await events.close();
  });

  it("refuses a start in the past, an absurd duration, an overlap and another host's machine: typed errors, nothing written", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 1 });
    const start = new Date(Date.now() + DAY);
    const first = await app.gql(SCHEDULE, { machineId: `Machine:${machineId}`, start: start.toISOString(), hours: 2 }, host.key);
    expect(first.data.scheduleMaintenance.__typename).toBe("MutationScheduleMaintenanceSuccess");

    const attempts: [Record<string, unknown>, string, unknown][] = [
      [{ start: new Date(Date.now() - HOUR).toISOString(), hours: 1 }, "VALIDATION", { issues: [{ path: ["start"], message: "must be in the future" }] }],
      [{ start: start.toISOString(), hours: 0 }, "VALIDATION", { issues: [{ path: ["durationHours"], message: expect.any(String) }] }],
      [{ start: start.toISOString(), hours: 10_000 }, "VALIDATION", { issues: [{ path: ["durationHours"], message: expect.any(String) }] }],
      [{ start: new Date(Date.now() + 400 * DAY).toISOString(), hours: 1 }, "VALIDATION", { issues: [{ path: ["start"], message: expect.any(String) }] }],
      // Starts inside the first window, then covers it from before.
      [{ start: new Date(start.getTime() + HOUR).toISOString(), hours: 2 }, "MAINTENANCE_OVERLAP", { existingStartsAt: start.toISOString() }],
      [{ start: new Date(start.getTime() - HOUR).toISOString(), hours: 5 }, "MAINTENANCE_OVERLAP", { existingStartsAt: start.toISOString() }],
    ];
    for (const [variables, code, extra] of attempts) {
      const before = await databaseSnapshot();
      const result = await app.gql(SCHEDULE, { machineId: `Machine:${machineId}`, ...variables }, host.key);
      expect(result.data.scheduleMaintenance, JSON.stringify(variables)).toMatchObject({ code, ...(extra as object) });
      expect(await databaseSnapshot()).toBe(before);
    }
    // Right after the first window is fine.
    const after = await app.gql(SCHEDULE, { machineId: `Machine:${machineId}`, start: new Date(start.getTime() + 2 * HOUR).toISOString(), hours: 1 }, host.key);
    expect(after.data.scheduleMaintenance.__typename).toBe("MutationScheduleMaintenanceSuccess");

    // Another account's machine does not exist for the caller; nor does its window.
    const before = await databaseSnapshot();
    const foreign = await app.gql(SCHEDULE, { machineId: `Machine:${machineId}`, start: new Date(Date.now() + 3 * DAY).toISOString(), hours: 1 }, renter.key);
    expect(foreign.data.scheduleMaintenance.code).toBe("NOT_FOUND");
    expect((await app.gql(CANCEL, { id: first.data.scheduleMaintenance.data.id }, renter.key)).data.cancelMaintenance.code).toBe("NOT_FOUND");
    expect(await databaseSnapshot()).toBe(before);
  });

  it("cancelling tells the renters and gives the offers their listing's end date back", async () => {
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const client = await createAccount("canceller");
    const rental = await rent(client, machineId);
    const start = new Date(Date.now() + 5 * HOUR);
    const window = (await app.gql(SCHEDULE, { machineId: `Machine:${machineId}`, start: start.toISOString(), hours: 1 }, host.key)).data.scheduleMaintenance.data;
    for (const offer of await offersOf(machineId)) expect(offer.endDate).toEqual(start);

    const cancelled = await app.gql(CANCEL, { id: window.id }, host.key);
    expect(cancelled.data.cancelMaintenance.data.cancelledAt).not.toBeNull();
    const listingEnd = (await prisma.machine.findUniqueOrThrow({ where: { id: machineId } })).endDate;
    for (const offer of await offersOf(machineId)) expect(offer.endDate).toEqual(listingEnd);
    expect((await outbox(client.userId)).map((mail) => mail.kind)).toEqual(["MAINTENANCE_SCHEDULED", "MAINTENANCE_CANCELLED"]);
    const seen = (await app.gql(INSTANCE, { id: rental.instance.id }, client.key)).data.instance;
    expect(seen.maintenance).toEqual([]);
    expect(seen.statusMessage).toMatch(/cancelled/);
    // Cancelled once: again is NOT_FOUND.
    expect((await app.gql(CANCEL, { id: window.id }, host.key)).data.cancelMaintenance.code).toBe("NOT_FOUND");
  });
});

describe("during the window", () => {
  it("offers are not rentable and the machine's reliability does not count the window as an outage", async () => {
    const t0 = Date.now();
    const at = (ms: number) => new Date(t0 + ms);
    const inMaintenance = await createListedMachine(host.userId, { numGpus: 1 });
    const twin = await createListedMachine(host.userId, { numGpus: 1 });
    for (const id of [inMaintenance, twin]) await machineHeartbeat(id, null, at(0));
    await scheduleMaintenance(host.userId, { machineId: inMaintenance, start: at(10 * 60_000), durationHours: 6 }, at(0));

    // The window starts with both machines online: the one in maintenance stops selling, its twin does not.
    for (const id of [inMaintenance, twin]) await machineHeartbeat(id, null, at(10 * 60_000));
    await sweepMachineLiveness(at(10 * 60_000 + 1000));
    const atStart = await prisma.machine.findUniqueOrThrow({ where: { id: inMaintenance } });
    expect(atStart).toMatchObject({ inMaintenance: true, online: true });
    expect((await offersOf(inMaintenance)).map((offer) => offer.rentable)).toEqual([false]);
    expect((await offersOf(twin)).map((offer) => offer.rentable)).toEqual([true]);
    const refused = await app.gql(CREATE_INSTANCE, { input: instanceInput(inMaintenance, 1) }, renter.key);
    expect(refused.data.createInstance).toMatchObject({ code: "OFFER_UNAVAILABLE", message: expect.stringMatching(/maintenance/) });

    // Both go silent for hours: the twin takes a disconnect and an outage, the machine in maintenance neither.
    await sweepMachineLiveness(at(5 * HOUR));
    await sweepMachineLiveness(at(6 * HOUR));
    const during = await prisma.machine.findUniqueOrThrow({ where: { id: inMaintenance } });
    const twinDuring = await prisma.machine.findUniqueOrThrow({ where: { id: twin } });
    expect([during.online, twinDuring.online]).toEqual([false, false]);
    expect(during.reliability).toBeCloseTo(atStart.reliability, 6);
    expect(during.reliabilityWeight).toBeLessThanOrEqual(atStart.reliabilityWeight);
    expect(twinDuring.reliabilityWeight).toBeGreaterThan(atStart.reliabilityWeight + DISCONNECT_PENALTY_SECONDS);
    expect(twinDuring.reliability).toBeLessThan(atStart.reliability - 0.02);

    // Back after the window: selling again, its score as it was when the window began.
    await machineHeartbeat(inMaintenance, null, at(6 * HOUR + 10 * 60_000));
    await sweepMachineLiveness(at(6 * HOUR + 10 * 60_000 + 1000));
    const after = await prisma.machine.findUniqueOrThrow({ where: { id: inMaintenance } });
    expect(after).toMatchObject({ inMaintenance: false, online: true });
    expect(after.reliability).toBeCloseTo(atStart.reliability, 4);
    expect((await offersOf(inMaintenance)).map((offer) => offer.rentable)).toEqual([true]);
  });
});
