import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ApiError, createClient, NetworkError } from "./client.ts";
import { type Command, type CommandContext, type Io, UsageError } from "./command.ts";
import {
  changeBid,
  createInstance,
  destroyInstance,
  labelInstance,
  logs,
  rebootInstance,
  recycleInstance,
  showInstances,
  startInstance,
  stopInstance,
  watchInstance,
} from "./commands/instances.ts";
import { showBids, showOrderBook } from "./commands/bids.ts";
import { attachSsh, copy, createSshKey, detachSsh, scpUrl, showInstance, sshUrl } from "./commands/connection.ts";
import { showCharges, showEarnings, showInvoices } from "./commands/billing.ts";
import { setApiKey } from "./commands/config.ts";
import { createApiKey, deleteApiKey, deleteSshKey, setBilling, showApiKeys, showBilling, showSshKeys, showUser } from "./commands/account.ts";
import { cancelMaint, listMachine, scheduleMaint, setMinBid, showMachines, unlistMachine } from "./commands/machines.ts";
import { priceHistory } from "./commands/market.ts";
import { searchOffers } from "./commands/offers.ts";
import { createTemplate, deleteTemplate, searchTemplates } from "./commands/templates.ts";
import { defaultConfigPath, resolveSettings } from "./config.ts";

const PROGRAM = "npm run cli --";

export const COMMANDS: Command[] = [
  searchOffers,
  createInstance,
  showInstances,
  showInstance,
  sshUrl,
  scpUrl,
  copy,
  showSshKeys,
  createSshKey,
  deleteSshKey,
  attachSsh,
  detachSsh,
  startInstance,
  stopInstance,
  destroyInstance,
  rebootInstance,
  recycleInstance,
  labelInstance,
  logs,
  changeBid,
  showBids,
  showOrderBook,
  watchInstance,
  searchTemplates,
  createTemplate,
  deleteTemplate,
  showCharges,
  showInvoices,
  showEarnings,
  priceHistory,
  showMachines,
  listMachine,
  unlistMachine,
  setMinBid,
  scheduleMaint,
  cancelMaint,
  showUser,
  showApiKeys,
  createApiKey,
  deleteApiKey,
  showBilling,
  setBilling,
  setApiKey,
];

const GLOBAL_OPTIONS = {
  "api-key": { type: "string" },
  url: { type: "string" },
  raw: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const GLOBAL_USAGE = `Options for every command:
  --api-key KEY   (or env GM_API_KEY, or the config file written by "set api-key")
  --url URL       the API's GraphQL endpoint (or env GM_API_URL; default http://127.0.0.1:4000/graphql)
  --raw           JSON instead of a table

Prices are dollars per GPU-hour (bids, --price_gpu, --min_bid), as the API's. The reference CLI's
--bid_price is per machine-hour: "create instance --bid_price" takes it so (split over the offer's GPUs),
but "create instance --bid" and "change bid --price" are per GPU-hour: a 4-GPU bid of $0.25 costs
$1.00 an hour. Storage is per GB-month, bandwidth per GB.`;

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [`Usage: ${PROGRAM} <command> [arguments]`, "", ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`), "", GLOBAL_USAGE].join("\n");
}

function commandUsage(command: Command): string {
  return `usage: ${PROGRAM} ${command.name} ${command.usage}`;
}

const NO_KEY =
  'no API key: pass --api-key KEY, set GM_API_KEY, or save one with "set api-key KEY" (create keys with the createApiKey mutation or on signup)';

/** Runs one command line; resolves with the exit code. Tests call it with captured streams. */
export async function main(argv: string[], overrides: Partial<Io> = {}): Promise<number> {
  const env = overrides.env ?? process.env;
  const io: Io = {
    stdout: overrides.stdout ?? process.stdout,
    stderr: overrides.stderr ?? process.stderr,
    env,
    configPath: overrides.configPath ?? env.GM_CONFIG ?? defaultConfigPath(env),
  };
  const fail = (message: string, code: number) => {
    io.stderr.write(`error: ${message}\n`);
    return code;
  };

  // Commands are one word ("logs") or two ("show instances").
  const name = argv.slice(0, 2).join(" ");
  const command = COMMANDS.find((c) => c.name === name) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (!command) {
    if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
      io.stdout.write(`${usage()}\n`);
      return 0;
    }
    return fail(`unknown command "${name}"\n\n${usage()}`, 2);
  }

  try {
    const { values, positionals } = parseArgs({
      args: argv.slice(command.name.split(" ").length),
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.stdout.write(`${commandUsage(command)}\n\n${command.summary}\n\n${GLOBAL_USAGE}\n`);
      return 0;
    }
    if (positionals.length < command.positionals.min || positionals.length > command.positionals.max) {
      throw new UsageError(positionals.length < command.positionals.min ? "missing arguments" : "too many arguments");
    }
    const settings = await resolveSettings({ url: values.url as string | undefined, apiKey: values["api-key"] as string | undefined }, env, io.configPath);
    const ctx: CommandContext = {
      io,
      positionals,
      values: values as CommandContext["values"],
      raw: values.raw === true,
      print: (text) => io.stdout.write(`${text}\n`),
      client() {
        if (!settings.apiKey) throw new ApiError("NO_API_KEY", NO_KEY);
        return createClient(settings);
      },
      publicClient: () => createClient(settings),
    };
    await command.run(ctx);
    return 0;
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      return fail(`${(error as Error).message}\n${commandUsage(command)}`, 2);
    }
    if (error instanceof ApiError && error.code === "NO_API_KEY") return fail(error.message, 1);
    if (error instanceof ApiError || error instanceof NetworkError) return fail(`${error.code}: ${error.message}`, 1);
    return fail((error as Error).message, 1);
  }
}

function isEntryPoint(): boolean {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
