import { allPages, ApiError, unwrap } from "../client.ts";
import { type Command, globalId, instantOption, printJson, requiredOption, stringOption, UsageError } from "../command.ts";
import { type Column, dollars, shortId, table, when } from "../format.ts";
import {
  type ApiKeyFieldsFragment,
  type ApiKeyPermission,
  ApiKeysDocument,
  BillingSettingsDocument,
  type BillingSettingsFieldsFragment,
  CreateApiKeyDocument,
  MeDocument,
  RemoveSshKeyDocument,
  RevokeApiKeyDocument,
  type SshKeyFieldsFragment,
  SshKeysDocument,
  UpdateBillingSettingsDocument,
} from "../generated/graphql.ts";

export const showUser: Command = {
  name: "show user",
  usage: "[--raw]",
  summary: "Your account: email, balance, card and operator status",
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const { me } = await ctx.client().request(MeDocument, {});
    if (!me) throw new ApiError("UNAUTHENTICATED", "the key does not belong to an account");
    if (ctx.raw) return printJson(ctx, me);
    ctx.print(
      table(
        [
          { header: "ID", value: (u) => shortId(u.id), right: true },
          { header: "Email", value: (u) => `${u.email}${u.emailVerified ? "" : " (unverified)"}` },
          { header: "Balance", value: (u) => dollars(u.balance), right: true },
          { header: "Card", value: (u) => (u.cardVerified ? "verified" : "none") },
          { header: "Operator", value: (u) => (u.operator ? "yes" : "no") },
          { header: "Since", value: (u) => when(u.createdAt) },
        ],
        [me],
      ),
    );
  },
};

const API_KEY_COLUMNS: Column<ApiKeyFieldsFragment>[] = [
  { header: "ID", value: (k) => shortId(k.id), right: true },
  { header: "Name", value: (k) => k.name },
  { header: "Prefix", value: (k) => k.prefix },
  { header: "Scope", value: (k) => k.scope },
  { header: "Permissions", value: (k) => k.permissions.join(",") },
  { header: "Created", value: (k) => when(k.createdAt) },
  { header: "Last used", value: (k) => when(k.lastUsedAt) },
  { header: "Expires", value: (k) => when(k.expiresAt) },
  { header: "Revoked", value: (k) => when(k.revokedAt) },
];

export const showApiKeys: Command = {
  name: "show api-keys",
  usage: "[--raw]",
  summary: "Your API keys of every scope, revoked and expired ones included; never their secrets",
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const keys = await allPages(async (after) => (await ctx.client().request(ApiKeysDocument, { after })).apiKeys);
    if (ctx.raw) return printJson(ctx, keys);
    ctx.print(keys.length === 0 ? "No API keys." : table(API_KEY_COLUMNS, keys));
  },
};

const PERMISSIONS: ApiKeyPermission[] = ["READ", "INSTANCES", "MACHINES", "BILLING", "KEYS"];

/** "read,instances" → [READ, INSTANCES]. */
function permissionsOption(text: string | undefined): ApiKeyPermission[] | null {
  if (text === undefined) return null;
  return text
    .split(",")
    .filter((part) => part.trim() !== "")
    .map((part) => {
      const permission = part.trim().toUpperCase() as ApiKeyPermission;
      if (!PERMISSIONS.includes(permission)) throw new UsageError(`--permissions takes a comma-separated list of ${PERMISSIONS.join(", ")}, not "${part}"`);
      return permission;
    });
}

export const createApiKey: Command = {
  name: "create api-key",
  usage: "--name NAME [--permissions READ,INSTANCES,MACHINES,BILLING,KEYS] [--expires DATE] [--raw]",
  summary: "Issue an account API key with these permissions (all when omitted; READ always); its secret is shown once",
  positionals: { min: 0, max: 0 },
  options: { name: { type: "string" }, permissions: { type: "string" }, expires: { type: "string" } },
  async run(ctx) {
    const data = await ctx.client().request(CreateApiKeyDocument, {
      name: requiredOption(ctx, "name"),
      permissions: permissionsOption(stringOption(ctx, "permissions")),
      expiresAt: instantOption(ctx, "expires") ?? null,
    });
    const issued = unwrap(data.createApiKey);
    if (ctx.raw) return printJson(ctx, issued);
    ctx.print(`created ${issued.apiKey.id}: ${issued.apiKey.name} (${issued.apiKey.permissions.join(",")})`);
    ctx.print(`key (shown once): ${issued.token}`);
  },
};

