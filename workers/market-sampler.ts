import { runMarketSampler } from "../domain/market/sampler.ts";
import { prisma } from "../infra/db.ts";
import type { JobDefinition } from "./index.ts";

/**
 * Every minute (domain/market/sampler.ts), in one transaction: the sample and its rollups land
 * together, and the partition lock is held to the end. A missed minute is a gap in the history.
 */
export const marketSamplerJob: JobDefinition = {
  name: "market-sampler",
  everyMs: 60_000,
  process: () => prisma.$transaction((tx) => runMarketSampler(tx), { timeout: 50_000 }),
};
