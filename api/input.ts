import { GraphQLError, type ValidationRule } from "graphql";
import type { Plugin } from "graphql-yoga";

/*
 * Checks on a request as it arrives, before parsing: text PostgreSQL cannot store (NUL, and lone
 * UTF-16 surrogates, which have no UTF-8 form) is refused once here, for every string argument of
 * every operation, inline or in variables, instead of surfacing as a database error in a resolver.
 */

const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The first string in `value` (walked through arrays and objects, keys included) that is not storable text. */
function unstorableText(value: unknown, depth = 0): string | null {
  if (typeof value === "string") return UNSTORABLE.test(value) ? value : null;
  if (depth > 64 || value === null || typeof value !== "object") return null;
  for (const [key, item] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const found = (typeof key === "string" ? unstorableText(key) : null) ?? unstorableText(item, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/** The errors an operation's text and variables are refused with before parsing; none when they are fine. */
export function requestTextErrors(params: { query?: unknown; variables?: unknown; operationName?: unknown }): GraphQLError[] {
  if (unstorableText([params.query, params.operationName, params.variables]) === null) return [];
  return [
    new GraphQLError("Strings may not contain NUL characters or unpaired UTF-16 surrogates", {
      extensions: { code: "BAD_USER_INPUT", http: { status: 400 } },
    }),
  ];
}

/** The same refusal for string literals written in the document (escapes such as "\\u0000" are decoded by the parser). */
const storableTextRule: ValidationRule = (context) => ({
  StringValue(node) {
    if (unstorableText(node.value) === null) return;
    context.reportError(
      new GraphQLError("Strings may not contain NUL characters or unpaired UTF-16 surrogates", {
        nodes: [node],
        extensions: { code: "BAD_USER_INPUT", http: { status: 400 } },
      }),
    );
  },
});

/** Both checks for HTTP requests (WebSocket operations: requestTextErrors in onSubscribe, the rule through the enveloped validate). */
export function useStorableText(): Plugin {
  return {
    onParams({ params, setResult }) {
      const errors = requestTextErrors(params);
      if (errors.length) setResult({ errors });
    },
    onValidate({ addValidationRule }) {
      addValidationRule(storableTextRule);
    },
  };
}
