import { z } from "zod";
import { prisma } from "../infra/db.ts";
import { Prisma, type Template } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { ConflictError, NotFoundError } from "./errors.ts";
import { type DockerOptions, parseDockerOptions } from "./instances/dockerOptions.ts";
import { argList, imageReference, launchMode, MAX_ONSTART_CHARS } from "./instances/launchSpec.ts";
import { parseInput } from "./validation.ts";

/*
 * Templates, as the reference has them: a saved launch configuration that a rental starts from and
 * may override. Private to the owner unless public; the recommended ones have no owner and are
 * inserted by a migration. Every field is bounded, so an oversized template is a ValidationError
 * naming the field.
 */

export const MAX_TEMPLATES_PER_ACCOUNT = 200;

const templateSchema = z
  .object({
    name: z.string().trim().min(1).max(64),
    description: z.string().max(2000).default(""),
    image: z.string().trim().min(1).max(200),
    tag: z.string().trim().regex(/^\w[\w.-]{0,127}$/, "a tag such as latest or 2.3.0-cuda12.1").default("latest"),
    launchMode,
    dockerOptions: z.string().max(4096).default(""),
    onstart: z.string().max(MAX_ONSTART_CHARS).default(""),
    args: argList.default([]),
    recommendedDiskGb: z.number().int().min(1).max(100_000).default(10),
    public: z.boolean().default(false),
  })
  .superRefine((template, ctx) => {
    if (!imageReference.safeParse(`${template.image}:${template.tag}`).success) {
      ctx.addIssue({ code: "custom", path: ["image"], message: "a Docker image name without its tag, such as pytorch/pytorch" });
    }
  });

export type TemplateInput = z.input<typeof templateSchema>;

/** The ports and variables of a template's docker options. */
export function templateOptions(template: Pick<Template, "dockerOptions">): DockerOptions {
  return parseDockerOptions(template.dockerOptions, ["dockerOptions"]);
}

/** Templates the user may see and launch: their own, and every public one. */
function visibleTo(userId: number): Prisma.TemplateWhereInput {
  return { OR: [{ ownerId: userId }, { public: true }] };
}

export async function createTemplate(userId: number, input: TemplateInput): Promise<Template> {
  const data = parseInput(templateSchema, input);
  parseDockerOptions(data.dockerOptions, ["dockerOptions"]);
  return prisma.$transaction(async (tx) => {
    // Serializes concurrent creates for the account so the limit holds.
    await tx.$queryRaw`SELECT id FROM user_account WHERE id = ${userId} FOR UPDATE`;
    if ((await tx.template.count({ where: { ownerId: userId } })) >= MAX_TEMPLATES_PER_ACCOUNT) {
      throw new ConflictError(`An account holds at most ${MAX_TEMPLATES_PER_ACCOUNT} templates; delete one first`);
    }
    return tx.template.create({ data: { ...data, ownerId: userId } });
  });
}

/** Deletes one of the user's templates; instances launched from it keep running as they are. */
export async function deleteTemplate(userId: number, id: number): Promise<Template> {
  parseInput(z.object({ id: recordId }), { id });
  try {
    return await prisma.template.delete({ where: { id, ownerId: userId } });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") throw new NotFoundError("Template");
    throw error;
  }
}

const searchSchema = z.object({
  query: z.string().max(200).nullish(),
  mine: z.boolean().nullish(),
  recommended: z.boolean().nullish(),
});

/**
 * The templates the user can see whose name, image or description contains every word of `query`
 * (case-insensitive); `mine` keeps the user's own, `recommended` the platform's.
 */
export function templatesWhere(userId: number, filter: z.input<typeof searchSchema>): Prisma.TemplateWhereInput {
  const { query, mine, recommended } = parseInput(searchSchema, filter);
  const words = (query ?? "").split(/\s+/).filter(Boolean);
  return {
    AND: [
      mine ? { ownerId: userId } : visibleTo(userId),
      ...(recommended != null ? [{ recommended }] : []),
      ...words.map((word) => ({
        OR: (["name", "image", "description"] as const).map((field) => ({ [field]: { contains: word, mode: "insensitive" as const } })),
      })),
    ],
  };
}

/** What a rental asks for, before the instance's own checks: explicit values override the template's. */
export interface LaunchRequest {
  templateId?: number | null;
  image?: string | null;
  diskGb?: number | null;
  launchMode?: "SSH" | "JUPYTER" | "ENTRYPOINT" | null;
  onstart?: string | null;
  args?: string[] | null;
  env?: { key: string; value: string }[] | null;
  ports?: string[] | null;
  /** `-p` and `-e` options, added to `ports` and `env`. */
  dockerOptions?: string | null;
}

/**
 * The rental's launch settings: its docker options merged into its ports and env, then, with a
 * template, the template's values wherever the request gives none. Variables the request sets
 * replace the template's of the same name; ports add to the template's.
 */
export async function resolveLaunch<T extends LaunchRequest>(userId: number, request: T) {
  const own = parseDockerOptions(request.dockerOptions ?? "", ["dockerOptions"]);
  const env = [...own.env, ...(request.env ?? [])];
  const ports = [...own.ports, ...(request.ports ?? [])];
  const template = request.templateId == null ? null : await visibleTemplate(userId, request.templateId);
  const options = template ? templateOptions(template) : { env: [], ports: [] };
  const overridden = new Set(env.map((entry) => entry.key));
  const { dockerOptions: _options, ...rest } = request;
  return {
    ...rest,
    image: request.image ?? (template ? `${template.image}:${template.tag}` : undefined),
    launchMode: request.launchMode ?? template?.launchMode,
    diskGb: request.diskGb ?? template?.recommendedDiskGb,
    onstart: request.onstart ?? template?.onstart,
    args: request.args ?? template?.args,
    env: [...options.env.filter((entry) => !overridden.has(entry.key)), ...env],
    ports: [...new Set([...options.ports, ...ports])],
  };
}

async function visibleTemplate(userId: number, templateId: number): Promise<Template> {
  const id = parseInput(z.object({ templateId: recordId }), { templateId }).templateId;
  const template = await prisma.template.findFirst({ where: { AND: [{ id }, visibleTo(userId)] } });
  if (!template) throw new NotFoundError("Template");
  return template;
}
