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
    name: t.exposeString("name", { description: "Its name, at most 64 characters." }),
    description: t.exposeString("description", { description: "What it is for; empty for none." }),
    image: t.exposeString("image", { description: "The image without its tag." }),
    tag: t.exposeString("tag", { description: "The image tag, such as latest." }),
    imageReference: t.string({ description: "The image reference a rental pulls: image:tag.", resolve: (template) => `${template.image}:${template.tag}` }),
    launchMode: t.expose("launchMode", { type: LaunchMode, description: "How a rental's container is entered." }),
    dockerOptions: t.exposeString("dockerOptions", { description: "As written, such as `-p 8081:8081 -e TZ=UTC`." }),
    ports: t.stringList({ description: "The ports of its -p options.", resolve: (template) => templateOptions(template).ports }),
    env: t.field({ type: [EnvVar], description: "The variables of its -e options.", resolve: (template) => templateOptions(template).env }),
    onstart: t.exposeString("onstart", { description: "The script run when the container starts; empty for none." }),
    args: t.exposeStringList("args", { description: "ENTRYPOINT mode: arguments to the image's entrypoint." }),
    recommendedDiskGb: t.exposeInt("recommendedDiskGb", { description: "The disk a rental gets when it asks for none." }),
    public: t.exposeBoolean("public", { description: "Visible to every account; otherwise its owner's only." }),
    recommended: t.exposeBoolean("recommended", { description: "One of the platform's own." }),
    mine: t.boolean({ description: "The caller owns it (and may delete it).", resolve: (template, _args, ctx) => template.ownerId !== null && template.ownerId === ctx.viewer?.userId }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was saved." }),
  }),
});

builder.queryField("templates", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "Template",
      cursor: "id",
      description:
        "Templates the caller can launch (their own and the public ones), recommended first. `query` keeps those whose name, image or description contains each of its words; `mine` only the caller's; `recommended` only (or no) platform ones.",
      args: {
        query: t.arg.string({ description: "Words that must each appear in the name, image or description (any case)." }),
        mine: t.arg.boolean({ description: "true: only the caller's own templates; otherwise every template the caller can launch." }),
        recommended: t.arg.boolean({ description: "true: only the platform's recommended templates; false: none of them." }),
      },
      resolve: (query, _root, args, ctx) =>
        prisma.template.findMany({ ...query, where: templatesWhereFor(ctx.viewer.userId, args), orderBy: [{ recommended: "desc" }, { id: "asc" }] }),
      totalCount: (_root, args, ctx) => prisma.template.count({ where: templatesWhereFor(ctx.viewer.userId, args) }),
    },
    { name: "TemplateConnection", description: "A page of templates." },
    { name: "TemplateEdge" },
  ),
);

function templatesWhereFor(userId: number, args: { query?: string | null; mine?: boolean | null; recommended?: boolean | null }) {
  return templatesWhere(userId, { query: args.query, mine: args.mine, recommended: args.recommended });
}

const CreateTemplateInput = builder.inputType("CreateTemplateInput", {
  description: "A launch configuration to save.",
  fields: (t) => ({
    name: t.string({ required: true, description: "At most 64 characters." }),
    description: t.string({ description: "At most 2,000 characters." }),
    image: t.string({ required: true, description: "The image without its tag, such as pytorch/pytorch." }),
    tag: t.string({ description: "Defaults to latest." }),
    launchMode: t.field({ type: LaunchMode, required: true, description: "How a rental's container is entered." }),
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
    args: { input: t.arg({ type: CreateTemplateInput, required: true, description: "The template." }) },
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
    args: { id: t.arg.globalID({ required: true, description: 'The template, such as "Template:3".' }) },
    resolve: (_root, { id }, ctx) => deleteTemplate(ctx.viewer.userId, localId(id, "Template")),
  }),
);
