import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { z } from "zod";
import { config } from "../infra/config.ts";
import { prisma } from "../infra/db.ts";
import { Prisma, type RegistryCredential } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { AppError, NotFoundError } from "./errors.ts";
import { parseInput } from "./validation.ts";

/*
 * Credentials for private image registries: given with a rental, or saved on the account for a
 * registry. Passwords are encrypted (AES-256-GCM, REGISTRY_CREDENTIALS_KEY) before they are stored,
 * decrypted only for the assignment the agent of the rental's machine receives, and never returned
 * by any other field.
 */

export class RegistryCredentialsUnavailableError extends AppError {
  constructor() {
    super("Private registry credentials cannot be stored here: the server has no REGISTRY_CREDENTIALS_KEY", "REGISTRY_CREDENTIALS_UNAVAILABLE");
  }
}

function key(): Buffer {
  const configured = config().REGISTRY_CREDENTIALS_KEY;
  if (!configured) throw new RegistryCredentialsUnavailableError();
  return Buffer.from(configured, "base64");
}

/** "v1.<iv>.<tag>.<ciphertext>", base64url parts. */
function encrypt(secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key(), iv);
  const sealed = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return ["v1", iv, cipher.getAuthTag(), sealed].map((part) => (typeof part === "string" ? part : part.toString("base64url"))).join(".");
}

function decrypt(stored: string): string {
  const [version, iv, tag, sealed] = stored.split(".");
  if (version !== "v1" || !iv || !tag || sealed === undefined) throw new Error("unreadable registry credential");
  const decipher = createDecipheriv("aes-256-gcm", key(), Buffer.from(iv, "base64url"));
  decipher.setAuthTag(Buffer.from(tag, "base64url"));
  return Buffer.concat([decipher.update(Buffer.from(sealed, "base64url")), decipher.final()]).toString("utf8");
}

/** The registry an image reference names: its first part when that is a host ("a.b", "host:port", "localhost"), else Docker Hub. */
export function imageRegistry(image: string): string {
  const slash = image.indexOf("/");
  const first = slash < 0 ? "" : image.slice(0, slash);
  return first && (/[.:]/.test(first) || first === "localhost") ? first : "docker.io";
}

const registry = z.string().trim().max(255).regex(/^[A-Za-z0-9.-]+(?::\d{1,5})?$/, "a registry host such as ghcr.io or registry.example.com:5000");
const authSchema = z.object({
  username: z.string().min(1).max(255).regex(/^[^\s]*$/, "no spaces or line breaks"),
  password: z.string().min(1).max(4096).regex(/^[^\r\n\0]+$/, "no line breaks"),
});
export type RegistryAuthInput = z.input<typeof authSchema>;

/** The columns a rental stores for credentials given with it. */
export function sealRentalAuth(input: RegistryAuthInput): { registryUsername: string; registryPasswordEncrypted: string } {
  const auth = parseInput(z.object({ registryAuth: authSchema }), { registryAuth: input }).registryAuth;
  return { registryUsername: auth.username, registryPasswordEncrypted: encrypt(auth.password) };
}

export const MAX_REGISTRY_CREDENTIALS = 50;

/** Saves (or replaces) the account's credentials for a registry. */
export async function saveRegistryCredential(userId: number, input: { registry: string } & RegistryAuthInput): Promise<RegistryCredential> {
  const data = parseInput(authSchema.extend({ registry }), input);
  const passwordEncrypted = encrypt(data.password);
  return prisma.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT id FROM user_account WHERE id = ${userId} FOR UPDATE`;
    const count = await tx.registryCredential.count({ where: { userId, registry: { not: data.registry } } });
    if (count >= MAX_REGISTRY_CREDENTIALS) {
      throw new AppError(`An account holds at most ${MAX_REGISTRY_CREDENTIALS} registry credentials`, "CONFLICT");
    }
    return tx.registryCredential.upsert({
      where: { userId_registry: { userId, registry: data.registry } },
      create: { userId, registry: data.registry, username: data.username, passwordEncrypted },
      update: { username: data.username, passwordEncrypted },
    });
  });
}

export async function removeRegistryCredential(userId: number, id: number): Promise<RegistryCredential> {
  parseInput(z.object({ id: recordId }), { id });
  try {
    return await prisma.registryCredential.delete({ where: { id, userId } });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") throw new NotFoundError("RegistryCredential");
    throw error;
  }
}

export interface RegistryAuth {
  registry: string;
  username: string;
  password: string;
}

/**
 * For the agent's assignments only: each rental's pull credentials, the ones given with it or else its
 * owner's saved ones for the image's registry, decrypted. Rentals without any are absent.
 */
export async function pullCredentials(
  rentals: { id: number; clientId: number; image: string; registryUsername: string | null; registryPasswordEncrypted: string | null }[],
): Promise<Map<number, RegistryAuth>> {
  const result = new Map<number, RegistryAuth>();
  const needSaved = rentals.filter((rental) => rental.registryPasswordEncrypted === null);
  const saved = needSaved.length
    ? await prisma.registryCredential.findMany({ where: { userId: { in: [...new Set(needSaved.map((rental) => rental.clientId))] } } })
    : [];
  for (const rental of rentals) {
    const host = imageRegistry(rental.image);
    if (rental.registryUsername !== null && rental.registryPasswordEncrypted !== null) {
      result.set(rental.id, { registry: host, username: rental.registryUsername, password: decrypt(rental.registryPasswordEncrypted) });
      continue;
    }
    const match = saved.find((credential) => credential.userId === rental.clientId && credential.registry === host);
    if (match) result.set(rental.id, { registry: host, username: match.username, password: decrypt(match.passwordEncrypted) });
  }
  return result;
}
