import {
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  GraphQLError,
  type GraphQLInputType,
  type GraphQLSchema,
  type VariableDefinitionNode,
  astFromValue,
  createSourceEventStream,
  getNullableType,
  getOperationAST,
  getVariableValues,
  isInputObjectType,
  isListType,
  typeFromAST,
  valueFromASTUntyped,
} from "graphql";
import { type CompiledQuery, compileQuery, isCompiledQuery } from "graphql-jit";
import { mapAsyncIterator, type Plugin } from "graphql-yoga";

/*
 * Compiled execution (graphql-jit) for queries, mutations and each event of a subscription: a page
 * of 100 offers is 2,400 field values, and a metering tick runs the subscription of every balance
 * subscriber at once (bench/RESULTS.md). Each distinct document is compiled once; documents that
 * graphql-jit cannot compile (it inlines literal arguments as JSON, and a Money literal is a BigInt)
 * run on graphql-js.
 */

const compiledByDocument = new WeakMap<DocumentNode, Map<string, CompiledQuery | null>>();

function compiled(args: ExecutionArgs): CompiledQuery | null {
  let byOperation = compiledByDocument.get(args.document);
  if (!byOperation) compiledByDocument.set(args.document, (byOperation = new Map()));
  const operation = args.operationName ?? "";
  let query = byOperation.get(operation);
  if (query === undefined) {
    const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
    query = isCompiledQuery(result) ? result : null;
    byOperation.set(operation, query);
  }
  return query;
}

/** `value` (as sent) with the default of every input object field it leaves out, as graphql-js fills them in. */
function withFieldDefaults(type: GraphQLInputType, value: unknown): unknown {
  const nullable = getNullableType(type);
  if (value === null || value === undefined) return value;
  if (isListType(nullable)) return Array.isArray(value) ? value.map((item) => withFieldDefaults(nullable.ofType, item)) : withFieldDefaults(nullable.ofType, value);
  if (!isInputObjectType(nullable) || typeof value !== "object" || Array.isArray(value)) return value;
  const filled: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const field of Object.values(nullable.getFields())) {
    if (filled[field.name] === undefined && field.defaultValue !== undefined) {
      const literal = astFromValue(field.defaultValue, field.type);
      filled[field.name] = literal ? valueFromASTUntyped(literal) : undefined;
    } else if (field.name in filled) {
      filled[field.name] = withFieldDefaults(field.type, filled[field.name]);
    }
  }
  return filled;
}

/**
 * The operation's variables checked by graphql-js (the reference: a bad value is a BAD_USER_INPUT
 * error naming the variable, never an exception) and, when valid, as sent with the input object
 * fields' defaults filled in: graphql-jit's own coercion leaves them out of variables (it applies
 * them to literals only), so `Boolean! = false` left out would be refused as missing.
 */
function variablesForCompiled(
  schema: GraphQLSchema,
  definitions: readonly VariableDefinitionNode[],
  raw: Record<string, unknown> | null | undefined,
): { errors: GraphQLError[] } | { variables: Record<string, unknown> } {
  const inputs = raw ?? {};
  const checked = getVariableValues(schema, definitions, inputs, { maxErrors: 10 });
  if (checked.errors) {
    return {
      errors: checked.errors.map(
        (error) => new GraphQLError(error.message, { nodes: error.nodes, extensions: { code: "BAD_USER_INPUT", http: { status: 400 } } }),
      ),
    };
  }
  const variables: Record<string, unknown> = { ...inputs };
  for (const definition of definitions) {
    const name = definition.variable.name.value;
    const type = typeFromAST(schema, definition.type) as GraphQLInputType | undefined;
    if (type && variables[name] !== undefined) variables[name] = withFieldDefaults(type, variables[name]);
  }
  return { variables };
}

function definitionsOf(args: ExecutionArgs): readonly VariableDefinitionNode[] {
  return getOperationAST(args.document, args.operationName)?.variableDefinitions ?? [];
}

/** Runs a query or mutation compiled, or null when graphql-jit cannot compile its document. */
export function executeCompiled(run: ExecutionArgs): Promise<ExecutionResult> | ExecutionResult | null {
  const query = compiled(run);
  if (!query) return null;
  const checked = variablesForCompiled(run.schema, definitionsOf(run), run.variableValues as Record<string, unknown>);
  if ("errors" in checked) return { errors: checked.errors };
  return query.query(run.rootValue, run.contextValue, checked.variables) as Promise<ExecutionResult>;
}

export function useCompiledExecution(): Plugin {
  return {
    onExecute({ args, setExecuteFn }) {
      if (compiled(args)) setExecuteFn((run) => executeCompiled(run)!);
    },
    onSubscribe({ args, setSubscribeFn }) {
      const query = compiled(args);
      if (!query) return;
      // The source stream comes from graphql-js: graphql-jit's own `subscribe` passes the field's
      // `subscribe` the operation's variables instead of its arguments.
      setSubscribeFn(async (run) => {
        const checked = variablesForCompiled(run.schema, definitionsOf(run), run.variableValues as Record<string, unknown>);
        if ("errors" in checked) return { errors: checked.errors };
        const source = await createSourceEventStream(run);
        if (!(Symbol.asyncIterator in source)) return source;
        // return() reaches the source at once, even while it waits for an item (unsubscribe).
        return mapAsyncIterator(source, (payload) => query.query(payload, run.contextValue, checked.variables) as Promise<ExecutionResult>);
      });
    },
  };
}
