import { readsAccount, readsMachine, seesInstance } from "../domain/authorization.ts";
import type { Viewer } from "../domain/viewer.ts";
import { MAX_INT4 } from "../domain/validation.ts";
import { prisma } from "../infra/db.ts";

/**
 * Who may fetch an object by its global id through `node`/`nodes`: the same rules as every other path
 * to it. An id the caller may not see, of an unknown type, or malformed, is answered as missing
 * (null), never as forbidden, so ids of other accounts' objects cannot be probed.
 */
const visibility: Record<string, (viewer: Viewer | null, id: number) => Promise<boolean>> = {
  User: async (viewer, id) => readsAccount(viewer, id),
  Machine: async (viewer, id) => {
    const machine = await prisma.machine.findUnique({ where: { id }, select: { id: true, hostId: true, listed: true } });
    return machine !== null && (machine.listed || readsMachine(viewer, machine));
  },
  // Hosts see the rentals on their machines as Machine.contracts, never as the renter's Instance.
  Instance: async (viewer, id) => {
    const instance = await prisma.instance.findUnique({ where: { id }, select: { id: true, clientId: true, machineId: true } });
    return instance !== null && seesInstance(viewer, instance);
  },
  Bid: async (viewer, id) => {
    const instance = await prisma.instance.findUnique({ where: { id }, select: { clientId: true, kind: true } });
    return instance?.kind === "INTERRUPTIBLE" && readsAccount(viewer, instance.clientId);
  },
  ApiKey: async (viewer, id) => owns(viewer, await prisma.apiKey.findUnique({ where: { id }, select: { userId: true } })),
  SshKey: async (viewer, id) => owns(viewer, await prisma.sshKey.findUnique({ where: { id }, select: { userId: true } })),
  RegistryCredential: async (viewer, id) =>
    owns(viewer, await prisma.registryCredential.findUnique({ where: { id }, select: { userId: true } })),
  Template: async (viewer, id) => {
    const template = await prisma.template.findUnique({ where: { id }, select: { public: true, ownerId: true } });
    return template !== null && (template.public || (template.ownerId !== null && readsAccount(viewer, template.ownerId)));
  },
};

function owns(viewer: Viewer | null, row: { userId: number } | null): boolean {
  return row !== null && readsAccount(viewer, row.userId);
}

/** Offers are public; their ids are "machine-GPUs" ("12-4"), checked by the offer's own loader. */
const PUBLIC_STRING_IDS = new Set(["Offer"]);

/** Whether `node(id)` may resolve this decoded global id for the viewer. */
export async function nodeVisible(viewer: Viewer | null, decoded: { typename: string; id: string }): Promise<boolean> {
  if (PUBLIC_STRING_IDS.has(decoded.typename)) return true;
  const check = Object.hasOwn(visibility, decoded.typename) ? visibility[decoded.typename] : undefined;
  const id = /^\d{1,10}$/.test(decoded.id) ? Number(decoded.id) : 0;
  if (!check || id < 1 || id > MAX_INT4) return false;
  return check(viewer, id);
}
