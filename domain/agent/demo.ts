import { prisma } from "../../infra/db.ts";
import { issueApiKey } from "../apiKeys.ts";
import { DEMO_HOST_EMAIL } from "../demo.ts";

const DEMO_AGENT_KEY_NAME = "demo agent (issued at start)";

export interface DemoAgentKey {
  machineId: number;
  token: string;
}

/**
 * MACHINE keys for the demo agents `npm start` runs, for the demo host's first `count` machines:
 * the previous start's demo agent keys are revoked, since tokens are never stored.
 */
export async function issueDemoAgentKeys(count: number): Promise<DemoAgentKey[]> {
  return prisma.$transaction(async (tx) => {
    const host = await tx.user.findUnique({ where: { email: DEMO_HOST_EMAIL }, select: { id: true } });
    if (!host || count <= 0) return [];
    await tx.apiKey.updateMany({ where: { userId: host.id, name: DEMO_AGENT_KEY_NAME, revokedAt: null }, data: { revokedAt: new Date() } });
    const machines = await tx.machine.findMany({ where: { hostId: host.id }, select: { id: true }, orderBy: { id: "asc" }, take: count });
    const keys: DemoAgentKey[] = [];
    for (const { id } of machines) {
      const key = await issueApiKey(tx, { userId: host.id, name: DEMO_AGENT_KEY_NAME, scope: "MACHINE", machineId: id });
      keys.push({ machineId: id, token: key.token });
    }
    return keys;
  });
}
