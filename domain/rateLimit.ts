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

let loginLimiters: { byIp: RateLimiterRedis; failuresByEmail: RateLimiterRedis } | undefined;
let signupLimiter: RateLimiterRedis | undefined;

/** How long an address an account logged in or signed up from stays known for it. */
const KNOWN_ADDRESS_SECONDS = 30 * 86_400;
const knownAddressesKey = (email: string) => redisKey("login-known", email);

function loginLimitersOf() {
  const points = config().LOGIN_ATTEMPTS_PER_MINUTE;
  return (loginLimiters ??= { byIp: limiter("login-ip", points, 60), failuresByEmail: limiter("login-email-failures", points, 60) });
}

/**
 * Before a login's password is checked: counts the attempt against the client address (its own
 * budget per minute, whatever the email: an address that guesses is slowed down first), and refuses
 * while the email's budget of failed attempts is spent, unless the address is one the account
 * logged in or signed up from lately. So a guesser spread over many addresses locks the account
 * against new addresses only; its owner logs in from a known one. Throws RateLimitedError. A Redis
 * failure propagates: logins fail closed rather than go unlimited.
 */
export async function consumeLoginAttempt(email: string, clientIp: string): Promise<void> {
  const { byIp, failuresByEmail } = loginLimitersOf();
  await consumeAll([[byIp, clientIp]]);
  const failures = await failuresByEmail.get(email);
  if (!failures || failures.remainingPoints > 0) return;
  if (await redis.sismember(knownAddressesKey(email), clientIp)) return;
  throw new RateLimitedError(Math.max(1, Math.ceil(failures.msBeforeNext / 1000)));
}

/** After the password was checked: a failure counts against the email; a success makes the address known for it. */
export async function recordLoginOutcome(email: string, clientIp: string, succeeded: boolean): Promise<void> {
  if (!succeeded) {
    await loginLimitersOf().failuresByEmail.penalty(email, 1);
    return;
  }
  await rememberAddress(email, clientIp);
}

/** The address an account was created or logged in from, known for it from now on. */
export async function rememberAddress(email: string, clientIp: string): Promise<void> {
  const key = knownAddressesKey(email);
  await redis.multi().sadd(key, clientIp).expire(key, KNOWN_ADDRESS_SECONDS).exec();
}

/**
 * Counts one signup against the client address (an hour's budget), so that one client cannot mass
 * create accounts (each one a fresh spend limit and a new key). Fails closed like logins.
 */
export async function consumeSignup(clientIp: string): Promise<void> {
  signupLimiter ??= limiter("signup-ip", config().SIGNUPS_PER_HOUR, 3600);
  await consumeAll([[signupLimiter, clientIp]]);
}

let speedTestLimiter: RateLimiterRedis | undefined;
/** Speed tests an API key may run per hour: enough for registration and periodic re-checks, not for a bandwidth drain. */
export const SPEED_TESTS_PER_HOUR = 120;

/** Counts one speed-test transfer against the key that asked for it; throws RateLimitedError when its hour's budget is spent. */
export async function consumeSpeedTest(keyId: number): Promise<void> {
  speedTestLimiter ??= limiter("speed-test-key", SPEED_TESTS_PER_HOUR, 3600);
  await consumeAll([[speedTestLimiter, String(keyId)]]);
}
