import { Redis, type RedisOptions } from "ioredis";
import { config } from "./config.ts";

/** Long-lived connections for workers and subscribers: BullMQ requires maxRetriesPerRequest null. */
export function redisConnection(options: RedisOptions = {}): Redis {
  return new Redis(config().REDIS_URL, { maxRetriesPerRequest: null, ...options });
}

/** The process's shared connection for request-path commands: fails a command after one retry. */
export const redis = new Redis(config().REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });

export function redisKey(...parts: string[]): string {
  return [config().REDIS_PREFIX, ...parts].join(":");
}
