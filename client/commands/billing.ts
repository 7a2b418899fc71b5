import { type Command, type CommandContext, dateOption, globalId, printJson, stringOption, utcDay } from "../command.ts";
import { type Column, dollars, shortId, sumMoney, table, when } from "../format.ts";
import { allPages } from "../client.ts";
import { ChargesDocument, EarningsDocument, InvoicesDocument } from "../generated/graphql.ts";

const PERIOD_USAGE = "[--from DATE] [--to DATE]";
const PERIOD_OPTIONS = { from: { type: "string" }, to: { type: "string" } } as const;

/** The last 30 days through today by default; `to` is exclusive, as in the API. */
function period(ctx: CommandContext): { from: string; to: string } {
  return { from: dateOption(ctx, "from", utcDay(-30)), to: dateOption(ctx, "to", utcDay(1)) };
}

/** A table with a total line under its amount column. */
function withTotal<T>(columns: Column<T>[], rows: T[], amounts: string[]): string {
  return `${table(columns, rows)}\n\nTotal: ${dollars(sumMoney(amounts))}`;
}

export const showCharges: Command = {
  name: "show charges",
  usage: `${PERIOD_USAGE} [--instance ID] [--raw]`,
  summary: "What your instances were charged, per instance, day and category",
  positionals: { min: 0, max: 0 },
  options: { ...PERIOD_OPTIONS, instance: { type: "string" } },
  async run(ctx) {
    const instance = stringOption(ctx, "instance");
    const variables = { ...period(ctx), instanceId: instance ? globalId("Instance", instance) : null };
    const charges = await allPages(async (after) => (await ctx.client().request(ChargesDocument, { ...variables, after })).charges);
    if (ctx.raw) return printJson(ctx, charges);
    if (charges.length === 0) return ctx.print("No charges in this period.");
    const columns: Column<(typeof charges)[number]>[] = [
      { header: "Day", value: (c) => c.day.slice(0, 10) },
      { header: "Instance", value: (c) => shortId(c.instanceId), right: true },
      { header: "Category", value: (c) => c.category },
      { header: "Description", value: (c) => c.description },
      { header: "Amount", value: (c) => dollars(c.amount), right: true },
    ];
    ctx.print(withTotal(columns, charges, charges.map((c) => c.amount)));
  },
};

export const showInvoices: Command = {
  name: "show invoices",
  usage: `${PERIOD_USAGE} [--raw]`,
  summary: "Payments, credits, refunds and payouts, newest first",
  positionals: { min: 0, max: 0 },
  options: PERIOD_OPTIONS,
  async run(ctx) {
    const invoices = await allPages(async (after) => (await ctx.client().request(InvoicesDocument, { ...period(ctx), after })).invoices);
    if (ctx.raw) return printJson(ctx, invoices);
    if (invoices.length === 0) return ctx.print("No invoices in this period.");
    const columns: Column<(typeof invoices)[number]>[] = [
      { header: "Date", value: (i) => when(i.at) },
      { header: "Kind", value: (i) => i.kind },
      { header: "Status", value: (i) => i.status },
      { header: "Description", value: (i) => i.description },
      { header: "Amount", value: (i) => dollars(i.amount), right: true },
    ];
    ctx.print(table(columns, invoices));
  },
};

export const showEarnings: Command = {
  name: "show earnings",
  usage: `${PERIOD_USAGE} [--raw]`,
  summary: "What your machines earned as a host, per machine and day",
  positionals: { min: 0, max: 0 },
  options: PERIOD_OPTIONS,
  async run(ctx) {
    const earnings = await allPages(async (after) => (await ctx.client().request(EarningsDocument, { ...period(ctx), after })).earnings);
    if (ctx.raw) return printJson(ctx, earnings);
    if (earnings.length === 0) return ctx.print("No earnings in this period.");
    const columns: Column<(typeof earnings)[number]>[] = [
      { header: "Day", value: (e) => e.day.slice(0, 10) },
      { header: "Machine", value: (e) => shortId(e.machineId), right: true },
      { header: "GPU", value: (e) => dollars(e.gpu), right: true },
      { header: "Storage", value: (e) => dollars(e.storage), right: true },
      { header: "Bandwidth", value: (e) => dollars(e.bandwidth), right: true },
      { header: "Total", value: (e) => dollars(e.total), right: true },
    ];
    ctx.print(withTotal(columns, earnings, earnings.map((e) => e.total)));
  },
};
