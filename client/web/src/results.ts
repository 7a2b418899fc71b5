// Mutations answer with result unions: a `…Success` with `data`, or a typed error with a code.
import type { CombinedError } from "urql";

export interface ResultError {
  code: string;
  message: string;
  /** Input field (the first named segment of the issue's path) → its message. */
  fields: Record<string, string>;
}

interface ErrorLike {
  __typename?: string;
  code?: string;
  message?: string;
  issues?: { path: string[]; message: string }[];
}

/** The typed error of a mutation result, or of a failed request; null on success. */
export function resultError(result: ErrorLike | null | undefined, requestError?: CombinedError): ResultError | null {
  if (requestError) {
    const first = requestError.graphQLErrors[0];
    const message = first?.message ?? requestError.message;
    // A value the schema's scalars refuse (a malformed Money) fails before the resolver, naming the
    // input field: `Variable "$input" got invalid value "abc" at "input.balanceAlertThreshold"`.
    const field = /got invalid value .* at "(?:[^"]*\.)?([^".]+)"/.exec(message)?.[1] ?? /^Variable "\$(\w+)" got invalid value/.exec(message)?.[1];
    return { code: String(first?.extensions?.code ?? "NETWORK_ERROR"), message, fields: field ? { [field]: message } : {} };
  }
  if (!result || result.__typename?.endsWith("Success") || !result.code) return null;
  const fields: Record<string, string> = {};
  for (const issue of result.issues ?? []) {
    const name = issue.path.find((segment) => segment !== "input" && !/^\d+$/.test(segment)) ?? "";
    const where = issue.path.slice(issue.path.indexOf(name) + 1).join(".");
    fields[name] ??= where ? `${where}: ${issue.message}` : issue.message;
  }
  return { code: result.code, message: result.message ?? result.code, fields };
}
