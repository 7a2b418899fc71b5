import { ValidationError } from "../domain/errors.ts";
import { MAX_INT4 } from "../domain/validation.ts";

/**
 * A global id in the builder's readable format ("Machine:12"), for ids of types that may not be in
 * the schema (yet), where `t.globalID` cannot look the type up.
 */
export function globalId(typename: string, id: number): string {
  return `${typename}:${id}`;
}

/**
 * The database id inside a decoded global id argument ("ApiKey:12" → 12). Another type's id, or
 * anything but a positive 32-bit integer, is a ValidationError naming the argument.
 */
export function localId(decoded: { typename: string; id: string }, typename: string, argument = "id"): number {
  const id = /^\d{1,10}$/.test(decoded.id) ? Number(decoded.id) : 0;
  if (decoded.typename !== typename || id < 1 || id > MAX_INT4) {
    throw new ValidationError([{ path: [argument], message: `must be the id of a ${typename}, like "${typename}:12"` }]);
  }
  return id;
}
