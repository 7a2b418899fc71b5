import {
  RegistryCredentialsUnavailableError,
  removeRegistryCredential,
  saveRegistryCredential,
} from "../domain/registryCredentials.ts";
import { prisma } from "../infra/db.ts";
import { builder } from "./builder.ts";
import { ErrorInterface } from "./errors.ts";
import { localId } from "./ids.ts";

builder.objectType(RegistryCredentialsUnavailableError, {
  name: "RegistryCredentialsUnavailableError",
  interfaces: [ErrorInterface],
  description: "The server has no key to encrypt registry passwords with, so it stores none.",
});

export const RegistryCredentialRef = builder.prismaNode("RegistryCredential", {
  id: { field: "id" },
  description: "Saved credentials for a private image registry. The password is never shown again.",
  authScopes: (credential, ctx) => ctx.viewer !== null && credential.userId === ctx.viewer.userId,
  fields: (t) => ({
    registry: t.exposeString("registry", { description: 'The registry host[:port], as image references name it ("docker.io" for bare names).' }),
    username: t.exposeString("username", { description: "The registry user name." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When they were saved." }),
  }),
});

export const RegistryAuthInput = builder.inputType("RegistryAuthInput", {
  description: "A user name and password (or token) for a private image registry.",
  fields: (t) => ({
    username: t.string({ required: true, description: "The registry user name." }),
    password: t.string({ required: true, description: "Or an access token; stored encrypted and never returned." }),
  }),
});

builder.queryField("registryCredentials", (t) =>
  t.withAuth({ permission: "READ" }).prismaConnection(
    {
      type: "RegistryCredential",
      cursor: "id",
      description: "The account's saved registry credentials (without their passwords), oldest first. Its owner's keys only.",
      resolve: (query, _root, _args, ctx) =>
        prisma.registryCredential.findMany({ ...query, where: { userId: ctx.viewer.userId }, orderBy: { id: "asc" } }),
      totalCount: (_root, _args, ctx) => prisma.registryCredential.count({ where: { userId: ctx.viewer.userId } }),
    },
    { name: "RegistryCredentialConnection", description: "A page of registry credentials." },
    { name: "RegistryCredentialEdge" },
  ),
);

builder.mutationField("saveRegistryCredential", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: RegistryCredentialRef,
    description:
      "Saves (or replaces) credentials for a private registry: rentals of its images given no registryAuth pull with them. The password is stored encrypted and sent only to the agent of a machine running such a rental.",
    errors: { types: [RegistryCredentialsUnavailableError] },
    args: {
      registry: t.arg.string({ required: true, description: "Host[:port], such as ghcr.io; docker.io for Docker Hub." }),
      auth: t.arg({ type: RegistryAuthInput, required: true, description: "The user name and password (or token)." }),
    },
    resolve: (_root, args, ctx) => saveRegistryCredential(ctx.viewer.userId, { registry: args.registry, ...args.auth }),
  }),
);

builder.mutationField("removeRegistryCredential", (t) =>
  t.withAuth({ permission: "KEYS" }).field({
    type: RegistryCredentialRef,
    description: "Removes saved registry credentials.",
    errors: {},
    args: { id: t.arg.globalID({ required: true, description: 'The credentials, such as "RegistryCredential:2".' }) },
    resolve: (_root, args, ctx) => removeRegistryCredential(ctx.viewer.userId, localId(args.id, "RegistryCredential")),
  }),
);
