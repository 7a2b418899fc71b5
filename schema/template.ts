import { ConflictError } from "../domain/errors.ts";
import { createTemplate, deleteTemplate, templateOptions, templatesWhere } from "../domain/templates.ts";
import { readsAccount } from "../domain/authorization.ts";
import { prisma } from "../infra/db.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { EnvVar, LaunchMode } from "./instance.ts";

export const TemplateRef = builder.prismaNode("Template", {
  id: { field: "id" },
  description: "A saved launch configuration: createInstance(input: { templateId }) starts from it, and the input's own values override it.",
  // Defence in depth: every path to a template already filters by visibility.
  authScopes: (template, ctx) => template.public || (template.ownerId !== null && readsAccount(ctx.viewer, template.ownerId)),
  fields: (t) => ({
    name: t.exposeString("name"),
    description: t.exposeString("description"),
    image: t.exposeString("image", { description: "The image without its tag." }),
    tag: t.exposeString("tag"),
    imageReference: t.string({ description: "The image reference a rental pulls: image:tag.", resolve: (template) => `${template.image}:${template.tag}` }),
    launchMode: t.expose("launchMode", { type: LaunchMode }),
    dockerOptions: t.exposeString("dockerOptions", { description: "As written, such as `-p 8081:8081 -e TZ=UTC`." }),
    ports: t.stringList({ description: "The ports of its -p options.", resolve: (template) => templateOptions(template).ports }),
    env: t.field({ type: [EnvVar], description: "The variables of its -e options.", resolve: (template) => templateOptions(template).env }),
    onstart: t.exposeString("onstart"),
    args: t.exposeStringList("args", { description: "ENTRYPOINT mode: arguments to the image's entrypoint." }),
    recommendedDiskGb: t.exposeInt("recommendedDiskGb", { description: "The disk a rental gets when it asks for none." }),
    public: t.exposeBoolean("public", { description: "Visible to every account; otherwise its owner's only." }),
    recommended: t.exposeBoolean("recommended", { description: "One of the platform's own." }),
    mine: t.boolean({ resolve: (template, _args, ctx) => template.ownerId !== null && template.ownerId === ctx.viewer?.userId }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.queryField("templates", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection({
    type: "Template",
    cursor: "id",
    description:
      "Templates the caller can launch (their own and the public ones), recommended first. `query` keeps those whose name, image or description contains each of its words; `mine` only the caller's; `recommended` only (or no) platform ones.",
    args: { query: t.arg.string(), mine: t.arg.boolean(), recommended: t.arg.boolean() },
    resolve: (query, _root, args, ctx) =>
      prisma.template.findMany({
        ...query,
        where: templatesWhere(ctx.viewer.userId, { query: args.query, mine: args.mine, recommended: args.recommended }),
        orderBy: [{ recommended: "desc" }, { id: "asc" }],
      }),
  }),
);

const CreateTemplateInput = builder.inputType("CreateTemplateInput", {
  fields: (t) => ({
    name: t.string({ required: true, description: "At most 64 characters." }),
    description: t.string({ description: "At most 2,000 characters." }),
    image: t.string({ required: true, description: "The image without its tag, such as pytorch/pytorch." }),
    tag: t.string({ description: "Defaults to latest." }),
    launchMode: t.field({ type: LaunchMode, required: true }),
    dockerOptions: t.string({
      description: "Docker create/run options as the reference takes them: -p PORT (8081:8081, 70000:70000) and -e KEY=value; others are refused.",
    }),
    onstart: t.string({ description: "At most 4,048 characters." }),
    args: t.stringList({ description: "ENTRYPOINT mode: arguments to the image's entrypoint." }),
    recommendedDiskGb: t.int({ description: "Defaults to 10." }),
    public: t.boolean({ description: "Visible to every account; defaults to private." }),
  }),
});

builder.mutationField("createTemplate", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: TemplateRef,
    description: "Saves a template (at most 200 per account); every field is bounded and checked as a rental's would be.",
    errors: { types: [ConflictError] },
    args: { input: t.arg({ type: CreateTemplateInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      createTemplate(ctx.viewer.userId, {
        ...input,
        description: input.description ?? undefined,
        tag: input.tag ?? undefined,
        dockerOptions: input.dockerOptions ?? undefined,
        onstart: input.onstart ?? undefined,
        args: input.args ?? undefined,
        recommendedDiskGb: input.recommendedDiskGb ?? undefined,
        public: input.public ?? undefined,
      }),
  }),
);

builder.mutationField("deleteTemplate", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: TemplateRef,
    description: "Deletes one of the caller's templates; instances launched from it are not affected.",
    errors: {},
    args: { id: t.arg.globalID({ required: true }) },
    resolve: (_root, { id }, ctx) => deleteTemplate(ctx.viewer.userId, localId(id, "Template")),
  }),
);
