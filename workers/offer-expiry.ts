import { prisma } from "../infra/db.ts";
import { syncOffers } from "../domain/offers/sync.ts";

/**
 * Listed machines whose end date has passed keep offer rows marked rentable until something
 * re-syncs them; this job does, so they drop out of search. Only machines that still have a
 * rentable offer are selected, so a second run finds nothing to do.
 */
export async function expireOffers(now = new Date()): Promise<number> {
  const expired = await prisma.machine.findMany({
    where: { listed: true, endDate: { lte: now }, offers: { some: { rentable: true } } },
    select: { id: true },
  });
  for (const { id } of expired) {
    await prisma.$transaction(async (tx) => {
      // Same row lock as listing changes take, so a concurrent relisting is never overwritten.
      await tx.$queryRaw`SELECT id FROM machine WHERE id = ${id} FOR UPDATE`;
      await syncOffers(tx, id, now);
    });
  }
  return expired.length;
}
