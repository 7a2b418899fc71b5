import type { Tx } from "../../infra/db.ts";
import type { LaunchMode, Machine } from "../../prisma/generated/client/client.ts";
import { ValidationError } from "../errors.ts";

/*
 * Direct ports. A machine declares a range of external ports; every container port an instance asks
 * for (its `ports`, plus 22 in SSH mode and 8080 in JUPYTER mode) is mapped to a free port of that
 * range when it is rented, as the reference maps them "to random external ports": the host part of
 * "8081:8081" is not honoured. The rows are unique per machine and external port, so two live
 * instances of a machine never share one; destroying an instance frees its ports. Identity ports
 * (70000 and above, N:N) hold no port of the range: the agent maps a free port of the host to itself.
 */

/** Port numbers from this one up ask for an identity mapping. */
export const IDENTITY_PORT_BASE = 70_000;
export const SSH_PORT = 22;
export const JUPYTER_PORT = 8080;

export type Protocol = "tcp" | "udp";

/** One port of the container and where it is reached from outside; hostPort null: an identity port the agent maps. */
export interface PortMapping {
  containerPort: number;
  protocol: Protocol;
  hostPort: number | null;
}

/** The container ports an instance needs, each once: the mode's own port first, then the requested ones in order. */
export function containerPorts(launchMode: LaunchMode, ports: readonly string[]): { containerPort: number; protocol: Protocol }[] {
  const wanted: { containerPort: number; protocol: Protocol }[] = [];
  const add = (containerPort: number, protocol: Protocol) => {
    if (!wanted.some((port) => port.containerPort === containerPort && port.protocol === protocol)) wanted.push({ containerPort, protocol });
  };
  if (launchMode === "SSH") add(SSH_PORT, "tcp");
  if (launchMode === "JUPYTER") add(JUPYTER_PORT, "tcp");
  for (const spec of ports) {
    // Validated by launchSpec's portList: N, N/udp, H:N, H:N/udp.
    const match = /^(\d+)(?::(\d+))?(?:\/(tcp|udp))?$/.exec(spec);
    if (!match) continue;
    add(Number(match[2] ?? match[1]), (match[3] as Protocol | undefined) ?? "tcp");
  }
  return wanted;
}

/** How many ports of a machine's direct range a rental with this launch mode and these ports holds. */
export function directPortsNeeded(launchMode: LaunchMode, ports: readonly string[]): number {
  return containerPorts(launchMode, ports).filter((port) => port.containerPort < IDENTITY_PORT_BASE).length;
}

/** Ports of the machine's range that no instance holds. */
export async function freeDirectPorts(db: Tx, machine: Pick<Machine, "id" | "directPortStart" | "directPortEnd">): Promise<number> {
  const size = directPortRangeSize(machine);
  if (size === 0) return 0;
  const held = await db.instancePort.count({
    where: { machineId: machine.id, hostPort: { gte: machine.directPortStart!, lte: machine.directPortEnd! } },
  });
  return size - held;
}

/** Ports in the machine's direct range: all free while it has no instances. */
export function directPortRangeSize(machine: Pick<Machine, "directPortStart" | "directPortEnd">): number {
  const { directPortStart: start, directPortEnd: end } = machine;
  return start === null || end === null || end < start ? 0 : end - start + 1;
}

/**
 * Maps the instance's container ports to free ports of the machine's range (the lowest free ones),
 * with the machine row locked by the caller. Too few free ports is a ValidationError on `ports`.
 */
export async function allocatePorts(
  tx: Tx,
  machine: Pick<Machine, "id" | "directPortStart" | "directPortEnd">,
  instanceId: number,
  launchMode: LaunchMode,
  ports: readonly string[],
): Promise<PortMapping[]> {
  const wanted = containerPorts(launchMode, ports);
  const needed = directPortsNeeded(launchMode, ports);
  if (needed === 0) return wanted.map((port) => ({ ...port, hostPort: null }));
  const free = await freeDirectPorts(tx, machine);
  if (needed > free) {
    throw new ValidationError([
      { path: ["ports"], message: `needs ${needed} direct ports (with the launch mode's own) and the machine has ${free} free` },
    ]);
  }
  const held = new Set(
    (await tx.instancePort.findMany({ where: { machineId: machine.id }, select: { hostPort: true } })).map((row) => row.hostPort),
  );
  const mappings: PortMapping[] = [];
  let next = machine.directPortStart!;
  for (const port of wanted) {
    if (port.containerPort >= IDENTITY_PORT_BASE) {
      mappings.push({ ...port, hostPort: null });
      continue;
    }
    while (held.has(next)) next++;
    held.add(next);
    mappings.push({ ...port, hostPort: next });
  }
  await tx.instancePort.createMany({
    data: mappings
      .filter((mapping) => mapping.hostPort !== null)
      .map((mapping) => ({ instanceId, machineId: machine.id, containerPort: mapping.containerPort, protocol: mapping.protocol, hostPort: mapping.hostPort! })),
  });
  return mappings;
}

/** The instance's mappings as handed out (`held`: its rows; identity ports with hostPort null). */
export function portMappingsOf(
  instance: { launchMode: LaunchMode; ports: readonly string[] },
  held: readonly { containerPort: number; protocol: string; hostPort: number }[],
): PortMapping[] {
  return containerPorts(instance.launchMode, instance.ports).map((port) => ({
    ...port,
    hostPort: held.find((row) => row.containerPort === port.containerPort && row.protocol === port.protocol)?.hostPort ?? null,
  }));
}
