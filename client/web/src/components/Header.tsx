import { useClient, useSubscription } from "urql";
import { Link, useLocation } from "wouter";
import { money } from "../format.ts";
import { graphql } from "../gql/index.ts";
import { useSession } from "../session.tsx";

const BalanceSubscription = graphql(`
  subscription HeaderBalance {
    balance {
      id
      email
      balance
    }
  }
`);

const RevokeLoginKey = graphql(`
  mutation RevokeLoginKey($id: ID!) {
    revokeApiKey(id: $id) {
      __typename
    }
  }
`);

/** The live balance: the `balance` subscription sends it at once, then on every change. */
function Balance() {
  const [{ data }] = useSubscription({ query: BalanceSubscription });
  return (
    <Link href="/account" className="balance">
      <span className="muted">Balance</span> <output data-testid="balance">{data ? money(data.balance.balance) : "…"}</output>
    </Link>
  );
}

const NAV = [
  { href: "/", label: "Search" },
  { href: "/instances", label: "Instances" },
  { href: "/host", label: "Hosting" },
  { href: "/market", label: "Market" },
  { href: "/account", label: "Account" },
];

export function Header() {
  const { session, signOut, endedBecause } = useSession();
  const [location, navigate] = useLocation();
  const client = useClient();
  async function logOut() {
    const ending = session!;
    signOut();
    navigate("/");
    // The key of this login stops working too, so a copy of it (another tab, a saved page) is no session.
    if (ending.loginKeyId) await client.mutation(RevokeLoginKey, { id: ending.loginKeyId }).toPromise();
  }
  return (
    <header className="site-header">
      <div className="bar">
        <Link href="/" className="brand">
          GPU&nbsp;Market
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.href}>
                <Link href={item.href} aria-current={location === item.href ? "page" : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="account">
          {session ? (
            <>
              <Balance />
              <span className="email muted" title={session.email}>
                {session.email}
              </span>
              <button type="button" className="btn ghost" onClick={logOut}>
                Log out
              </button>
            </>
          ) : (
            <>
              <Link href="/login" className="btn ghost">
                Log in
              </Link>
              <Link href="/signup" className="btn primary">
                Sign up
              </Link>
            </>
          )}
        </div>
      </div>
      {endedBecause && !session && (
        <p className="alert info banner" role="status">
          {endedBecause}
        </p>
      )}
    </header>
  );
}
