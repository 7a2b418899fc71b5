import { hash, verify } from "@node-rs/argon2";
import { config } from "../infra/config.ts";
import { RateLimitedError } from "./errors.ts";

/*
 * argon2 hashing and verification, a bounded number at a time per process. Each one takes ~19 MiB
 * and tens of milliseconds of a CPU: hundreds at once (a login flood) would take every core and the
 * memory from everything else, health checks and metering included. At most PASSWORD_HASHES_AT_ONCE
 * run (by default one core fewer than the machine has, so the event loop keeps one), PASSWORD_HASH_QUEUE
 * more wait their turn, and anything beyond is refused at once with RateLimitedError (RATE_LIMITED),
 * before any work.
 */

/** OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane (argon2id is the library's default algorithm). */
const ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

let running = 0;
const waiting: (() => void)[] = [];

/** Password work running or waiting for its turn in this process. */
export function passwordWorkInLine(): number {
  return running + waiting.length;
}

/**
 * Runs `work` in one hashing slot. A login runs its whole check in one (rate limits, the account
 * lookup, the verification through `argon2` given to it), so that a full line refuses it before any
 * of that work is done or any attempt is counted against the client.
 */
export async function inHashingSlot<T>(work: (argon2: { hash(password: string): Promise<string>; verify(passwordHash: string, password: string): Promise<boolean> }) => Promise<T>): Promise<T> {
  const { PASSWORD_HASHES_AT_ONCE, PASSWORD_HASH_QUEUE } = config();
  if (running >= PASSWORD_HASHES_AT_ONCE) {
    if (waiting.length >= PASSWORD_HASH_QUEUE) throw new RateLimitedError(1);
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else {
    running++;
  }
  try {
    return await work({ hash: (password) => hash(password, ARGON2), verify });
  } finally {
    // The slot passes to the next waiter, or frees.
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

export function hashPassword(password: string): Promise<string> {
  return inHashingSlot((argon2) => argon2.hash(password));
}

export function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  return inHashingSlot((argon2) => argon2.verify(passwordHash, password));
}
