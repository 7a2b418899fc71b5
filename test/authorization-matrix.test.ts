import { generateKeyPairSync } from "node:crypto";
import sshpk from "sshpk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeAuctionQueue } from "../domain/auction/service.ts";
import { issueApiKey } from "../domain/apiKeys.ts";
import { postEntry } from "../domain/billing/ledger.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { databaseSnapshot } from "./support/snapshot.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";

/**
 * Every query and mutation that names an account's resources, tried with every credential that is
 * not that account's full key: anonymous, another account's keys of each scope, and the victim's own
 * machine- and instance-scoped keys. Each attempt must fail, reveal nothing of the victim, and leave
 * the whole database exactly as it was.
 */
const app = useTestApp();
afterAll(() => closeAuctionQueue());

interface Ids {
  apiKey: string;
  sshKey: string;
  machine: string;
  instance: string;
  template: string;
}

let victim: { userId: number; key: string; email: string };
/** A ledger description only the victim's statements may show. */
const VICTIM_CREDIT = "credit for the victim 7f3a";
let ids: Ids;
const callers: Record<string, string | undefined> = {};

function sshPublicKey(): string {
  const { publicKey } = generateKeyPairSync("ed25519");
  return sshpk.parseKey(publicKey.export({ type: "spki", format: "pem" }).toString(), "pem").toString("ssh");
}

beforeAll(async () => {
  const account = await createAccount("victim");
  victim = { ...account, email: (await prisma.user.findUniqueOrThrow({ where: { id: account.userId } })).email };
  const attacker = await createAccount("attacker");
  await prisma.$transaction((tx) =>
    postEntry(tx, { userId: victim.userId, kind: "ADJUSTMENT", amountMicros: 50_000_000n, description: VICTIM_CREDIT }),
  );

  const victimMachine = await createListedMachine(victim.userId);
  const attackerMachine = await createListedMachine(attacker.userId);
  const extraKey = await app.gql(`mutation { createApiKey(name: "ci") { ... on MutationCreateApiKeySuccess { data { apiKey { id } } } } }`, {}, victim.key);
  const ssh = await app.gql(
    `mutation ($k: String!) { addSshKey(publicKey: $k) { ... on MutationAddSshKeySuccess { data { id } } } }`,
    { k: sshPublicKey() },
    victim.key,
  );
  const template = await app.gql(
    `mutation { createTemplate(input: { name: "victim's private template", image: "victim/private", launchMode: SSH }) { ... on MutationCreateTemplateSuccess { data { id } } } }`,
    {},
    victim.key,
  );
  const victimRental = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(attackerMachine, 1) }, victim.key)).data.createInstance);
  const attackerRental = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(victimMachine, 1) }, attacker.key)).data.createInstance);

  ids = {
    apiKey: extraKey.data.createApiKey.data.apiKey.id,
    sshKey: ssh.data.addSshKey.data.id,
    machine: `Machine:${victimMachine}`,
    instance: victimRental.instance.id,
    template: template.data.createTemplate.data.id,
  };
  callers.anonymous = undefined;
  callers["attacker account key"] = attacker.key;
  callers["attacker machine key"] = (await issueApiKey(prisma, { userId: attacker.userId, name: "m", scope: "MACHINE", machineId: attackerMachine })).token;
  callers["attacker instance key"] = attackerRental.apiKey.token;
  callers["victim machine key"] = (await issueApiKey(prisma, { userId: victim.userId, name: "m", scope: "MACHINE", machineId: victimMachine })).token;
  callers["victim instance key"] = victimRental.apiKey.token;
});

const result = (field: string, success: string) => `${field} { __typename ... on ${success} { data { __typename } } ... on Error { code } }`;