export const deleteApiKey: Command = {
  name: "delete api-key",
  usage: "<id>",
  summary: "Revoke one of your API keys: requests with it fail at once",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const key = unwrap((await ctx.client().request(RevokeApiKeyDocument, { id: globalId("ApiKey", ctx.positionals[0]!) })).revokeApiKey);
    if (ctx.raw) return printJson(ctx, key);
    ctx.print(`revoked ${key.id}: ${key.name}`);
  },
};

const SSH_KEY_COLUMNS: Column<SshKeyFieldsFragment>[] = [
  { header: "ID", value: (k) => shortId(k.id), right: true },
  { header: "Type", value: (k) => k.keyType },
  { header: "Fingerprint", value: (k) => k.fingerprint },
  { header: "Comment", value: (k) => k.comment ?? "" },
  { header: "Added", value: (k) => when(k.createdAt) },
];

export const showSshKeys: Command = {
  name: "show ssh-keys",
  usage: "[--raw]",
  summary: "Your account's SSH public keys, installed in every instance you launch",
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const keys = await allPages(async (after) => (await ctx.client().request(SshKeysDocument, { after })).sshKeys);
    if (ctx.raw) return printJson(ctx, keys);
    ctx.print(keys.length === 0 ? "No SSH keys." : table(SSH_KEY_COLUMNS, keys));
  },
};

export const deleteSshKey: Command = {
  name: "delete ssh-key",
  usage: "<id>",
  summary: "Remove an SSH key from the account (instances launched before keep it; see detach ssh)",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const key = unwrap((await ctx.client().request(RemoveSshKeyDocument, { id: globalId("SshKey", ctx.positionals[0]!) })).removeSshKey);
    if (ctx.raw) return printJson(ctx, key);
    ctx.print(`removed ${shortId(key.id)} ${key.fingerprint}`);
  },
};

function printBillingSettings(ctx: Parameters<Command["run"]>[0], settings: BillingSettingsFieldsFragment): void {
  if (ctx.raw) return printJson(ctx, settings);
  ctx.print(`auto-billing: ${settings.autoBillThreshold == null ? "off" : `charge ${dollars(settings.autoBillAmount)} when the balance is below ${dollars(settings.autoBillThreshold)}`}`);
  ctx.print(`balance alert: ${settings.balanceAlertThreshold == null ? "off" : `below ${dollars(settings.balanceAlertThreshold)}`}`);
  ctx.print(`saved card: ${settings.savedCard ?? "none"}`);
  ctx.print(`host payouts: ${settings.payoutsEnabled ? "enabled" : "not enabled"}`);
}

export const showBilling: Command = {
  name: "show billing",
  usage: "[--raw]",
  summary: "Your billing settings: auto-billing, balance alert, saved card, payouts",
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    printBillingSettings(ctx, (await ctx.client().request(BillingSettingsDocument, {})).billingSettings);
  },
};

/** "off" (or "none") clears a threshold; otherwise a dollar amount passed on as given. */
function moneyOrOff(ctx: Parameters<Command["run"]>[0], name: string): string | null | undefined {
  const value = stringOption(ctx, name);
  if (value === undefined) return undefined;
  return value === "off" || value === "none" ? null : value;
}

export const setBilling: Command = {
  name: "set billing",
  usage: "[--threshold DOLLARS|off] [--amount DOLLARS] [--alert DOLLARS|off] [--remove-card] [--raw]",
  summary: "Change auto-billing (charge --amount to the saved card below --threshold), the low-balance --alert, or forget the card",
  positionals: { min: 0, max: 0 },
  options: { threshold: { type: "string" }, amount: { type: "string" }, alert: { type: "string" }, "remove-card": { type: "boolean" } },
  async run(ctx) {
    const input = {
      autoBillThreshold: moneyOrOff(ctx, "threshold"),
      autoBillAmount: moneyOrOff(ctx, "amount"),
      balanceAlertThreshold: moneyOrOff(ctx, "alert"),
      removeSavedCard: ctx.values["remove-card"] === true ? true : undefined,
    };
    if (Object.values(input).every((value) => value === undefined)) throw new UsageError("nothing to change: give --threshold, --amount, --alert or --remove-card");
    const settings = unwrap((await ctx.client().request(UpdateBillingSettingsDocument, { input })).updateBillingSettings);
    printBillingSettings(ctx, settings);
  },
};
