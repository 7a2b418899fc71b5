import { pino } from "pino";
import pretty from "pino-pretty";

// The logger exists before config() validates the environment; an unknown LOG_LEVEL falls back
// here so that config() can report it by name.
const requested = process.env.LOG_LEVEL ?? "info";
const level = requested === "silent" || requested in pino.levels.values ? requested : "info";

// A person at a terminal reads lines; production and anything piped (log collectors, tests) get JSON.
const readable = process.stdout.isTTY === true && process.env.NODE_ENV !== "production";

export const logger = pino(
  {
    level,
    base: { pid: process.pid },
    redact: ["req.headers.authorization", "*.password", "*.apiKey"],
  },
  readable ? pretty({ sync: true, ignore: "pid,hostname", translateTime: "SYS:HH:MM:ss" }) : undefined,
);
