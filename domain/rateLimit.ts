import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { config } from "../infra/config.ts";
import { redis, redisKey } from "../infra/redis.ts";
import { RateLimitedError } from "./errors.ts";

/** Fixed one-minute windows in Redis, so every API process counts against the same budget. */
function perMinute(name: string, points: number): RateLimiterRedis {
  return new RateLimiterRedis({ storeClient: redis, keyPrefix: redisKey("ratelimit", name), points, duration: 60 });
}

let loginLimiters: { byEmail: RateLimiterRedis; byIp: RateLimiterRedis } | undefined;

/**
 * Counts one login attempt against the email and against the client address, successful or not:
 * the email limit stops guessing one account's password from many addresses, the address limit
 * stops one client trying many accounts. Throws RateLimitedError when either budget is spent.
 * A Redis failure propagates: logins fail closed rather than go unlimited.
 */
export async function consumeLoginAttempt(email: string, clientIp: string): Promise<void> {
  const points = config().LOGIN_ATTEMPTS_PER_MINUTE;
  loginLimiters ??= { byEmail: perMinute("login-email", points), byIp: perMinute("login-ip", points) };
  const results = await Promise.allSettled([loginLimiters.byEmail.consume(email), loginLimiters.byIp.consume(clientIp)]);
  let retryAfterMs: number | null = null;
  for (const result of results) {
    if (result.status === "fulfilled") continue;
    if (!(result.reason instanceof RateLimiterRes)) throw result.reason;
    retryAfterMs = Math.max(retryAfterMs ?? 0, result.reason.msBeforeNext);
  }
  if (retryAfterMs !== null) throw new RateLimitedError(Math.max(1, Math.ceil(retryAfterMs / 1000)));
}
