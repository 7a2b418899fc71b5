import { useCallback, useEffect, useState } from "react";
import { type AnyVariables, type TypedDocumentNode, useClient } from "urql";

interface Page<T> {
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
}

export interface AllPages<T> {
  /** Every item, once all pages arrived; null before. */
  items: T[] | null;
  error: Error | null;
  /** Loads every page again (after a change, or to refresh). */
  reload: () => void;
}

/**
 * Every item of a connection: the API pages lists (at most 100 items a page), so a table, a sum or
 * an export asks page after page until the last. `variables` null waits.
 */
export function useAllPages<Data, Variables extends AnyVariables, T>(
  query: TypedDocumentNode<Data, Variables>,
  variables: Omit<Variables, "after"> | null,
  pageOf: (data: Data) => Page<T>,
): AllPages<T> {
  const client = useClient();
  const [state, setState] = useState<{ items: T[] | null; error: Error | null }>({ items: null, error: null });
  const [generation, setGeneration] = useState(0);
  const key = variables === null ? null : JSON.stringify(variables);
  useEffect(() => {
    if (key === null) return;
    let cancelled = false;
    (async () => {
      const items: T[] = [];
      let after: string | null = null;
      for (;;) {
        const result = await client.query(query, { ...JSON.parse(key), after } as Variables, { requestPolicy: "network-only" }).toPromise();
        if (cancelled) return;
        if (result.error || !result.data) return setState((prev) => ({ items: prev.items, error: result.error ?? new Error("no data") }));
        const page = pageOf(result.data);
        items.push(...page.nodes);
        if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) break;
        after = page.pageInfo.endCursor;
      }
      setState({ items, error: null });
    })();
    return () => {
      cancelled = true;
    };
    // pageOf is a selector written inline: the query and variables decide what is fetched.
  }, [client, query, key, generation]);
  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  return { ...state, reload };
}
