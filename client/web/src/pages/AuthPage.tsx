import { type FormEvent, useState } from "react";
import { useClient, useMutation } from "urql";
import { Link, useLocation, useSearch } from "wouter";
import { Alert, Field } from "../components/base/Field.tsx";
import { graphql } from "../gql/index.ts";
import { resultError, type ResultError } from "../results.ts";
import { loginSession, type Session, useSession } from "../session.tsx";

graphql(`
  fragment AuthResult on AuthPayload {
    apiKey {
      token
      apiKey {
        id
      }
    }
    user {
      id
      email
    }
  }
`);

const Login = graphql(`
  mutation Login($email: String!, $password: String!) {
    login(email: $email, password: $password) {
      __typename
      ... on MutationLoginSuccess {
        data {
          ...AuthResult
        }
      }
      ... on Error {
        code
        message
      }
      ... on ValidationError {
        issues {
          path
          message
        }
      }
    }
  }
`);

const Signup = graphql(`
  mutation Signup($email: String!, $password: String!) {
    signup(email: $email, password: $password) {
      __typename
      ... on MutationSignupSuccess {
        data {
          email
        }
      }
      ... on Error {
        code
        message
      }
      ... on ValidationError {
        issues {
          path
          message
        }
      }
    }
  }
`);

const KeyOwner = graphql(`
  query KeyOwner {
    me {
      id
      email
    }
  }
`);

/** Signing in with an existing full-account key (the demo accounts' keys `npm start` prints). */
function ApiKeyLogin({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const client = useClient();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const apiKey = key.trim();
    const outcome = await client
      .query(KeyOwner, {}, { requestPolicy: "network-only", fetchOptions: { headers: { authorization: `Bearer ${apiKey}` } } })
      .toPromise();
    const email = outcome.data?.me?.email;
    if (email) onSignedIn({ apiKey, email });
    else setError(outcome.error?.graphQLErrors[0]?.message ?? outcome.error?.message ?? "That is not a full-account key.");
  }
  return (
    <form onSubmit={submit} noValidate aria-label="Log in with an API key">
      <Field label="API key" error={error}>
        {(props) => <input {...props} name="apiKey" className="mono" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} />}
      </Field>
      <button type="submit" className="btn ghost">
        Use this key
      </button>
    </form>
  );
}

/** Logging in ends with a full-account key, which becomes the session; signing up, with a link mailed to the address (EmailLinkPage). */
export default function AuthPage({ mode }: { mode: "login" | "signup" }) {
  const { signIn } = useSession();
  const [, navigate] = useLocation();
  const next = new URLSearchParams(useSearch()).get("next");
  const [login, runLogin] = useMutation(Login);
  const [signup, runSignup] = useMutation(Signup);
  const [error, setError] = useState<ResultError | null>(null);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [mailedTo, setMailedTo] = useState<string | null>(null);
  const fetching = login.fetching || signup.fetching;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const variables = { email: email.trim(), password };
    const outcome = mode === "login" ? await runLogin(variables) : await runSignup(variables);
    const result = outcome.data ? ("login" in outcome.data ? outcome.data.login : outcome.data.signup) : null;
    const failure = resultError(result, outcome.error);
    if (failure || !result || !("data" in result)) {
      setError(failure ?? { code: "UNKNOWN", message: "Something went wrong", fields: {} });
      return;
    }
    if ("email" in result.data) {
      setMailedTo(result.data.email);
      return;
    }
    finish(loginSession(result.data));
  }

  function finish(session: Session) {
    signIn(session);
    navigate(next && next.startsWith("/") ? next : mode === "signup" ? "/account" : "/instances");
  }

  const title = mode === "login" ? "Log in" : "Create an account";
  if (mailedTo) {
    return (
      <section className="card narrow">
        <h1>Check your email</h1>
        <Alert tone="success">We sent a link to {mailedTo}. Open it to finish creating your account.</Alert>
      </section>
    );
  }
  return (
    <section className="card narrow">
      <h1>{title}</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Email" error={error?.fields.email}>
          {(props) => <input {...props} type="email" name="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label="Password" error={error?.fields.password} hint={mode === "signup" ? "8 to 256 characters" : undefined}>
          {(props) => (
            <input
              {...props}
              type="password"
              name="password"
              autoComplete={mode === "login" ? "current-password" : "new-password"}
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        {error && Object.keys(error.fields).length === 0 && <Alert>{error.message}</Alert>}
        <div className="actions">
          <button type="submit" className="btn primary" disabled={fetching}>
            {title}
          </button>
          {mode === "login" ? (
            <Link href={`/signup${next ? `?next=${encodeURIComponent(next)}` : ""}`}>No account yet? Sign up</Link>
          ) : (
            <Link href={`/login${next ? `?next=${encodeURIComponent(next)}` : ""}`}>Have an account? Log in</Link>
          )}
        </div>
      </form>
      {mode === "login" && (
        <>
          <h2>Or with an API key</h2>
          <ApiKeyLogin onSignedIn={finish} />
        </>
      )}
    </section>
  );
}
