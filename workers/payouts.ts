import { runPayouts } from "../domain/payouts.ts";
import type { JobDefinition } from "./index.ts";

/**
 * Fridays at 00:00 UTC (domain/payouts.ts). A run that could not make every transfer fails and is
 * retried with backoff; the payout rows make the retries pay nobody twice.
 */
export const payoutsJob: JobDefinition = {
  name: "payouts",
  pattern: "0 0 * * 5",
  retry: { attempts: 8, backoffMs: 60_000 },
  process: () => runPayouts(),
};
