import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { config } from "../infra/config.ts";
import { redis, redisKey } from "../infra/redis.ts";
import { RateLimitedError } from "./errors.ts";

/** Fixed windows in Redis, so every API process counts against the same budget. */
function limiter(name: string, points: number, windowSeconds: number): RateLimiterRedis {
  return new RateLimiterRedis({ storeClient: redis, keyPrefix: redisKey("ratelimit", name), points, duration: windowSeconds });
}

/** Consumes one point of each key's limiter; throws RateLimitedError with the longest wait when any budget is spent. */
async function consumeAll(attempts: [RateLimiterRedis, string][]): Promise<void> {
  const results = await Promise.allSettled(attempts.map(([limiter, key]) => limiter.consume(key)));
  let retryAfterMs: number | null = null;
  for (const result of results) {
    if (result.status === "fulfilled") continue;
    if (!(result.reason instanceof RateLimiterRes)) throw result.reason;
    retryAfterMs = Math.max(retryAfterMs ?? 0, result.reason.msBeforeNext);
  }
  if (retryAfterMs !== null) throw new RateLimitedError(Math.max(1, Math.ceil(retryAfterMs / 1000)));
}

let loginLimiters: { byEmail: RateLimiterRedis; byIp: RateLimiterRedis } | undefined;
let signupLimiter: RateLimiterRedis | undefined;

/**
 * Counts one login attempt against the email and against the client address, successful or not:
 * the email limit stops guessing one account's password from many addresses, the address limit
 * stops one client trying many accounts. Throws RateLimitedError when either budget is spent.
 * A Redis failure propagates: logins fail closed rather than go unlimited.
 */
export async function consumeLoginAttempt(email: string, clientIp: string): Promise<void> {
  const points = config().LOGIN_ATTEMPTS_PER_MINUTE;
  loginLimiters ??= { byEmail: limiter("login-email", points, 60), byIp: limiter("login-ip", points, 60) };
  await consumeAll([
    [loginLimiters.byEmail, email],
    [loginLimiters.byIp, clientIp],
  ]);
}

/**
 * Counts one signup against the client address (an hour's budget), so that one client cannot mass
 * create accounts (each one a fresh spend limit and a new key). Fails closed like logins.
 */
export async function consumeSignup(clientIp: string): Promise<void> {
  signupLimiter ??= limiter("signup-ip", config().SIGNUPS_PER_HOUR, 3600);
  await consumeAll([[signupLimiter, clientIp]]);
}
