import { availableParallelism } from "node:os";
import { z } from "zod";

/** Environment read once and validated at start: a bad value stops the process with a clear message. */
const envSchema = z
  .object({
    /** production: secrets that development makes up for itself must be given (REGISTRY_CREDENTIALS_KEY). */
    NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
    DATABASE_URL: z.string().url(),
    REDIS_URL: z.string().url(),
    /** A streaming replica of DATABASE_URL for search and market reads (infra/replica.ts); unset: the primary serves them. */
    DATABASE_REPLICA_URL: z.string().url().optional(),
    /** How far behind the primary the replica may be and still serve reads. */
    REPLICA_MAX_LAG_MS: z.coerce.number().int().min(100).default(5000),
    /** What `npm start` runs: everything with demo data (all), or in a deployment only the API (api) or only the workers (worker). */
    PROCESS_ROLE: z.enum(["all", "api", "worker"]).default("all"),
    PORT: z.coerce.number().int().min(0).max(65535).default(4000),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** Prefix for every Redis key the project writes (queues, pubsub), so that test files never meet. */
    REDIS_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]+$/).default("gm"),
    LOGIN_ATTEMPTS_PER_MINUTE: z.coerce.number().int().positive().default(10),
    /** argon2 hashes and verifications run at once per process (one core is left to the event loop), and how many more may wait (domain/passwordHashing.ts). */
    PASSWORD_HASHES_AT_ONCE: z.coerce.number().int().positive().default(Math.max(1, availableParallelism() - 1)),
    PASSWORD_HASH_QUEUE: z.coerce.number().int().min(0).default(16),
    /** Accounts one client address may create per hour (domain/rateLimit.ts). */
    SIGNUPS_PER_HOUR: z.coerce.number().int().positive().default(20),
    /** How often each API process closes WebSocket connections whose key was revoked since (api/app.ts). */
    WS_KEY_RECHECK_SECONDS: z.coerce.number().int().positive().default(10),
    /** Largest WebSocket message the API reads; a larger one closes the connection (1009). */
    WS_MAX_PAYLOAD_BYTES: z.coerce.number().int().min(1024).default(256 * 1024),
    /** WebSocket connections one API key may hold open per API process (more are closed with 4403). */
    WS_MAX_CONNECTIONS_PER_KEY: z.coerce.number().int().positive().default(16),
    /** Live operations (subscriptions) per WebSocket connection, and per API key over its connections, per API process. */
    WS_MAX_OPERATIONS_PER_CONNECTION: z.coerce.number().int().positive().default(100),
    WS_MAX_OPERATIONS_PER_KEY: z.coerce.number().int().positive().default(200),
    /** HTTP operations one API key may have running at once per API process (more are refused with 429, RATE_LIMITED). */
    HTTP_MAX_OPERATIONS_PER_KEY: z.coerce.number().int().positive().default(8),
    MAX_QUERY_DEPTH: z.coerce.number().int().positive().default(12),
    MAX_QUERY_COST: z.coerce.number().int().positive().default(20000),
    /** The platform's cut of every metered charge in basis points (100 = 1%); hosts get the rest. */
    PLATFORM_FEE_BPS: z.coerce.number().int().min(0).max(10_000).default(0),
    /** Metering charges up to this many seconds ago, so status changes made just before have committed. */
    METERING_LAG_SECONDS: z.coerce.number().int().min(0).max(60).default(2),
    /** Spend rate limit of new accounts: total $/hr (µ$) of their rentals; see domain/billing/spendLimit.ts. */
    SPEND_LIMIT_MICROS_PER_HOUR: z.coerce.number().int().positive().default(5_000_000),
    /** Spend rate limit once both the email and a card are verified (µ$ per hour); see domain/billing/spendLimit.ts. */
    SPEND_LIMIT_CARD_MICROS_PER_HOUR: z.coerce.number().int().positive().default(100_000_000),
    /** A verified account this many days old that has paid SPEND_LIMIT_ESTABLISHED_PAID_MICROS has no spend rate limit. */
    SPEND_LIMIT_ESTABLISHED_DAYS: z.coerce.number().int().min(0).default(30),
    SPEND_LIMIT_ESTABLISHED_PAID_MICROS: z.coerce.number().int().min(0).default(50_000_000),
    /** The free test credit of an account whose email and card are verified (µ$; 0 turns it off). */
    TEST_CREDIT_MICROS: z.coerce.number().int().min(0).max(100_000_000).default(1_000_000),
    /** How long an emailed verification link, and a password reset link, work. */
    EMAIL_VERIFICATION_TTL_HOURS: z.coerce.number().int().positive().default(24),
    PASSWORD_RESET_TTL_MINUTES: z.coerce.number().int().positive().default(60),
    /** Where the links in emails point (the web console). */
    APP_URL: z.string().url().default("http://localhost:4000"),
    /** A negative balance is charged to the saved card at most this often (domain/payments/balanceWatch.ts). */
    DEBIT_SETTLEMENT_HOURS: z.coerce.number().positive().default(24),
    /** A machine whose agent sent no heartbeat for this long is offline (domain/agent/liveness.ts). */
    MACHINE_OFFLINE_AFTER_SECONDS: z.coerce.number().int().min(1).default(60),
    /** `npm start` runs a demo agent (process runtime) for this many demo machines (api/start.ts). */
    DEMO_AGENTS: z.coerce.number().int().min(0).max(50).default(5),
    /** Stripe (domain/payments/stripe.ts): payments are unavailable without a secret key. */
    STRIPE_SECRET_KEY: z.string().min(1).optional(),
    /** Verifies the signatures of /webhooks/stripe: every event is refused without it. */
    STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
    /** Another Stripe API address (tests: a local fake), like http://127.0.0.1:12111. */
    STRIPE_API_BASE: z.string().url().optional(),
    /**
     * Encrypts saved private-registry passwords (AES-256-GCM; 32 bytes, base64; domain/registryCredentials.ts).
     * Required in production; outside it `npm start` makes one and keeps it in the data directory.
     */
    REGISTRY_CREDENTIALS_KEY: z
      .string()
      .refine((value) => Buffer.from(value, "base64").length === 32, "32 bytes in base64 (openssl rand -base64 32)")
      .optional(),
    /** Where Stripe Checkout sends the user back after paying or cancelling. */
    BILLING_RETURN_URL: z.string().url().default("http://localhost:4000/billing"),
    /** Off-session charge attempts per auto-billing crossing, and the first retry delay (doubling). */
    AUTO_BILL_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
    AUTO_BILL_RETRY_DELAY_MS: z.coerce.number().int().min(0).default(60_000),
    /** Notifications go out by SMTP when set (domain/notifications.ts); they are logged otherwise. */
    SMTP_URL: z.string().url().optional(),
    MAIL_FROM: z.string().min(3).default("GPU Marketplace <no-reply@localhost>"),
    /** Hosts are paid on Fridays when what they may be paid reaches this (µ$); less carries over. */
    PAYOUT_MINIMUM_MICROS: z.coerce.number().int().min(10_000).default(20_000_000),
    /** Pricing history (domain/market/): days of minute samples kept (daily partitions dropped after), and of hourly rollups. */
    PRICE_MINUTES_RETENTION_DAYS: z.coerce.number().int().min(2).default(8),
    PRICE_HOURS_RETENTION_DAYS: z.coerce.number().int().min(2).default(400),
  })
  .superRefine((env, context) => {
    if (env.NODE_ENV === "production" && !env.REGISTRY_CREDENTIALS_KEY) {
      context.addIssue({
        code: "custom",
        path: ["REGISTRY_CREDENTIALS_KEY"],
        message: "required in production: 32 bytes in base64 (openssl rand -base64 32); saved registry passwords are encrypted with it",
      });
    }
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
