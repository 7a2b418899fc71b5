import type { ParseArgsConfig } from "node:util";
import type { Client } from "./client.ts";
import type { ProgressStream } from "./format.ts";

/** Where a command writes and what it reads: the process's streams, or captured ones in tests. */
export interface Io {
  stdout: ProgressStream;
  stderr: ProgressStream;
  env: NodeJS.ProcessEnv;
  configPath: string;
}

export interface CommandContext {
  io: Io;
  /** Throws a clear message when no API key was given anywhere. */
  client(): Client;
  /** For what anonymous callers may do: sends the key only when there is one. */
  publicClient(): Client;
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
  raw: boolean;
  print(text: string): void;
}

export interface Command {
  /** The words that select it, such as "search offers". */
  name: string;
  /** Positional arguments and options, for the usage text. */
  usage: string;
  summary: string;
  options?: NonNullable<ParseArgsConfig["options"]>;
  /** Positional arguments after the name. */
  positionals: { min: number; max: number };
  run(ctx: CommandContext): Promise<void>;
}

/** A mistake on the command line: printed with the command's usage. */
export class UsageError extends Error {}

/** "42" → "Instance:42"; a full global id passes through. */
export function globalId(type: string, id: string): string {
  if (/^\d+$/.test(id)) return `${type}:${id}`;
  if (id.startsWith(`${type}:`)) return id;
  throw new UsageError(`"${id}" is not ${/^[AEIOU]/.test(type) ? "an" : "a"} ${type.toLowerCase()} id (like 42 or ${type}:42)`);
}

export function stringOption(ctx: CommandContext, name: string): string | undefined {
  const value = ctx.values[name];
  return typeof value === "string" ? value : undefined;
}

export function requiredOption(ctx: CommandContext, name: string): string {
  const value = stringOption(ctx, name);
  if (value === undefined) throw new UsageError(`--${name} is required`);
  return value;
}

export function requiredNumber(ctx: CommandContext, name: string, integer = false): number {
  const value = numberOption(ctx, name, integer);
  if (value === undefined) throw new UsageError(`--${name} is required`);
  return value;
}

export function numberOption(ctx: CommandContext, name: string, integer = false): number | undefined {
  const value = stringOption(ctx, name);
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number) || (integer && !Number.isInteger(number))) {
    throw new UsageError(`--${name} must be ${integer ? "a whole number" : "a number"}, not "${value}"`);
  }
  return number;
}

/** A date option as an ISO instant: "2026-11-01" or a full ISO-8601 time. */
export function dateOption(ctx: CommandContext, name: string, fallback: Date): string {
  const value = stringOption(ctx, name);
  if (value === undefined) return fallback.toISOString();
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--${name} must be a date like 2026-11-01, not "${value}"`);
  return date.toISOString();
}

/** A date as the reference takes it (unix seconds) or ISO-8601 ("2026-12-01", "2026-12-01T08:00Z"). */
export function instantOption(ctx: CommandContext, name: string): string | undefined {
  const value = stringOption(ctx, name);
  if (value === undefined) return undefined;
  const date = /^\d+(\.\d+)?$/.test(value) ? new Date(Number(value) * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--${name} must be unix seconds or a date like 2026-12-01, not "${value}"`);
  return date.toISOString();
}

/** Midnight UTC `days` from today (negative: before). */
export function utcDay(days: number, now = new Date()): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + days));
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.print(JSON.stringify(value, null, 2));
}
