import { z } from "zod";

/** Environment read once and validated at start: a bad value stops the process with a clear message. */
const envSchema = z.object({
  DATABASE_URL: z.string().url(),
  REDIS_URL: z.string().url(),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Prefix for every Redis key the project writes (queues, pubsub), so that test files never meet. */
  REDIS_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]+$/).default("gm"),
  LOGIN_ATTEMPTS_PER_MINUTE: z.coerce.number().int().positive().default(10),
  MAX_QUERY_DEPTH: z.coerce.number().int().positive().default(12),
  MAX_QUERY_COST: z.coerce.number().int().positive().default(20000),
  /** The platform's cut of every metered charge in basis points (100 = 1%); hosts get the rest. */
  PLATFORM_FEE_BPS: z.coerce.number().int().min(0).max(10_000).default(0),
  /** Metering charges up to this many seconds ago, so status changes made just before have committed. */
  METERING_LAG_SECONDS: z.coerce.number().int().min(0).max(60).default(2),
  /** Spend rate limit of new accounts: total $/hr (µ$) of their rentals; see domain/billing/spendLimit.ts. */
  SPEND_LIMIT_MICROS_PER_HOUR: z.coerce.number().int().positive().default(5_000_000),
  /** Days after which an account with a verified email has no spend rate limit. */
  SPEND_LIMIT_ESTABLISHED_DAYS: z.coerce.number().int().min(0).default(30),
});

export type Config = z.infer<typeof envSchema>;

let cached: Config | undefined;

export function config(): Config {
  if (!cached) {
    const parsed = envSchema.safeParse(process.env);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      throw new Error(`Invalid environment: ${problems}`);
    }
    cached = parsed.data;
  }
  return cached;
}
