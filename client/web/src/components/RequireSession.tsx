import type { ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { useSession } from "../session.tsx";

/** Renders its children for a signed-in visitor; asks anyone else to log in and come back. */
export function RequireSession({ what, children }: { what: string; children: ReactNode }) {
  const { session } = useSession();
  const [location] = useLocation();
  if (session) return <>{children}</>;
  const back = encodeURIComponent(location + window.location.search);
  return (
    <section className="card narrow">
      <h1>Log in to {what}</h1>
      <p>
        <Link href={`/login?next=${back}`} className="btn primary">
          Log in
        </Link>{" "}
        or{" "}
        <Link href={`/signup?next=${back}`} className="btn ghost">
          create an account
        </Link>
      </p>
    </section>
  );
}
