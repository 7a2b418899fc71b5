import { type FormEvent, type ReactNode, useState } from "react";
import { useMutation, useQuery } from "urql";
import { useSearch } from "wouter";
import { useAllPages } from "../allPages.ts";
import { type Column, DataTable } from "../components/base/DataTable.tsx";
import { Alert, Field } from "../components/base/Field.tsx";
import { RequireSession } from "../components/RequireSession.tsx";
import { TrustPanel } from "../components/TrustPanel.tsx";
import { dateTime, day, downloadCsv, money } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { AccountApiKeysQuery, AccountChargesQuery, AccountInvoicesQuery, AccountSshKeysQuery } from "../gql/graphql.ts";
import { resultError, type ResultError } from "../results.ts";
import { useSession } from "../session.tsx";

const AccountOverview = graphql(`
  query AccountOverview {
    me {
      id
      email
      balance
      createdAt
    }
    billingSettings {
      autoBillAmount
      autoBillThreshold
      balanceAlertThreshold
      savedCard
      payoutAccountId
      payoutsEnabled
    }
  }
`);

const StartPayoutOnboarding = graphql(`
  mutation StartPayoutOnboarding {
    startPayoutOnboarding {
      __typename
      ... on MutationStartPayoutOnboardingSuccess {
        data {
          url
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const AddCredit = graphql(`
  mutation AddCredit($amount: Money!, $saveCard: Boolean) {
    addCredit(amount: $amount, saveCard: $saveCard) {
      __typename
      ... on MutationAddCreditSuccess {
        data {
          url
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

const UpdateBilling = graphql(`
  mutation UpdateBillingSettings($input: BillingSettingsInput!) {
    updateBillingSettings(input: $input) {
      __typename
      ... on MutationUpdateBillingSettingsSuccess {
        data {
          autoBillAmount
          autoBillThreshold
          balanceAlertThreshold
          savedCard
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

const AccountCharges = graphql(`
  query AccountCharges($from: DateTime!, $to: DateTime!, $after: String) {
    charges(from: $from, to: $to, first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
      day
      instanceId
      category
      description
      quantity
      unit
      rate
      amount
      }
    }
  }
`);

const AccountInvoices = graphql(`
  query AccountInvoices($from: DateTime!, $to: DateTime!, $after: String) {
    invoices(from: $from, to: $to, first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        at
        kind
        status
        description
        amount
      }
    }
  }
`);

const AccountApiKeys = graphql(`
  query AccountApiKeys($after: String) {
    apiKeys(first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
      id
      name
      prefix
      scope
      permissions
      expiresAt
      createdAt
      lastUsedAt
      revokedAt
      }
    }
  }
`);

const AccountSshKeys = graphql(`
  query AccountSshKeys($after: String) {
    sshKeys(first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        keyType
        fingerprint
        comment
        createdAt
      }
    }
  }
`);

const CreateApiKey = graphql(`
  mutation CreateApiKey($name: String!, $permissions: [ApiKeyPermission!]) {
    createApiKey(name: $name, permissions: $permissions) {
      __typename
      ... on MutationCreateApiKeySuccess {
        data {
          token
          apiKey {
            id
          }
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

const RevokeApiKey = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) {
      __typename
      ... on MutationRevokeApiKeySuccess {
        data {
          id
          revokedAt
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const AddSshKey = graphql(`
  mutation AddSshKey($publicKey: String!) {
    addSshKey(publicKey: $publicKey) {
      __typename
      ... on MutationAddSshKeySuccess {
        data {
          id
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

const RemoveSshKey = graphql(`
  mutation RemoveSshKey($id: ID!) {
    removeSshKey(id: $id) {
      __typename
      ... on MutationRemoveSshKeySuccess {
        data {
          id
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

function Section({ title, children }: { title: string; children: ReactNode }) {
  const id = `section-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return (
    <section className="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

function CreditForm() {
  const [state, add] = useMutation(AddCredit);
  const [amount, setAmount] = useState("20.00");
  const [saveCard, setSaveCard] = useState(false);
  const [error, setError] = useState<ResultError | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const outcome = await add({ amount: amount.trim(), saveCard });
    const result = outcome.data?.addCredit;
    const failure = resultError(result, outcome.error);
    if (failure) setError(failure);
    else if (result?.__typename === "MutationAddCreditSuccess") window.location.assign(result.data.url);
  }
  return (
    <form onSubmit={submit} noValidate aria-label="Add credit">
      <div className="inline-form">
        <Field label="Amount ($)" error={error ? (error.fields.amount ?? error.message) : null} hint="$5 to $10,000; paid on Stripe Checkout">
          {(props) => <input {...props} name="amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />}
        </Field>
        <button type="submit" className="btn primary" disabled={state.fetching}>
          Add credit
        </button>
      </div>
      <label className="checks">
        <input type="checkbox" checked={saveCard} onChange={(e) => setSaveCard(e.target.checked)} /> Save the card for auto-billing
      </label>
    </form>
  );
}

type Settings = { autoBillAmount?: string | null; autoBillThreshold?: string | null; balanceAlertThreshold?: string | null; savedCard?: string | null };

function BillingSettingsForm({ settings }: { settings: Settings }) {
  const [state, update] = useMutation(UpdateBilling);
  const [threshold, setThreshold] = useState(settings.autoBillThreshold ?? "");
  const [amount, setAmount] = useState(settings.autoBillAmount ?? "");
  const [alert, setAlert] = useState(settings.balanceAlertThreshold ?? "");
  const [error, setError] = useState<ResultError | null>(null);
  const [saved, setSaved] = useState(false);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setSaved(false);
    const outcome = await update({
      input: { autoBillThreshold: threshold.trim() || null, autoBillAmount: amount.trim() || null, balanceAlertThreshold: alert.trim() || null },
    });
    const failure = resultError(outcome.data?.updateBillingSettings, outcome.error);
    setError(failure);
    setSaved(!failure);
  }
  return (
    <form onSubmit={submit} noValidate aria-label="Billing settings">
      <p className="muted">Saved card: {settings.savedCard ?? "none (add credit with “Save the card” to enable auto-billing)"}</p>
      <div className="pair">
        <Field label="Auto-bill below ($)" error={error?.fields.autoBillThreshold}>
          {(props) => <input {...props} name="autoBillThreshold" inputMode="decimal" value={threshold} onChange={(e) => setThreshold(e.target.value)} />}
        </Field>
        <Field label="Auto-bill amount ($)" error={error?.fields.autoBillAmount}>
          {(props) => <input {...props} name="autoBillAmount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />}
        </Field>
      </div>
      <Field label="Email me when the balance falls below ($)" error={error?.fields.balanceAlertThreshold}>
        {(props) => <input {...props} name="balanceAlertThreshold" inputMode="decimal" value={alert} onChange={(e) => setAlert(e.target.value)} />}
      </Field>
      {error && Object.keys(error.fields).length === 0 && <Alert>{error.message}</Alert>}
      <div className="actions">
        <button type="submit" className="btn primary" disabled={state.fetching}>
          Save settings
        </button>
        {saved && <span role="status">Saved.</span>}
      </div>
    </form>
  );
}

/** Host payouts: onboarding at Stripe (Connect), then weekly payouts once Stripe enables them. */
function PayoutsPanel({ settings }: { settings: { payoutAccountId?: string | null; payoutsEnabled: boolean } }) {
  const [state, start] = useMutation(StartPayoutOnboarding);
  const [error, setError] = useState<ResultError | null>(null);
  async function onboard() {
    setError(null);
    const outcome = await start({});
    const result = outcome.data?.startPayoutOnboarding;
    const failure = resultError(result, outcome.error);
    if (failure) setError(failure);
    else if (result?.__typename === "MutationStartPayoutOnboardingSuccess") window.location.assign(result.data.url);
  }
  const status = settings.payoutsEnabled
    ? "Payouts enabled: earnings are paid on Fridays"
    : settings.payoutAccountId
      ? "Onboarding at Stripe not finished"
      : "Not set up";
  return (
    <div>
      <p data-testid="payouts">{status}</p>
      {error && <Alert>{error.message}</Alert>}
      {!settings.payoutsEnabled && (
        <button type="button" className="btn ghost" onClick={onboard} disabled={state.fetching}>
          {settings.payoutAccountId ? "Continue onboarding at Stripe" : "Set up payouts with Stripe"}
        </button>
      )}
    </div>
  );
}

function isoDay(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

type ChargeRow = AccountChargesQuery["charges"]["nodes"][number];
type InvoiceRow = AccountInvoicesQuery["invoices"]["nodes"][number];

const CHARGE_COLUMNS: Column<ChargeRow>[] = [
  { key: "day", header: "Day", cell: (c) => day(c.day) },
  { key: "instance", header: "Instance", cell: (c) => c.instanceId },
  { key: "category", header: "Category", cell: (c) => c.category },
  { key: "description", header: "Description", cell: (c) => c.description },
  { key: "amount", header: "Amount", numeric: true, cell: (c) => money(c.amount, 2) },
];

const INVOICE_COLUMNS: Column<InvoiceRow>[] = [
  { key: "at", header: "When", cell: (i) => dateTime(i.at) },
  { key: "kind", header: "Kind", cell: (i) => i.kind },
  { key: "status", header: "Status", cell: (i) => i.status },
  { key: "description", header: "Description", cell: (i) => i.description },
  { key: "amount", header: "Amount", numeric: true, cell: (i) => money(i.amount, 2) },
];

/** Charges and invoices over a date range (to inclusive), with CSV export. */
function Statements() {
  const [from, setFrom] = useState(isoDay(-30));
  const [to, setTo] = useState(isoDay(0));
  const range = { from: `${from}T00:00:00.000Z`, to: new Date(new Date(`${to}T00:00:00.000Z`).getTime() + 86_400_000).toISOString() };
  const valid = from && to && from <= to;
  const charges = useAllPages(AccountCharges, valid ? range : null, (data) => data.charges);
  const invoices = useAllPages(AccountInvoices, valid ? range : null, (data) => data.invoices);
  const chargeRows = charges.items ?? [];
  const invoiceRows = invoices.items ?? [];
  return (
    <Section title="Charges and invoices">
      <div className="inline-form">
        <Field label="From">{(props) => <input {...props} type="date" value={from} max={to} onChange={(e) => setFrom(e.target.value)} />}</Field>
        <Field label="To">{(props) => <input {...props} type="date" value={to} min={from} onChange={(e) => setTo(e.target.value)} />}</Field>
      </div>
      {(charges.error || invoices.error) && <Alert>{(charges.error ?? invoices.error)!.message}</Alert>}
      <h3>Charges</h3>
      <DataTable caption="Charges" columns={CHARGE_COLUMNS} rows={chargeRows} rowKey={(c) => `${c.day}-${c.instanceId}-${c.category}-${c.rate}`} empty="No charges in this range." />
      <div className="actions">
        <button
          type="button"
          className="btn ghost"
          disabled={chargeRows.length === 0}
          onClick={() =>
            downloadCsv(`charges-${from}-${to}.csv`, [
              ["day", "instance", "category", "description", "quantity", "unit", "rate", "amount"],
              ...chargeRows.map((c) => [day(c.day), c.instanceId, c.category, c.description, c.quantity, c.unit, c.rate, c.amount]),
            ])
          }
        >
          Export charges (CSV)
        </button>
      </div>
      <h3>Invoices</h3>
      <DataTable caption="Invoices" columns={INVOICE_COLUMNS} rows={invoiceRows} rowKey={(i) => `${i.at}-${i.kind}-${i.amount}`} empty="No payments in this range." />
      <div className="actions">
        <button
          type="button"
          className="btn ghost"
          disabled={invoiceRows.length === 0}
          onClick={() =>
            downloadCsv(`invoices-${from}-${to}.csv`, [["at", "kind", "status", "description", "amount"], ...invoiceRows.map((i) => [i.at, i.kind, i.status, i.description, i.amount])])
          }
        >
          Export invoices (CSV)
        </button>
      </div>
    </Section>
  );
}

type KeyRow = AccountApiKeysQuery["apiKeys"]["nodes"][number];
type SshRow = AccountSshKeysQuery["sshKeys"]["nodes"][number];

function Keys() {
  const apiKeys = useAllPages(AccountApiKeys, {}, (data) => data.apiKeys);
  const sshKeys = useAllPages(AccountSshKeys, {}, (data) => data.sshKeys);
  const [, create] = useMutation(CreateApiKey);
  const [, revoke] = useMutation(RevokeApiKey);
  const [, addSsh] = useMutation(AddSshKey);
  const [, removeSsh] = useMutation(RemoveSshKey);
  const [name, setName] = useState("");
  const [readOnly, setReadOnly] = useState(false);
  const [issued, setIssued] = useState<string | null>(null);
  const [keyError, setKeyError] = useState<ResultError | null>(null);
  const [publicKey, setPublicKey] = useState("");
  const [sshError, setSshError] = useState<ResultError | null>(null);
  const reload = () => (apiKeys.reload(), sshKeys.reload());

  const apiColumns: Column<KeyRow>[] = [
    { key: "name", header: "Name", cell: (k) => k.name },
    { key: "prefix", header: "Key", cell: (k) => <code>{k.prefix}…</code> },
    { key: "scope", header: "Scope", cell: (k) => k.scope },
    // Account and session keys act with permissions; machine and instance keys for one machine or instance.
    { key: "permissions", header: "May", cell: (k) => (k.permissions.length === 0 ? "—" : k.permissions.length === 5 ? "everything" : k.permissions.join(", ")) },
    { key: "expires", header: "Expires", cell: (k) => (k.expiresAt ? dateTime(k.expiresAt) : "never") },
    { key: "used", header: "Last used", cell: (k) => dateTime(k.lastUsedAt) },
    {
      key: "revoke",
      header: "",
      cell: (k) =>
        k.revokedAt ? (
          <span className="muted">revoked</span>
        ) : (
          <button type="button" className="btn small ghost" aria-label={`Revoke ${k.name}`} onClick={async () => (await revoke({ id: k.id }), reload())}>
            Revoke
          </button>
        ),
    },
  ];
  const sshColumns: Column<SshRow>[] = [
    { key: "type", header: "Type", cell: (k) => k.keyType },
    { key: "fingerprint", header: "Fingerprint", cell: (k) => <code>{k.fingerprint}</code> },
    { key: "comment", header: "Comment", cell: (k) => k.comment ?? "" },
    {
      key: "remove",
      header: "",
      cell: (k) => (
        <button type="button" className="btn small ghost" aria-label={`Remove ${k.fingerprint}`} onClick={async () => (await removeSsh({ id: k.id }), reload())}>
          Remove
        </button>
      ),
    },
  ];
  return (
    <>
      <Section title="API keys">
        <DataTable caption="API keys" columns={apiColumns} rows={apiKeys.items ?? []} rowKey={(k) => k.id} />
        <form
          className="inline-form"
          noValidate
          onSubmit={async (event) => {
            event.preventDefault();
            const outcome = await create({ name: name.trim(), permissions: readOnly ? ["READ"] : null });
            const result = outcome.data?.createApiKey;
            const failure = resultError(result, outcome.error);
            setKeyError(failure);
            if (!failure && result?.__typename === "MutationCreateApiKeySuccess") {
              setIssued(result.data.token);
              setName("");
              reload();
            }
          }}
        >
          <Field label="New key name" error={keyError ? (keyError.fields.name ?? keyError.message) : null}>
            {(props) => <input {...props} name="keyName" value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <label className="checks">
            <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly(e.target.checked)} /> Read-only
          </label>
          <button type="submit" className="btn primary">
            Create key
          </button>
        </form>
        {issued && (
          <Alert tone="success">
            New key (shown only now): <code data-testid="issued-key">{issued}</code>
          </Alert>
        )}
      </Section>
      <Section title="SSH keys">
        <DataTable caption="SSH keys" columns={sshColumns} rows={sshKeys.items ?? []} rowKey={(k) => k.id} empty="No SSH keys." />
        <form
          noValidate
          onSubmit={async (event) => {
            event.preventDefault();
            const outcome = await addSsh({ publicKey: publicKey.trim() });
            const failure = resultError(outcome.data?.addSshKey, outcome.error);
            setSshError(failure);
            if (!failure) {
              setPublicKey("");
              reload();
            }
          }}
        >
          <Field label="Public key" error={sshError ? (sshError.fields.publicKey ?? sshError.message) : null} hint="one OpenSSH line: ssh-ed25519 AAAA… comment">
            {(props) => <textarea {...props} name="publicKey" rows={2} className="mono" value={publicKey} onChange={(e) => setPublicKey(e.target.value)} />}
          </Field>
          <button type="submit" className="btn primary">
            Add SSH key
          </button>
        </form>
      </Section>
    </>
  );
}

function Account() {
  const [overview] = useQuery({ query: AccountOverview, requestPolicy: "cache-and-network" });
  const { session } = useSession();
  const search = new URLSearchParams(useSearch());
  const checkout = search.get("checkout");
  const payouts = search.get("payouts");
  const me = overview.data?.me;
  return (
    <div>
      <h1>Account</h1>
      {checkout === "success" && <Alert tone="success">Payment received: the credit appears in your balance as soon as Stripe confirms it.</Alert>}
      {checkout === "cancelled" && <Alert tone="info">Payment cancelled; nothing was charged.</Alert>}
      {payouts === "return" && <Alert tone="info">Back from Stripe: payouts start once Stripe confirms your details.</Alert>}
      {payouts === "refresh" && <Alert tone="info">The onboarding link expired: continue onboarding for a new one.</Alert>}
      {overview.error && <Alert>{overview.error.message}</Alert>}
      <div className="grid">
        <Section title="Credit">
          <p>
            {me?.email ?? session?.email} · balance <strong>{money(me?.balance)}</strong>
          </p>
          <CreditForm />
        </Section>
        <Section title="Auto-billing and alerts">{overview.data && <BillingSettingsForm settings={overview.data.billingSettings} />}</Section>
        <Section title="Host payouts">{overview.data && <PayoutsPanel settings={overview.data.billingSettings} />}</Section>
      </div>
      <Statements />
      <div className="grid">
        <TrustPanel />
        <Keys />
      </div>
    </div>
  );
}

export default function AccountPage() {
  return (
    <RequireSession what="manage your account">
      <Account />
    </RequireSession>
  );
}
