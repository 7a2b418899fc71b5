import { createClient as createWsClient } from "graphql-ws";
import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from "react";
import { cacheExchange, Client, fetchExchange, mapExchange, Provider, subscriptionExchange } from "urql";
import type { AuthResultFragment } from "./gql/graphql.ts";

/** The signed-in account: its full-account API key, kept in localStorage so a reload keeps the session. */
export interface Session {
  apiKey: string;
  email: string;
  /**
   * The key a login issued for this session, revoked when the visitor logs out; absent when the
   * visitor signed in with a key of the account's own, which logging out leaves working.
   */
  loginKeyId?: string;
}

/** The session a login, a completed signup or a password reset starts. */
export function loginSession(auth: AuthResultFragment): Session {
  return { apiKey: auth.apiKey.token, email: auth.user.email, loginKeyId: auth.apiKey.apiKey.id };
}

interface SessionContext {
  session: Session | null;
  /** Why the last session ended, when the server ended it (a revoked key). */
  endedBecause: string | null;
  signIn(session: Session): void;
  signOut(reason?: string): void;
}

const STORAGE_KEY = "gm.session";
const SessionCtx = createContext<SessionContext | null>(null);

function storedSession(): Session | null {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    return value && typeof value.apiKey === "string" ? value : null;
  } catch {
    return null;
  }
}

const REVOKED = "Your session ended: its API key was revoked or has expired. Log in again.";

/** urql over HTTP for queries and mutations, graphql-ws on the same origin for subscriptions. */
function buildClient(session: Session | null, onRevoked: () => void): Client {
  const headers: Record<string, string> = session ? { authorization: `Bearer ${session.apiKey}` } : {};
  const ws = session
    ? createWsClient({
        url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
        connectionParams: { authorization: `Bearer ${session.apiKey}` },
        retryAttempts: Number.POSITIVE_INFINITY,
        // 4403: the key is unknown or was revoked; retrying cannot help.
        shouldRetry: (event) => (event as CloseEvent)?.code !== 4403,
        on: { closed: (event) => (event as CloseEvent)?.code === 4403 && onRevoked() },
      })
    : null;
  return new Client({
    url: "/graphql",
    preferGetMethod: false,
    fetchOptions: { headers },
    exchanges: [
      mapExchange({
        onError(error) {
          if (session && (error.response?.status === 401 || error.graphQLErrors.some((e) => e.extensions?.code === "UNAUTHENTICATED"))) onRevoked();
        },
      }),
      cacheExchange,
      fetchExchange,
      ...(ws
        ? [
            subscriptionExchange({
              forwardSubscription: (request) => ({
                subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? "" }, sink) }),
              }),
            }),
          ]
        : []),
    ],
  });
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(storedSession);
  const [endedBecause, setEndedBecause] = useState<string | null>(null);
  const signOut = useCallback((reason?: string) => {
    localStorage.removeItem(STORAGE_KEY);
    setEndedBecause(reason ?? null);
    setSession(null);
  }, []);
  const signIn = useCallback((next: Session) => {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    setEndedBecause(null);
    setSession(next);
  }, []);
  const client = useMemo(() => buildClient(session, () => signOut(REVOKED)), [session, signOut]);
  const value = useMemo(() => ({ session, endedBecause, signIn, signOut }), [session, endedBecause, signIn, signOut]);
  return (
    <SessionCtx.Provider value={value}>
      <Provider value={client}>{children}</Provider>
    </SessionCtx.Provider>
  );
}

export function useSession(): SessionContext {
  const value = useContext(SessionCtx);
  if (!value) throw new Error("useSession outside SessionProvider");
  return value;
}
