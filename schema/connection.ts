import { readsAccount } from "../domain/authorization.ts";
import { ConflictError } from "../domain/errors.ts";
import { attachSshKey, type ConnectionView, connectionView, detachSshKey } from "../domain/instances/connection.ts";
import { builder } from "./builder.ts";
import { localId } from "./ids.ts";
import { InstanceRef } from "./instance.ts";

/* How a renter reaches an instance: address, mapped ports, SSH keys, Jupyter. Owner only. */

const MappedPort = builder.objectRef<ConnectionView["ports"][number]>("MappedPort").implement({
  description: "A port of the container and the external port it is reached at on publicHost.",
  fields: (t) => ({
    containerPort: t.exposeInt("containerPort", { description: "Inside the container (identity ports: the 70000+ number asked for)." }),
    protocol: t.exposeString("protocol", { description: "The transport: tcp or udp." }),
    hostPort: t.exposeInt("hostPort", { description: "The external port on publicHost." }),
  }),
});

const Connection = builder.objectRef<ConnectionView>("ConnectionDetails").implement({
  description: "Where the instance is reached, as its agent reported it once the container was up.",
  fields: (t) => ({
    publicHost: t.exposeString("publicHost", { description: "The machine's public address." }),
    sshPort: t.exposeInt("sshPort", { nullable: true, description: "SSH mode: the external port of the container's port 22 (user root)." }),
    ports: t.field({ type: [MappedPort], description: "Every mapped port of the container.", resolve: (connection) => connection.ports }),
    jupyterUrl: t.exposeString("jupyterUrl", {
      nullable: true,
      description: "JUPYTER mode: the Jupyter server through the API's proxy, with its token.",
    }),
    jupyterDirectUrl: t.exposeString("jupyterDirectUrl", {
      nullable: true,
      description: "JUPYTER mode: the Jupyter server straight at its mapped port, with its token.",
    }),
  }),
});

builder.prismaObject("InstanceSshKey", {
  description: "A public key that may log in to the instance as root.",
  fields: (t) => ({
    id: t.globalID({ description: "Its id, for detachSshKey.", resolve: (key) => ({ type: "InstanceSshKey", id: key.id }) }),
    fingerprint: t.exposeString("fingerprint", { description: 'OpenSSH\'s SHA256 fingerprint, "SHA256:...".' }),
    publicKey: t.exposeString("publicKey", { description: "The key in OpenSSH format." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was given to the instance." }),
  }),
});

builder.prismaObjectFields("Instance", (t) => ({
  connection: t.field({
    type: Connection,
    nullable: true,
    description: "How to reach it: public host, SSH port, mapped ports, Jupyter URL. Its owner only; null until the agent has reported the container's ports.",
    select: { id: true, clientId: true, status: true, launchMode: true, jupyterToken: true, reportedPorts: true, machine: { select: { publicAddress: true, reportedAddress: true } } },
    resolve: (instance, _args, ctx) =>
      readsAccount(ctx.viewer, instance.clientId) ? connectionView(instance, instance.machine, ctx.origin) : null,
  }),
  sshKeys: t.relation("sshKeys", {
    description: "The keys that may log in as root: the account's keys at launch, then those attached.",
    query: { orderBy: { id: "asc" } },
  }),
}));

builder.mutationField("attachSshKey", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: InstanceRef,
    description: "Lets an OpenSSH public key log in to the instance as root; a running container gets it within seconds, without a restart.",
    errors: { types: [ConflictError] },
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      publicKey: t.arg.string({ required: true, description: "One line of an OpenSSH .pub file." }),
    },
    resolve: (_root, args, ctx) =>
      attachSshKey(ctx.viewer.userId, { instanceId: localId(args.instanceId, "Instance", "instanceId"), publicKey: args.publicKey }),
  }),
);

builder.mutationField("detachSshKey", (t) =>
  t.withAuth({ permission: "INSTANCES" }).field({
    type: InstanceRef,
    description: "Stops a key (an id from Instance.sshKeys) logging in to the instance; a running container drops it within seconds.",
    errors: {},
    args: {
      instanceId: t.arg.globalID({ required: true, description: 'The instance, such as "Instance:7".' }),
      sshKeyId: t.arg.globalID({ required: true, description: 'The key, such as "InstanceSshKey:3".' }),
    },
    resolve: (_root, args, ctx) =>
      detachSshKey(ctx.viewer.userId, {
        instanceId: localId(args.instanceId, "Instance", "instanceId"),
        sshKeyId: localId(args.sshKeyId, "InstanceSshKey", "sshKeyId"),
      }),
  }),
);
