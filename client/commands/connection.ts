import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { unwrap } from "../client.ts";
import { type Command, type CommandContext, globalId, printJson, stringOption, UsageError } from "../command.ts";
import { shortId } from "../format.ts";
import { AddSshKeyDocument, AttachSshKeyDocument, DetachSshKeyDocument, InstanceConnectionDocument, type InstanceConnectionQuery } from "../generated/graphql.ts";

/* Reaching an instance: its connection details, SSH/SCP URLs, copying files over its SSH, its keys. */

type ConnectedInstance = InstanceConnectionQuery["instance"];

async function connected(ctx: CommandContext, idText: string): Promise<ConnectedInstance> {
  return (await ctx.client().request(InstanceConnectionDocument, { id: globalId("Instance", idText) })).instance;
}

/** Host and SSH port, or a clear refusal when the instance has none (yet). */
function sshEndpoint(instance: ConnectedInstance): { host: string; port: number } {
  const { connection } = instance;
  if (!connection) throw new UsageError(`instance ${shortId(instance.id)} has no connection details yet (${instance.status}): wait until it runs`);
  if (connection.sshPort == null) throw new UsageError(`instance ${shortId(instance.id)} has no SSH port (launch mode ${instance.launchMode})`);
  return { host: connection.publicHost.includes(":") ? `[${connection.publicHost}]` : connection.publicHost, port: connection.sshPort };
}

export const showInstance: Command = {
  name: "show instance",
  usage: "<id> [--raw]",
  summary: "One instance with its connection details: address, SSH port, mapped ports, Jupyter URL, SSH keys",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const instance = await connected(ctx, ctx.positionals[0]!);
    if (ctx.raw) return printJson(ctx, instance);
    const { connection } = instance;
    const lines = [
      `${instance.id}  ${instance.status}${instance.statusMessage ? ` (${instance.statusMessage})` : ""}`,
      `image        ${instance.image} (${instance.launchMode})`,
      `GPUs         ${instance.numGpus} on Machine ${shortId(instance.machineId)}`,
    ];
    if (!connection) lines.push("connection   not yet known (the agent reports it once the container runs)");
    else {
      lines.push(`public host  ${connection.publicHost}`);
      if (connection.sshPort != null) lines.push(`ssh          ssh -p ${connection.sshPort} root@${connection.publicHost}`);
      for (const port of connection.ports) lines.push(`port         ${port.containerPort}/${port.protocol} -> ${connection.publicHost}:${port.hostPort}`);
      if (connection.jupyterUrl) lines.push(`jupyter      ${connection.jupyterUrl}`);
      if (connection.jupyterDirectUrl) lines.push(`jupyter      ${connection.jupyterDirectUrl} (direct)`);
    }
    for (const key of instance.sshKeys) lines.push(`ssh key      ${shortId(key.id)} ${key.fingerprint}`);
    ctx.print(lines.join("\n"));
  },
};

/** ssh-url / scp-url: the instance's SSH endpoint as a URL of that scheme. */
function urlCommand(scheme: "ssh" | "scp"): Command {
  return {
    name: `${scheme}-url`,
    usage: "<id>",
    summary: `The instance's ${scheme.toUpperCase()} URL: ${scheme}://root@host:port`,
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const { host, port } = sshEndpoint(await connected(ctx, ctx.positionals[0]!));
      ctx.print(`${scheme}://root@${host}:${port}`);
    },
  };
}

export const sshUrl = urlCommand("ssh");
export const scpUrl = urlCommand("scp");

/** "42:/root/data" → instance 42 and its path; anything else is local. */
function remote(spec: string): { id: string; path: string } | null {
  const match = /^(?:Instance:)?(\d+):(.*)$/.exec(spec);
  return match ? { id: match[1]!, path: match[2] || "." } : null;
}

export const copy: Command = {
  name: "copy",
  usage: "<src> <dst> [--identity FILE]   (one of them <id>:<path>, e.g. copy ./data 42:/root/data)",
  summary: "Copy files to or from an instance with scp through its SSH port",
  positionals: { min: 2, max: 2 },
  options: { identity: { type: "string" } },
  async run(ctx) {
    const [src, dst] = ctx.positionals as [string, string];
    const from = remote(src);
    const to = remote(dst);
    if ((from === null) === (to === null)) throw new UsageError("exactly one of <src> and <dst> is on an instance: <id>:<path>");
    const side = (from ?? to)!;
    const { host, port } = sshEndpoint(await connected(ctx, side.id));
    const target = `root@${host}:${side.path}`;
    const identity = stringOption(ctx, "identity");
    const args = [
      "-r", "-P", String(port), "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes",
      ...(identity ? ["-i", identity, "-o", "IdentitiesOnly=yes"] : []),
      from ? target : src, from ? dst : target,
    ];
    const child = spawn("scp", args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (chunk: Buffer) => ctx.io.stdout.write(chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => ctx.io.stderr.write(chunk.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", resolve);
    });
    if (code !== 0) throw new UsageError(`scp failed (exit ${code})`);
  },
};

/** A public key given on the command line, or the .pub file it names. */
async function publicKeyArgument(text: string): Promise<string> {
  return text.startsWith("ssh-") || text.startsWith("ecdsa-") ? text : (await readFile(text, "utf8")).trim();
}

export const createSshKey: Command = {
  name: "create ssh-key",
  usage: "<public key or .pub file>",
  summary: "Add an SSH key to the account: installed in every instance launched from then on",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const key = unwrap((await ctx.client().request(AddSshKeyDocument, { publicKey: await publicKeyArgument(ctx.positionals[0]!) })).addSshKey);
    if (ctx.raw) return printJson(ctx, key);
    ctx.print(`added ${shortId(key.id)} ${key.fingerprint}`);
  },
};

export const attachSsh: Command = {
  name: "attach ssh",
  usage: "<id> <public key or .pub file>",
  summary: "Let an SSH key log in to a running instance as root (no restart)",
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [idText, keyText] = ctx.positionals as [string, string];
    const publicKey = await publicKeyArgument(keyText);
    const instance = unwrap((await ctx.client().request(AttachSshKeyDocument, { id: globalId("Instance", idText), publicKey })).attachSshKey);
    if (ctx.raw) return printJson(ctx, instance.sshKeys);
    for (const key of instance.sshKeys) ctx.print(`${shortId(key.id)} ${key.fingerprint}`);
  },
};

export const detachSsh: Command = {
  name: "detach ssh",
  usage: "<id> <ssh key id>",
  summary: "Stop an SSH key (an id from show instance) logging in to an instance",
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [idText, keyId] = ctx.positionals as [string, string];
    const keyGlobalId = globalId("InstanceSshKey", keyId);
    const instance = unwrap((await ctx.client().request(DetachSshKeyDocument, { id: globalId("Instance", idText), keyId: keyGlobalId })).detachSshKey);
    if (ctx.raw) return printJson(ctx, instance.sshKeys);
    ctx.print(instance.sshKeys.length === 0 ? "No SSH keys left." : instance.sshKeys.map((key) => `${shortId(key.id)} ${key.fingerprint}`).join("\n"));
  },
};
