import { addSshKey, removeSshKey } from "../domain/sshKeys.ts";
import { ConflictError } from "../domain/errors.ts";
import { prisma } from "../infra/db.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";

export const SshKeyRef = builder.prismaNode("SshKey", {
  id: { field: "id" },
  description: "An SSH public key of the account: new SSH instances let it log in as root. Its owner's keys only.",
  fields: (t) => ({
    keyType: t.exposeString("keyType", { description: "The key algorithm: ssh-rsa, ssh-ed25519 or ecdsa-sha2-nistp256/384/521." }),
    fingerprint: t.exposeString("fingerprint", { description: 'OpenSSH\'s SHA256 fingerprint, "SHA256:...".' }),
    comment: t.exposeString("comment", { nullable: true, description: "The key's comment (its last word), such as me@laptop; null for none." }),
    publicKey: t.exposeString("publicKey", { description: "The key in OpenSSH format, as installed in instances." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was added." }),
  }),
});

builder.queryField("sshKeys", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "SshKey",
      cursor: "id",
      description: "The account's SSH public keys, oldest first. Its owner's keys only.",
      resolve: (query, _root, _args, ctx) => prisma.sshKey.findMany({ ...query, where: { userId: ctx.viewer.userId }, orderBy: { id: "asc" } }),
      totalCount: (_root, _args, ctx) => prisma.sshKey.count({ where: { userId: ctx.viewer.userId } }),
    },
    { name: "SshKeyConnection", description: "A page of SSH keys." },
    { name: "SshKeyEdge" },
  ),
);

builder.mutationField("addSshKey", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: SshKeyRef,
    description: "Adds an OpenSSH public key (one line): ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa of 2048 bits or more. At most 50 per account.",
    args: { publicKey: t.arg.string({ required: true, description: "One line of an OpenSSH .pub file." }) },
    errors: { types: [ConflictError] },
    resolve: (_root, { publicKey }, ctx) => addSshKey(ctx.viewer.userId, { publicKey }),
  }),
);

builder.mutationField("removeSshKey", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: SshKeyRef,
    description: "Removes one of the account's SSH keys and returns it.",
    args: { id: t.arg.globalID({ required: true, description: 'The key, such as "SshKey:4".' }) },
    errors: {},
    resolve: (_root, { id }, ctx) => removeSshKey(prisma, ctx.viewer.userId, localId(id, "SshKey")),
  }),
);
