import { hash, verify } from "@node-rs/argon2";
import { config } from "../infra/config.ts";
import { RateLimitedError } from "./errors.ts";

/*
 * argon2 hashing and verification, a bounded number at a time per process. Each one takes ~19 MiB
 * and tens of milliseconds of a CPU: hundreds at once (a login flood) would take every core and the
 * memory from everything else, health checks and metering included. At most PASSWORD_HASHES_AT_ONCE
 * run, PASSWORD_HASH_QUEUE more wait their turn, and anything beyond is refused at once with
 * RateLimitedError (RATE_LIMITED), before any work.
 */

/** OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane (argon2id is the library's default algorithm). */
const ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

let running = 0;
const waiting: (() => void)[] = [];

async function bounded<T>(work: () => Promise<T>): Promise<T> {
  const { PASSWORD_HASHES_AT_ONCE, PASSWORD_HASH_QUEUE } = config();
  if (running >= PASSWORD_HASHES_AT_ONCE) {
    if (waiting.length >= PASSWORD_HASH_QUEUE) throw new RateLimitedError(1);
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else {
    running++;
  }
  try {
    return await work();
  } finally {
    // The slot passes to the next waiter, or frees.
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

export function hashPassword(password: string): Promise<string> {
  return bounded(() => hash(password, ARGON2));
}

export function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  return bounded(() => verify(passwordHash, password));
}
