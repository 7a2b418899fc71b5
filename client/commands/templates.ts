import { unwrap } from "../client.ts";
import { type Command, globalId, numberOption, printJson, requiredOption, stringOption } from "../command.ts";
import { type Column, shortId, table } from "../format.ts";
import { CreateTemplateDocument, DeleteTemplateDocument, type TemplateFieldsFragment, TemplatesDocument } from "../generated/graphql.ts";
import { LAUNCH_OPTIONS, launchModeOption, onstartScript } from "./instances.ts";

const TEMPLATE_COLUMNS: Column<TemplateFieldsFragment>[] = [
  { header: "ID", value: (t) => shortId(t.id), right: true },
  { header: "Name", value: (t) => t.name },
  { header: "Image", value: (t) => t.imageReference },
  { header: "Mode", value: (t) => t.launchMode },
  { header: "Disk", value: (t) => `${t.recommendedDiskGb}GB`, right: true },
  { header: "Options", value: (t) => t.dockerOptions },
  { header: "Visibility", value: (t) => (t.recommended ? "recommended" : t.public ? "public" : "private") },
];

export const searchTemplates: Command = {
  name: "search templates",
  usage: "[WORDS] [--mine] [--recommended] [--raw]",
  summary: "Templates you can launch (yours and public ones) whose name, image or description has every word",
  positionals: { min: 0, max: 1 },
  options: { mine: { type: "boolean" }, recommended: { type: "boolean" } },
  async run(ctx) {
    const data = await ctx.client().request(TemplatesDocument, {
      query: ctx.positionals[0] ?? null,
      mine: ctx.values.mine === true ? true : null,
      recommended: ctx.values.recommended === true ? true : null,
      first: 100,
    });
    const templates = data.templates.edges.map((edge) => edge.node);
    if (ctx.raw) return printJson(ctx, templates);
    ctx.print(templates.length === 0 ? "No templates." : table(TEMPLATE_COLUMNS, templates));
  },
};

export const createTemplate: Command = {
  name: "create template",
  usage:
    "<name> --image IMAGE [--tag TAG] [--ssh|--jupyter|--entrypoint] [--options='-p 8081:8081 -e K=V'] [--onstart FILE | --onstart-cmd CMD] [--args=ARG]... [--disk GB] [--description TEXT] [--public]",
  summary: "Save a template to launch instances from (create instance --template ID)",
  positionals: { min: 1, max: 1 },
  options: {
    ...LAUNCH_OPTIONS,
    image: { type: "string" },
    tag: { type: "string" },
    disk: { type: "string" },
    description: { type: "string" },
    public: { type: "boolean" },
  },
  async run(ctx) {
    const input = {
      name: ctx.positionals[0]!,
      image: requiredOption(ctx, "image"),
      tag: stringOption(ctx, "tag") ?? null,
      launchMode: launchModeOption(ctx) ?? "SSH",
      dockerOptions: stringOption(ctx, "options") ?? null,
      onstart: await onstartScript(ctx),
      args: (ctx.values.args as string[] | undefined) ?? null,
      recommendedDiskGb: numberOption(ctx, "disk", true) ?? null,
      description: stringOption(ctx, "description") ?? null,
      public: ctx.values.public === true,
    };
    const template = unwrap((await ctx.client().request(CreateTemplateDocument, { input })).createTemplate);
    if (ctx.raw) return printJson(ctx, template);
    ctx.print(`created ${template.id}: ${template.name} (${template.imageReference}, ${template.launchMode})`);
    ctx.print(`launch it with: create instance <offerId> --template ${shortId(template.id)}`);
  },
};

export const deleteTemplate: Command = {
  name: "delete template",
  usage: "<id>",
  summary: "Delete one of your templates",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const template = unwrap((await ctx.client().request(DeleteTemplateDocument, { id: globalId("Template", ctx.positionals[0]!) })).deleteTemplate);
    if (ctx.raw) return printJson(ctx, template);
    ctx.print(`deleted ${template.id}: ${template.name}`);
  },
};
