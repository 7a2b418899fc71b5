import { AppError } from "../domain/errors.ts";
import { listOperators, setOperator } from "../domain/operators.ts";
import { prisma } from "../infra/db.ts";

/*
 * The administrators' command-line tool: it talks to the database directly (DATABASE_URL), so only
 * whoever holds the database's credentials can grant the operator role; the API cannot.
 */

export const ADMIN_USAGE = `Usage: npm run admin -- <command>

Commands:
  grant-operator <email>    make the account an operator (verifies, deverifies and vets machines)
  revoke-operator <email>   take the operator role away; its keys lose it on their next request
  list-operators            the operators' accounts

It needs the API's environment (DATABASE_URL, REDIS_URL).
Exit status: 0 done, 1 refused (no such account, bad email), 2 usage error.`;

interface Streams {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export async function runAdmin(argv: string[], io: Streams = process): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if ((command === "grant-operator" || command === "revoke-operator") && rest.length === 1) {
      const grant = command === "grant-operator";
      const account = await setOperator(prisma, rest[0], grant);
      io.stdout.write(`${account.email} (User:${account.userId}) ${grant ? "is now an operator" : "is no longer an operator"}\n`);
      return 0;
    }
    if (command === "list-operators" && rest.length === 0) {
      for (const operator of await listOperators(prisma)) io.stdout.write(`${operator.email} (User:${operator.id})\n`);
      return 0;
    }
    if (command === "help" || command === "--help" || command === "-h") {
      io.stdout.write(`${ADMIN_USAGE}\n`);
      return 0;
    }
    io.stderr.write(`admin: ${command ? `unknown command or arguments: ${argv.join(" ")}` : "no command given"}\n\n${ADMIN_USAGE}\n`);
    return 2;
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    io.stderr.write(`admin: ${error.message}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const code = await runAdmin(process.argv.slice(2));
  await prisma.$disconnect();
  process.exit(code);
}
