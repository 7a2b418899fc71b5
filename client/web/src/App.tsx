import { lazy, Suspense } from "react";
import { Link, Route, Switch } from "wouter";
import { Header } from "./components/Header.tsx";
import { SearchPage } from "./pages/SearchPage.tsx";
import { SessionProvider } from "./session.tsx";

// The search page is in the entry chunk (it is the landing page); the rest load on demand.
const RentPage = lazy(() => import("./pages/RentPage.tsx"));
const InstancesPage = lazy(() => import("./pages/InstancesPage.tsx"));
const InstancePage = lazy(() => import("./pages/InstancePage.tsx"));
const AccountPage = lazy(() => import("./pages/AccountPage.tsx"));
const HostPage = lazy(() => import("./pages/HostPage.tsx"));
const MarketPage = lazy(() => import("./pages/MarketPage.tsx"));
const AuthPage = lazy(() => import("./pages/AuthPage.tsx"));
const EmailLinkPage = lazy(() => import("./pages/EmailLinkPage.tsx"));

export function App() {
  return (
    <SessionProvider>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <Header />
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p className="muted">Loading…</p>}>
          <Switch>
            <Route path="/" component={SearchPage} />
            <Route path="/rent/:offerId">{(params) => <RentPage offerId={params.offerId} />}</Route>
            <Route path="/instances">{() => <InstancesPage />}</Route>
            <Route path="/instances/:id">{(params) => <InstancePage id={params.id} />}</Route>
            <Route path="/account">{() => <AccountPage />}</Route>
            {/* Stripe Checkout returns here (BILLING_RETURN_URL). */}
            <Route path="/billing">{() => <AccountPage />}</Route>
            <Route path="/host">{() => <HostPage />}</Route>
            <Route path="/market">{() => <MarketPage />}</Route>
            <Route path="/login">{() => <AuthPage mode="login" />}</Route>
            <Route path="/signup">{() => <AuthPage mode="signup" />}</Route>
            {/* The links of account emails (APP_URL). */}
            <Route path="/verify-email">{() => <EmailLinkPage purpose="verify-email" />}</Route>
            <Route path="/reset-password">{() => <EmailLinkPage purpose="reset-password" />}</Route>
            <Route path="/complete-signup">{() => <EmailLinkPage purpose="complete-signup" />}</Route>
            <Route>
              <h1>Not found</h1>
              <p>
                <Link href="/">Search offers</Link>
              </p>
            </Route>
          </Switch>
        </Suspense>
      </main>
    </SessionProvider>
  );
}
