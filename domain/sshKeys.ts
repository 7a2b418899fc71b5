import sshpk from "sshpk";
import { z } from "zod";
import { prisma, type Tx } from "../infra/db.ts";
import { Prisma, type SshKey } from "../prisma/generated/client/client.ts";
import { recordId } from "./apiKeys.ts";
import { ConflictError, NotFoundError, ValidationError } from "./errors.ts";
import { parseInput } from "./validation.ts";

export const MAX_SSH_KEYS_PER_ACCOUNT = 50;
const MIN_RSA_BITS = 2048;

const addInput = z.object({
  publicKey: z
    .string()
    .max(16 * 1024)
    .trim()
    .min(1)
    // One key per call, and no control characters that could reach a terminal through the comment.
    .regex(/^[^\x00-\x08\x0a-\x1f\x7f]*$/, "must be a single line of text"),
});

export interface ParsedSshKey {
  /** The OpenSSH key type: ssh-rsa, ssh-ed25519 or ecdsa-sha2-nistp256/384/521. */
  keyType: string;
  /** OpenSSH's SHA256 fingerprint ("SHA256:..."). */
  fingerprint: string;
  comment: string | null;
  /** The key re-encoded by the parser: type, base64 and comment, single spaces. */
  publicKey: string;
}

function invalidKey(message: string): ValidationError {
  return new ValidationError([{ path: ["publicKey"], message }]);
}

/** Parses one OpenSSH public key line; rejects DSA, RSA under 2048 bits and anything unparsable. */
export function parseSshPublicKey(text: string): ParsedSshKey {
  let key: sshpk.Key;
  try {
    // sshpk fills a missing comment with the "filename" option, "(unnamed)" by default.
    key = sshpk.parseKey(text, "ssh", { filename: "" });
  } catch {
    throw invalidKey("is not an OpenSSH public key (expected a line like `ssh-ed25519 AAAA... you@host`)");
  }
  let keyType: string;
  switch (key.type) {
    case "rsa":
      if (key.size < MIN_RSA_BITS) throw invalidKey(`RSA keys need at least ${MIN_RSA_BITS} bits, this one has ${key.size}`);
      keyType = "ssh-rsa";
      break;
    case "ed25519":
      keyType = "ssh-ed25519";
      break;
    case "ecdsa":
      keyType = `ecdsa-sha2-${key.curve}`;
      break;
    default:
      throw invalidKey(`${key.type} keys are not accepted; use ssh-ed25519, ecdsa or ssh-rsa of at least ${MIN_RSA_BITS} bits`);
  }
  return {
    keyType,
    fingerprint: key.fingerprint("sha256").toString(),
    comment: key.comment || null,
    publicKey: key.toString("ssh"),
  };
}

/** Adds a key to the account: at most 50 per account, each fingerprint once. */
export async function addSshKey(userId: number, input: { publicKey: string }): Promise<SshKey> {
  const parsed = parseSshPublicKey(parseInput(addInput, input).publicKey);
  return prisma.$transaction(async (tx) => {
    // Serializes concurrent adds for the account so the limit and the duplicate check hold.
    await tx.$queryRaw`SELECT id FROM user_account WHERE id = ${userId} FOR UPDATE`;
    const existing = await tx.sshKey.findMany({ where: { userId }, select: { fingerprint: true } });
    if (existing.some((key) => key.fingerprint === parsed.fingerprint)) {
      throw new ConflictError(`This account already has the key ${parsed.fingerprint}`);
    }
    if (existing.length >= MAX_SSH_KEYS_PER_ACCOUNT) {
      throw new ConflictError(`An account holds at most ${MAX_SSH_KEYS_PER_ACCOUNT} SSH keys; remove one first`);
    }
    return tx.sshKey.create({ data: { userId, ...parsed } });
  });
}

/** Deletes one of the user's keys and returns it; another account's key is NotFound. */
export async function removeSshKey(db: Tx, userId: number, id: number): Promise<SshKey> {
  parseInput(z.object({ id: recordId }), { id });
  try {
    return await db.sshKey.delete({ where: { id, userId } });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") throw new NotFoundError("SshKey");
    throw error;
  }
}
