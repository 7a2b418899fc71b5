import { type DocumentNode, type ExecutionArgs, type ExecutionResult, createSourceEventStream } from "graphql";
import { type CompiledQuery, compileQuery, isCompiledQuery } from "graphql-jit";
import type { Plugin } from "graphql-yoga";

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

/** `source` with each item mapped; `return()` reaches the source at once, even while it waits for an item. */
function mapEvents<T, U>(source: AsyncIterable<T>, map: (item: T) => Promise<U> | U): AsyncIterableIterator<U> {
  const items = source[Symbol.asyncIterator]();
  const done = { done: true as const, value: undefined };
  return {
    async next() {
      const item = await items.next();
      return item.done ? done : { done: false, value: await map(item.value) };
    },
    async return() {
      await items.return?.();
      return done;
    },
    async throw(error: unknown) {
      await items.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

export function useCompiledExecution(): Plugin {
  return {
    onExecute({ args, setExecuteFn }) {
      const query = compiled(args);
      if (query) setExecuteFn((run) => query.query(run.rootValue, run.contextValue, run.variableValues) as Promise<ExecutionResult>);
    },
    onSubscribe({ args, setSubscribeFn }) {
      const query = compiled(args);
      if (!query) return;
      // The source stream comes from graphql-js: graphql-jit's own `subscribe` passes the field's
      // `subscribe` the operation's variables instead of its arguments.
      setSubscribeFn(async (run) => {
        const source = await createSourceEventStream(run);
        if (!(Symbol.asyncIterator in source)) return source;
        return mapEvents(source, (payload) => query.query(payload, run.contextValue, run.variableValues) as Promise<ExecutionResult>);
      });
    },
  };
}
