import type { z } from "zod";
import { ValidationError } from "./errors.ts";

/** The largest value of a PostgreSQL int4 column (every table's id). */
export const MAX_INT4 = 2_147_483_647;
/** The largest value of a PostgreSQL int8 (bigint) column. */
export const MAX_INT8 = 9_223_372_036_854_775_807n;

/** Parses input with a zod schema, turning failures into a typed ValidationError that names each field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new ValidationError(
      result.error.issues.map((issue) => ({ path: issue.path.map(String), message: issue.message })),
    );
  }
  return result.data;
}
