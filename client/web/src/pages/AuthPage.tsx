import { type FormEvent, useState } from "react";
import { useMutation } from "urql";
import { Link, useLocation, useSearch } from "wouter";
import { Alert, Field } from "../components/base/Field.tsx";
import { graphql } from "../gql/index.ts";
import { resultError, type ResultError } from "../results.ts";
import { useSession } from "../session.tsx";

const AuthFields = graphql(`
  fragment AuthResult on AuthPayload {
    apiKey {
      token
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

/** Logging in and signing up both end with a full-account key, which becomes the session. */
export default function AuthPage({ mode }: { mode: "login" | "signup" }) {
  const { signIn } = useSession();
  const [, navigate] = useLocation();
  const next = new URLSearchParams(useSearch()).get("next");
  const [login, runLogin] = useMutation(Login);
  const [signup, runSignup] = useMutation(Signup);
  const [error, setError] = useState<ResultError | null>(null);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
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
    const payload = result.data as unknown as { apiKey: { token: string }; user: { email: string } };
    signIn({ apiKey: payload.apiKey.token, email: payload.user.email });
    navigate(next && next.startsWith("/") ? next : mode === "signup" ? "/account" : "/instances");
  }

  const title = mode === "login" ? "Log in" : "Create an account";
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
    </section>
  );
}

void AuthFields;
