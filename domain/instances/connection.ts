import { randomBytes } from "node:crypto";
import { z } from "zod";
import { prisma, type Tx } from "../../infra/db.ts";
import type { Instance, Machine } from "../../prisma/generated/client/client.ts";
import { recordId } from "../apiKeys.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { parseSshPublicKey } from "../sshKeys.ts";
import { parseInput } from "../validation.ts";
import { JUPYTER_PORT, type PortMapping, SSH_PORT } from "./ports.ts";
import { changeInstance } from "./service.ts";

/*
 * How a renter reaches an instance: the machine's public address, the external ports its container
 * ports are mapped to (handed out at rental, confirmed by the agent once the container is up), the
 * SSH keys that may log in as root, and the Jupyter server's token. Shown to the owner only.
 */

/** The longest a Jupyter token is kept (hex of 24 random bytes). */
const JUPYTER_TOKEN_BYTES = 24;
export const MAX_SSH_KEYS_PER_INSTANCE = 50;

/** A fresh Jupyter token, set on a JUPYTER rental when it is created. */
export function newJupyterToken(): string {
  return randomBytes(JUPYTER_TOKEN_BYTES).toString("hex");
}

/** Frees the destroyed instance's ports for the machine's next rentals. */
export async function releasePorts(tx: Tx, instanceId: number): Promise<void> {
  await tx.instancePort.deleteMany({ where: { instanceId } });
}

export interface ConnectionView {
  publicHost: string;
  sshPort: number | null;
  ports: { containerPort: number; protocol: string; hostPort: number }[];
  /** Through the API's origin (the default, as the reference's proxy instances). */
  jupyterUrl: string | null;
  /** Straight to the mapped port. */
  jupyterDirectUrl: string | null;
}

export const reportedPortsSchema = z
  .array(
    z.object({
      containerPort: z.number().int().min(1).max(99_999),
      protocol: z.enum(["tcp", "udp"]),
      hostPort: z.number().int().min(1).max(65_535),
    }),
  )
  .max(64);

/** The path of an instance's Jupyter server behind the API's proxy (also its base_url inside). */
export function jupyterPath(instanceId: number): string {
  return `/jupyter/${instanceId}/`;
}

/** The address renters connect to: the host's declared one, else what its agent reports. */
export function machineAddress(machine: Pick<Machine, "publicAddress" | "reportedAddress">): string | null {
  return machine.publicAddress ?? machine.reportedAddress;
}

/** Null until the agent has reported the container's mappings (and the machine has an address). */
export function connectionView(
  instance: Pick<Instance, "id" | "status" | "launchMode" | "jupyterToken" | "reportedPorts">,
  machine: Pick<Machine, "publicAddress" | "reportedAddress">,
  apiOrigin: string,
): ConnectionView | null {
  const host = machineAddress(machine);
  if (instance.reportedPorts === null || host === null || instance.status === "DESTROYED") return null;
  const ports = instance.reportedPorts as ConnectionView["ports"];
  const hostPortOf = (containerPort: number) => ports.find((port) => port.containerPort === containerPort && port.protocol === "tcp")?.hostPort ?? null;
  const jupyterPort = instance.launchMode === "JUPYTER" ? hostPortOf(JUPYTER_PORT) : null;
  const query = `?token=${instance.jupyterToken ?? ""}`;
  return {
    publicHost: host,
    sshPort: instance.launchMode === "SSH" ? hostPortOf(SSH_PORT) : null,
    ports,
    jupyterUrl: instance.launchMode === "JUPYTER" ? `${apiOrigin}${jupyterPath(instance.id)}${query}` : null,
    jupyterDirectUrl: jupyterPort === null ? null : `http://${hostForUrl(host)}:${jupyterPort}${jupyterPath(instance.id)}${query}`,
  };
}

const hostForUrl = (host: string) => (host.includes(":") ? `[${host}]` : host);

/** Where the API's Jupyter proxy sends an instance's requests, or null when it cannot be reached. */
export async function jupyterTarget(instanceId: number): Promise<{ host: string; port: number } | null> {
  const instance = await prisma.instance.findUnique({
    where: { id: instanceId },
    select: { status: true, launchMode: true, reportedPorts: true, machine: { select: { publicAddress: true, reportedAddress: true } } },
  });
  if (!instance || instance.launchMode !== "JUPYTER" || instance.status !== "RUNNING" || !instance.reportedPorts) return null;
  const host = machineAddress(instance.machine);
  const port = (instance.reportedPorts as unknown as PortMapping[]).find((p) => p.containerPort === JUPYTER_PORT && p.protocol === "tcp")?.hostPort;
  return host && port ? { host, port } : null;
}

const attachSchema = z.object({ instanceId: recordId, publicKey: z.string().max(16 * 1024) });
const detachSchema = z.object({ instanceId: recordId, sshKeyId: recordId });

/** Lets one more key log in to the running instance; the agent installs it without a restart. */
export function attachSshKey(clientId: number, input: { instanceId: number; publicKey: string }): Promise<Instance> {
  const { instanceId, publicKey } = parseInput(attachSchema, input);
  const parsed = parseSshPublicKey(publicKey.trim());
  return changeInstance({ id: instanceId, clientId }, async (tx, instance) => {
    const keys = await tx.instanceSshKey.findMany({ where: { instanceId }, select: { fingerprint: true } });
    if (keys.some((key) => key.fingerprint === parsed.fingerprint)) throw new ConflictError(`The instance already has the key ${parsed.fingerprint}`);
    if (keys.length >= MAX_SSH_KEYS_PER_INSTANCE) throw new ConflictError(`An instance holds at most ${MAX_SSH_KEYS_PER_INSTANCE} SSH keys`);
    await tx.instanceSshKey.create({ data: { instanceId, publicKey: parsed.publicKey, fingerprint: parsed.fingerprint } });
    return instance;
  });
}

/** Stops a key logging in to the instance; the agent removes it from the running container. */
export function detachSshKey(clientId: number, input: { instanceId: number; sshKeyId: number }): Promise<Instance> {
  const { instanceId, sshKeyId } = parseInput(detachSchema, input);
  return changeInstance({ id: instanceId, clientId }, async (tx, instance) => {
    const removed = await tx.instanceSshKey.deleteMany({ where: { id: sshKeyId, instanceId } });
    if (removed.count === 0) throw new NotFoundError("InstanceSshKey");
    return instance;
  });
}
