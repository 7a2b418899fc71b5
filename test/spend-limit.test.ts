import { describe, expect, it } from "vitest";
import { stopExhaustedAccounts, BALANCE_EXHAUSTED_MESSAGE } from "../domain/billing/exhaustion.ts";
import { listen } from "../infra/pubsub.ts";
import { nextTier, spendLimitMicrosPerHour, type TrustFacts } from "../domain/billing/spendLimit.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";

const app = useTestApp();
const DAY = 86_400_000;

const SPEND_LIMITED = /* GraphQL */ `
  mutation Create($input: CreateInstanceInput!) {
    createInstance(input: $input) {
      __typename
      ... on Error { code message }
      ... on SpendRateLimitError { limitPerHour currentPerHour requestedPerHour }
    }
  }
`;

describe("spend rate limit", () => {
  it("follows the documented tiers: new, verified email, verified card, then established by age and payments", () => {
    const now = new Date();
    const old = new Date(now.getTime() - 30 * DAY);
    const facts = (over: Partial<TrustFacts>): TrustFacts => ({ emailVerified: false, cardVerified: false, createdAt: now, paidMicros: 0n, ...over });
    expect(spendLimitMicrosPerHour(facts({ createdAt: new Date(now.getTime() - 400 * DAY), cardVerified: true, paidMicros: 10n ** 9n }), now)).toBe(5_000_000n);
    expect(spendLimitMicrosPerHour(facts({ emailVerified: true, createdAt: old, paidMicros: 10n ** 9n }), now)).toBe(20_000_000n);
    expect(spendLimitMicrosPerHour(facts({ emailVerified: true, cardVerified: true }), now)).toBe(100_000_000n);
    expect(spendLimitMicrosPerHour(facts({ emailVerified: true, cardVerified: true, createdAt: old }), now)).toBe(100_000_000n);
    expect(spendLimitMicrosPerHour(facts({ emailVerified: true, cardVerified: true, paidMicros: 50_000_000n }), now)).toBe(100_000_000n);
    expect(spendLimitMicrosPerHour(facts({ emailVerified: true, cardVerified: true, createdAt: old, paidMicros: 50_000_000n }), now)).toBeNull();
    expect(nextTier(facts({ emailVerified: true, cardVerified: true, createdAt: new Date(now.getTime() - 10 * DAY), paidMicros: 20_000_000n }), now)).toEqual({
      tier: "ESTABLISHED",
      requirements: ["an account 30 days old (20 to go)", "$50.00 paid in total ($30.00 to go)"],
    });
  });

  it("refuses a rental over the limit with a typed SPEND_RATE_LIMIT error, and verification raises it", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    await prisma.user.update({ where: { id: client.userId }, data: { emailVerified: false } });
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const other = await createListedMachine(host.userId, { numGpus: 8 });

    // 8 GPUs × $0.40 + 20 GB × $0.10/720 = $3.202777/hr: under $5.
    const first = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 8) }, client.key)).data.createInstance);
    expect(first.instance.status).toBe("SCHEDULING");

    const refused = (await app.gql(SPEND_LIMITED, { input: instanceInput(other, 8) }, client.key)).data.createInstance;
    expect(refused).toMatchObject({
      __typename: "SpendRateLimitError",
      code: "SPEND_RATE_LIMIT",
      limitPerHour: "5.00",
      currentPerHour: "3.202777",
      requestedPerHour: "3.202777",
    });
    expect(await prisma.instance.count({ where: { clientId: client.userId } })).toBe(1);

    // A smaller rental still fits.
    const small = (await app.gql(SPEND_LIMITED, { input: instanceInput(other, 4) }, client.key)).data.createInstance;
    expect(small.__typename).toBe("MutationCreateInstanceSuccess");

    await prisma.user.update({ where: { id: client.userId }, data: { emailVerified: true } });
    const third = await createListedMachine(host.userId, { numGpus: 8 });
    const verified = (await app.gql(SPEND_LIMITED, { input: instanceInput(third, 8) }, client.key)).data.createInstance;
    expect(verified.__typename).toBe("MutationCreateInstanceSuccess");
  });
});

describe("exhausted balance", () => {
  it("stops (not destroys) the instances of accounts at or below zero, unless in debit mode", async () => {
    const host = await createAccount("host");
    const broke = await createAccount("broke");
    const debtor = await createAccount("debtor");
    const funded = await createAccount("funded");
    const machineId = await createListedMachine(host.userId, { numGpus: 8 });
    const ids: Record<string, number> = {};
    for (const [name, account] of Object.entries({ broke, debtor, funded })) {
      const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 2) }, account.key)).data.createInstance);
      ids[name] = Number(created.instance.id.split(":")[1]); // global id "Instance:12"
    }
    // Their credit used up since.
    await prisma.user.update({ where: { id: broke.userId }, data: { balanceMicros: 0n } });
    await prisma.user.update({ where: { id: debtor.userId }, data: { debitMode: true, balanceMicros: -10n } });
    await prisma.user.update({ where: { id: funded.userId }, data: { balanceMicros: 1n } });
    // The owner hears of the stop at once (instanceStatus subscriptions follow this topic).
    const events = listen("instanceStatus", broke.userId, (a, b) => ({ instanceIds: [...a.instanceIds, ...b.instanceIds] }));
    await events.ready;
    expect(await stopExhaustedAccounts()).toBe(1);
    expect((await events.next()).instanceIds).toEqual([ids.broke]);
    events.close();
    const stopped = await prisma.instance.findUniqueOrThrow({ where: { id: ids.broke }, include: { statusChanges: { orderBy: { id: "desc" }, take: 1 } } });
    expect(stopped).toMatchObject({ status: "STOPPED", intendedStatus: "STOPPED", statusMessage: BALANCE_EXHAUSTED_MESSAGE });
    expect(stopped.statusChanges[0]).toMatchObject({ event: "BALANCE_EXHAUSTED", toStatus: "STOPPED" });
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: ids.debtor } })).status).not.toBe("STOPPED");
    expect((await prisma.instance.findUniqueOrThrow({ where: { id: ids.funded } })).status).not.toBe("STOPPED");
    // Stopped instances stay stopped: nothing more to stop.
    expect(await stopExhaustedAccounts()).toBe(0);
  });
});