/** Operations on the victim's resources; `allowedFor` names callers that may legitimately succeed. */
const operations: { name: string; document: string; variables: () => Record<string, unknown>; allowedFor?: string[] }[] = [
  { name: "revokeApiKey", document: `mutation ($id: ID!) { ${result("revokeApiKey(id: $id)", "MutationRevokeApiKeySuccess")} }`, variables: () => ({ id: ids.apiKey }) },
  { name: "removeSshKey", document: `mutation ($id: ID!) { ${result("removeSshKey(id: $id)", "MutationRemoveSshKeySuccess")} }`, variables: () => ({ id: ids.sshKey }) },
  {
    name: "listMachine",
    document: `mutation ($input: ListMachineInput!) { ${result("listMachine(input: $input)", "MutationListMachineSuccess")} }`,
    variables: () => ({ input: { machineId: ids.machine, pricePerGpuHour: "9.00", endDate: new Date(Date.now() + 86_400_000 * 10).toISOString() } }),
  },
  { name: "unlistMachine", document: `mutation ($id: ID!) { ${result("unlistMachine(machineId: $id)", "MutationUnlistMachineSuccess")} }`, variables: () => ({ id: ids.machine }) },
  { name: "setMinBid", document: `mutation ($id: ID!) { ${result('setMinBid(machineId: $id, pricePerGpuHour: "0.01")', "MutationSetMinBidSuccess")} }`, variables: () => ({ id: ids.machine }) },
  {
    name: "extendMachineEndDate",
    document: `mutation ($id: ID!, $end: DateTime!) { ${result("extendMachineEndDate(machineId: $id, endDate: $end)", "MutationExtendMachineEndDateSuccess")} }`,
    variables: () => ({ id: ids.machine, end: new Date(Date.now() + 86_400_000 * 60).toISOString() }),
  },
  { name: "stopInstance", document: `mutation ($id: ID!) { ${result("stopInstance(id: $id)", "MutationStopInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "startInstance", document: `mutation ($id: ID!) { ${result("startInstance(id: $id)", "MutationStartInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "destroyInstance", document: `mutation ($id: ID!) { ${result("destroyInstance(id: $id)", "MutationDestroyInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "labelInstance", document: `mutation ($id: ID!) { ${result('labelInstance(id: $id, label: "pwned")', "MutationLabelInstanceSuccess")} }`, variables: () => ({ id: ids.instance }) },
  { name: "changeBid", document: `mutation ($id: ID!) { ${result('changeBid(instanceId: $id, pricePerGpuHour: "5.00")', "MutationChangeBidSuccess")} }`, variables: () => ({ id: ids.instance }) },
  { name: "deleteTemplate", document: `mutation ($id: ID!) { ${result("deleteTemplate(id: $id)", "MutationDeleteTemplateSuccess")} }`, variables: () => ({ id: ids.template }) },
  {
    name: "createInstance",
    document: `mutation ($input: CreateInstanceInput!) { ${result("createInstance(input: $input)", "MutationCreateInstanceSuccess")} }`,
    variables: () => ({ input: { offerId: `${ids.machine.split(":")[1]}-1`, templateId: ids.template } }),
  },
  { name: "instance", document: `query ($id: ID!) { instance(id: $id) { id status } }`, variables: () => ({ id: ids.instance }) },
  {
    name: "charges",
    document: `query ($id: ID!, $from: DateTime!, $to: DateTime!) { charges(instanceId: $id, from: $from, to: $to) { instanceId amount } }`,
    variables: () => ({ id: ids.instance, ...lastWeek() }),
  },
  {
    name: "earnings",
    document: `query ($id: ID!, $from: DateTime!, $to: DateTime!) { earnings(machineId: $id, from: $from, to: $to) { machineId } }`,
    variables: () => ({ id: ids.machine, ...lastWeek() }),
  },
];

function lastWeek() {
  return { from: new Date(Date.now() - 7 * 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() };
}

const RECENT = `from: "${lastWeek().from}", to: "${lastWeek().to}"`;

/** Queries that list "my" things: for any other caller they must fail or show none of the victim's. */
const listings = [
  "{ me { id email } }",
  "{ apiKeys { id name } }",
  "{ sshKeys { id fingerprint } }",
  "{ myMachines { id } }",
  "{ instances(first: 50) { edges { node { id } } } }",
  "{ templates(first: 50) { edges { node { id name } } } }",
  "{ billingSettings { autoBillThreshold balanceAlertThreshold } }",
  "{ payouts { amount createdAt destination } }",
  `{ invoices(${RECENT}) { description amount } }`,
  `{ charges(${RECENT}) { instanceId } }`,
  `{ earnings(${RECENT}) { machineId } }`,
];

describe("authorization matrix", () => {
  const callerNames = ["anonymous", "attacker account key", "attacker machine key", "attacker instance key", "victim machine key", "victim instance key"];

  for (const operation of operations) {
    for (const caller of callerNames) {
      if (operation.allowedFor?.includes(caller)) continue;
      it(`${operation.name} by ${caller} fails and changes nothing`, async () => {
        const before = await databaseSnapshot();
        const response = await app.gql(operation.document, operation.variables(), callers[caller]);
        const field = response.data?.[operation.name];
        const failed = (response.errors?.length ?? 0) > 0 || (field && "code" in field);
        expect(failed, JSON.stringify(response)).toBe(true);
        expect(JSON.stringify(response)).not.toContain(victim.email);
        expect(await databaseSnapshot()).toBe(before);
      });
    }
  }

  for (const query of listings) {
    for (const caller of callerNames) {
      it(`${query} by ${caller} shows nothing of the victim`, async () => {
        const response = JSON.stringify(await app.gql(query, {}, callers[caller]));
        expect(response).not.toContain(victim.email);
        expect(response).not.toContain(VICTIM_CREDIT);
        for (const id of Object.values(ids)) expect(response).not.toContain(`"${id}"`);
      });
    }
  }

  it("the victim's own account key does succeed (the matrix is not vacuous)", async () => {
    const response = await app.gql(operations.find((o) => o.name === "labelInstance")!.document, { id: ids.instance }, victim.key);
    expect(response.data.labelInstance.__typename).toBe("MutationLabelInstanceSuccess");
    const listed = JSON.stringify(await app.gql(listings[3], {}, victim.key));
    expect(listed).toContain(ids.machine);
    const invoices = JSON.stringify(await app.gql(listings.find((q) => q.includes("invoices"))!, {}, victim.key));
    expect(invoices).toContain(VICTIM_CREDIT);
  });
});
