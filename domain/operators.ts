import { z } from "zod";
import type { Tx } from "../infra/db.ts";
import { email } from "./accounts.ts";
import { NotFoundError } from "./errors.ts";
import { parseInput } from "./validation.ts";

/*
 * The operator role: an account flag that only the admin tool (api/admin.ts), run by someone with
 * the database's credentials, sets or clears. It takes effect on the account's next request: keys
 * are checked against the account on every request.
 */

const operatorInput = z.object({ email });

/** Makes the account with this email an operator (or no longer one); NotFoundError when there is none. */
export async function setOperator(db: Tx, address: string, operator: boolean): Promise<{ userId: number; email: string }> {
  const input = parseInput(operatorInput, { email: address });
  const [updated] = await db.user.updateManyAndReturn({
    where: { email: input.email },
    data: { operator },
    select: { id: true, email: true },
  });
  if (!updated) throw new NotFoundError("Account");
  return { userId: updated.id, email: updated.email };
}

/** The operators' accounts, oldest first. */
export function listOperators(db: Tx): Promise<{ id: number; email: string }[]> {
  return db.user.findMany({ where: { operator: true }, select: { id: true, email: true }, orderBy: { id: "asc" } });
}
