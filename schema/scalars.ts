import { GraphQLError, Kind } from "graphql";
import { formatMoney, parseMoney } from "../domain/money.ts";
import { builder } from "./builder.ts";

builder.scalarType("DateTime", {
  description: "An instant as an ISO-8601 string in UTC.",
  serialize: (value) => value.toISOString(),
  parseValue: (value) => {
    const date = typeof value === "string" ? new Date(value) : null;
    if (!date || Number.isNaN(date.getTime())) throw new GraphQLError("DateTime must be an ISO-8601 string");
    return date;
  },
});

builder.scalarType("Money", {
  description:
    'US dollars as an exact decimal string with at most 6 decimals, such as "0.389". Inputs also take numbers, read by their decimal digits.',
  serialize: (value) => formatMoney(value),
  parseValue: (value) => {
    if (typeof value !== "string" && typeof value !== "number") throw new GraphQLError("Money must be a decimal string");
    return parseMoneyOrThrow(String(value));
  },
  parseLiteral: (node) => {
    if (node.kind !== Kind.STRING && node.kind !== Kind.FLOAT && node.kind !== Kind.INT) {
      throw new GraphQLError("Money must be a decimal string");
    }
    return parseMoneyOrThrow(node.value);
  },
});

function parseMoneyOrThrow(text: string): bigint {
  const micros = parseMoney(text);
  if (micros === null) throw new GraphQLError(`"${text}" is not an amount of money with at most 6 decimals`);
  return micros;
}
