import { pino } from "pino";

// The logger exists before config() validates the environment; an unknown LOG_LEVEL falls back
// here so that config() can report it by name.
const requested = process.env.LOG_LEVEL ?? "info";
const level = requested === "silent" || requested in pino.levels.values ? requested : "info";

export const logger = pino({
  level,
  base: { pid: process.pid },
  redact: ["req.headers.authorization", "*.password", "*.apiKey"],
});
