import { type FormEvent, useCallback, useEffect, useState } from "react";
import { type CombinedError, useMutation, useQuery, useSubscription } from "urql";
import { Link, useLocation } from "wouter";
import { type Column, DataTable } from "../components/base/DataTable.tsx";
import { Alert, Field } from "../components/base/Field.tsx";
import { gpuRate, StatusBadge, useNow } from "../components/instances.tsx";
import { RequireSession } from "../components/RequireSession.tsx";
import { dateTime, money, timeLeft } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { InstanceDetailFragment } from "../gql/graphql.ts";
import { resultError, type ResultError } from "../results.ts";

graphql(`
  fragment InstanceDetail on Instance {
    ...InstanceRow
    launchMode
    intendedStatus
    containerLabel
    ports
    onstart
    statusChangedAt
    bidPlacedAt
    destroyedAt
    env {
      key
    }
    connection {
      publicHost
      sshPort
      jupyterUrl
      jupyterDirectUrl
      ports {
        containerPort
        hostPort
        protocol
      }
    }
    statusHistory {
      at
      from
      to
      event
      message
    }
  }
`);

const InstanceQuery = graphql(`
  query InstanceDetail($id: ID!) {
    instance(id: $id) {
      ...InstanceDetail
    }
  }
`);

const InstanceLive = graphql(`
  subscription InstanceLive($id: ID!) {
    instanceStatus(instanceId: $id) {
      ...InstanceDetail
    }
  }
`);

const InstanceLogLines = graphql(`
  subscription InstanceLogLines($id: ID!) {
    instanceLogs(instanceId: $id, tail: 200) {
      lines
    }
  }
`);

/** The most lines the page keeps while following. */
const MAX_LOG_LINES = 2000;

const StartInstance = graphql(`
  mutation StartInstance($id: ID!) {
    startInstance(id: $id) {
      __typename
      ... on MutationStartInstanceSuccess {
        data {
          ...InstanceDetail
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const StopInstance = graphql(`
  mutation StopInstance($id: ID!) {
    stopInstance(id: $id) {
      __typename
      ... on MutationStopInstanceSuccess {
        data {
          ...InstanceDetail
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const DestroyInstance = graphql(`
  mutation DestroyInstance($id: ID!) {
    destroyInstance(id: $id) {
      __typename
      ... on MutationDestroyInstanceSuccess {
        data {
          ...InstanceDetail
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const RebootInstance = graphql(`
  mutation RebootInstance($id: ID!) {
    rebootInstance(id: $id) {
      __typename
      ... on MutationRebootInstanceSuccess {
        data {
          ...InstanceDetail
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const ChangeBid = graphql(`
  mutation ChangeBid($id: ID!, $price: Money!) {
    changeBid(instanceId: $id, pricePerGpuHour: $price) {
      __typename
      ... on MutationChangeBidSuccess {
        data {
          ...InstanceDetail
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
      ... on BidTooLowError {
        minBidPerGpuHour
      }
    }
  }
`);

const LabelInstance = graphql(`
  mutation LabelInstance($id: ID!, $label: String) {
    labelInstance(id: $id, label: $label) {
      __typename
      ... on MutationLabelInstanceSuccess {
        data {
          ...InstanceDetail
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

type History = InstanceDetailFragment["statusHistory"][number];

const HISTORY_COLUMNS: Column<History>[] = [
  { key: "at", header: "When", cell: (h) => dateTime(h.at) },
  { key: "change", header: "Status", cell: (h) => (h.from ? `${h.from} → ${h.to}` : h.to) },
  { key: "event", header: "Event", cell: (h) => h.event },
  { key: "message", header: "Message", cell: (h) => h.message ?? "" },
];

/** What an action's answer carries: the instance as the action left it. */
type OnChanged = (instance: InstanceDetailFragment) => void;

function Actions({ instance, onChanged }: { instance: InstanceDetailFragment; onChanged: OnChanged }) {
  const [, navigate] = useLocation();
  const [start, runStart] = useMutation(StartInstance);
  const [stop, runStop] = useMutation(StopInstance);
  const [destroy, runDestroy] = useMutation(DestroyInstance);
  const [reboot, runReboot] = useMutation(RebootInstance);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const busy = start.fetching || stop.fetching || destroy.fetching || reboot.fetching;
  /** Runs one of the three mutations, each answering with its one result union. */
  const run = async (action: (variables: { id: string }) => Promise<{ data?: object; error?: CombinedError }>, after?: () => void) => {
    setError(null);
    const outcome = await action({ id: instance.id });
    const result = outcome.data ? (Object.values(outcome.data)[0] as Parameters<typeof resultError>[0] & { data?: InstanceDetailFragment }) : null;
    const failure = resultError(result, outcome.error);
    if (failure) return setError(failure.message);
    if (result?.data) onChanged(result.data);
    after?.();
  };
  if (instance.status === "DESTROYED") return <p className="muted">Destroyed {dateTime(instance.destroyedAt)}.</p>;
  const stopped = instance.intendedStatus === "STOPPED";
  return (
    <div>
      <div className="actions">
        {stopped ? (
          <button type="button" className="btn primary" disabled={busy} onClick={() => run(runStart)}>
            Start
          </button>
        ) : (
          <>
            <button type="button" className="btn ghost" disabled={busy} onClick={() => run(runStop)}>
              Stop
            </button>
            {(instance.status === "RUNNING" || instance.status === "LOADING") && (
              <button type="button" className="btn ghost" disabled={busy} onClick={() => run(runReboot)}>
                Reboot
              </button>
            )}
          </>
        )}
        {confirming ? (
          <>
            <button type="button" className="btn danger" disabled={busy} onClick={() => run(runDestroy, () => navigate("/instances"))}>
              Destroy for good
            </button>
            <button type="button" className="btn ghost" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </>
        ) : (
          <button type="button" className="btn ghost" disabled={busy} onClick={() => setConfirming(true)}>
            Destroy…
          </button>
        )}
      </div>
      {confirming && <p className="muted small">Destroying deletes the disk and cannot be undone.</p>}
      {error && <Alert>{error}</Alert>}
    </div>
  );
}

function BidForm({ instance, onChanged }: { instance: InstanceDetailFragment; onChanged: OnChanged }) {
  const [state, change] = useMutation(ChangeBid);
  const [price, setPrice] = useState("");
  const [error, setError] = useState<ResultError | null>(null);
  const [saved, setSaved] = useState(false);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setSaved(false);
    const outcome = await change({ id: instance.id, price: price.trim() });
    const result = outcome.data?.changeBid;
    const failure = resultError(result, outcome.error);
    if (failure && result?.__typename === "BidTooLowError") failure.message = `${failure.message} (at least ${money(result.minBidPerGpuHour, 3)})`;
    if (failure) return setError(failure);
    if (result?.__typename === "MutationChangeBidSuccess") onChanged(result.data);
    setSaved(true);
  }
  return (
    <form className="inline-form" onSubmit={submit} noValidate aria-label="Change bid">
      <Field label="New bid per GPU-hour ($)" error={error ? (error.fields.pricePerGpuHour ?? error.message) : null}>
        {(props) => <input {...props} name="bid" inputMode="decimal" placeholder={instance.bidPerGpuHour ?? ""} value={price} onChange={(e) => setPrice(e.target.value)} />}
      </Field>
      <button type="submit" className="btn primary" disabled={state.fetching || !price.trim()}>
        Change bid
      </button>
      {saved && <span role="status">Bid changed.</span>}
    </form>
  );
}

function LabelForm({ instance, onChanged }: { instance: InstanceDetailFragment; onChanged: OnChanged }) {
  const [state, relabel] = useMutation(LabelInstance);
  const [label, setLabel] = useState(instance.label ?? "");
  const [error, setError] = useState<ResultError | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    const outcome = await relabel({ id: instance.id, label: label.trim() || null });
    const result = outcome.data?.labelInstance;
    setError(resultError(result, outcome.error));
    if (result?.__typename === "MutationLabelInstanceSuccess") onChanged(result.data);
  }
  return (
    <form className="inline-form" onSubmit={submit} noValidate aria-label="Label">
      <Field label="Label" error={error ? (error.fields.label ?? error.message) : null}>
        {(props) => <input {...props} name="label" value={label} onChange={(e) => setLabel(e.target.value)} />}
      </Field>
      <button type="submit" className="btn ghost" disabled={state.fetching}>
        Save label
      </button>
    </form>
  );
}

function CopyField({ label, value }: { label: string; value: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="copy">
      <code aria-label={label}>{value}</code>
      <button
        type="button"
        className="btn small ghost"
        onClick={async () => {
          await navigator.clipboard?.writeText(value);
          setCopied(true);
        }}
      >
        {copied ? "Copied" : "Copy"}
      </button>
    </div>
  );
}

function ConnectionDetails({ instance }: { instance: InstanceDetailFragment }) {
  const connection = instance.connection;
  if (!connection) return <p className="muted">Connection details appear once the host's agent has started the container.</p>;
  return (
    <dl className="facts">
      <dt>Host</dt>
      <dd className="mono">{connection.publicHost}</dd>
      {connection.sshPort !== null && connection.sshPort !== undefined && (
        <>
          <dt>SSH</dt>
          <dd>
            <CopyField label="SSH command" value={`ssh -p ${connection.sshPort} root@${connection.publicHost}`} />
          </dd>
        </>
      )}
      {connection.jupyterUrl && (
        <>
          <dt>Jupyter</dt>
          <dd>
            <a href={connection.jupyterUrl} target="_blank" rel="noreferrer">
              Open Jupyter
            </a>
            {connection.jupyterDirectUrl && (
              <>
                {" "}
                · <a href={connection.jupyterDirectUrl} target="_blank" rel="noreferrer">direct</a>
              </>
            )}
          </dd>
        </>
      )}
      <dt>Ports</dt>
      <dd className="mono">
        {connection.ports.length ? connection.ports.map((p) => `${p.containerPort}/${p.protocol} → ${connection.publicHost}:${p.hostPort}`).join(", ") : "—"}
      </dd>
    </dl>
  );
}

/** The container's output, following live while the page is open. */
function Logs({ id }: { id: string }) {
  const [logs] = useSubscription({ query: InstanceLogLines, variables: { id } }, (lines: string[] = [], event) =>
    [...lines, ...event.instanceLogs.lines].slice(-MAX_LOG_LINES),
  );
  const error = logs.error?.graphQLErrors[0]?.message ?? logs.error?.message;
  return (
    <section aria-labelledby="logs-title">
      <h2 id="logs-title">Logs</h2>
      {error ? (
        <Alert tone="info">{error}</Alert>
      ) : (
        <pre className="logs" tabIndex={0} aria-label="Container logs" data-testid="logs">
          {logs.data?.length ? logs.data.join("\n") : "Waiting for output…"}
        </pre>
      )}
    </section>
  );
}

function InstanceView({ id }: { id: string }) {
  const [queried] = useQuery({ query: InstanceQuery, variables: { id }, requestPolicy: "cache-and-network" });
  const [live] = useSubscription({ query: InstanceLive, variables: { id } });
  const now = useNow();
  // The newest copy of the subscription's (sent at once, then after every change of status) and this
  // page's actions' answers (a new label or bid is no change of status); before either, the query's.
  // The later status change wins whatever arrives last: an action's answer can come after the event
  // of the change that followed it.
  const [latest, setLatest] = useState<InstanceDetailFragment | null>(null);
  const arrived = useCallback(
    (next: InstanceDetailFragment) => setLatest((current) => (current && current.statusChangedAt > next.statusChangedAt ? current : next)),
    [],
  );
  useEffect(() => {
    if (live.data) arrived(live.data.instanceStatus);
  }, [live.data, arrived]);
  const instance = latest ?? queried.data?.instance;
  if (queried.error && !instance) return <Alert>{queried.error.graphQLErrors[0]?.message ?? queried.error.message}</Alert>;
  if (!instance) return <p className="muted">Loading…</p>;
  return (
    <div>
      <p>
        <Link href="/instances">← Instances</Link>
      </p>
      <h1>
        {instance.label || instance.id} <StatusBadge status={instance.status} />
      </h1>
      {instance.statusMessage && <p className="muted" data-testid="status-message">{instance.statusMessage}</p>}
      <div className="grid">
        <section className="card" aria-labelledby="details">
          <h2 id="details">Details</h2>
          <dl className="facts">
            <dt>Image</dt>
            <dd className="mono">{instance.image}</dd>
            <dt>Launch mode</dt>
            <dd>{instance.launchMode}</dd>
            <dt>GPUs</dt>
            <dd>{instance.numGpus}</dd>
            <dt>Rental</dt>
            <dd>
              {instance.kind === "INTERRUPTIBLE" ? `interruptible, bid ${money(gpuRate(instance), 3)}/GPU·h` : `on-demand, ${money(gpuRate(instance), 3)}/GPU·h`}
            </dd>
            <dt>Disk</dt>
            <dd>
              {instance.diskGb} GB at {money(instance.storagePricePerGbMonth, 3)}/GB·month
            </dd>
            <dt>Ports</dt>
            <dd className="mono">{instance.ports.join(", ") || "—"}</dd>
            <dt>Environment</dt>
            <dd className="mono">{instance.env.map((e) => e.key).join(", ") || "—"}</dd>
            <dt>Container</dt>
            <dd className="mono">{instance.containerLabel}</dd>
            <dt>Ends</dt>
            <dd>
              {dateTime(instance.endDate)} ({timeLeft(instance.endDate, now)})
            </dd>
          </dl>
        </section>
        <section className="card" aria-labelledby="connect">
          <h2 id="connect">Connect</h2>
          <ConnectionDetails instance={instance} />
        </section>
        <section className="card" aria-labelledby="manage">
          <h2 id="manage">Manage</h2>
          <Actions instance={instance} onChanged={arrived} />
          {instance.kind === "INTERRUPTIBLE" && instance.status !== "DESTROYED" && <BidForm instance={instance} onChanged={arrived} />}
          {instance.status !== "DESTROYED" && <LabelForm key={instance.label ?? ""} instance={instance} onChanged={arrived} />}
        </section>
      </div>
      {(instance.status === "RUNNING" || instance.status === "LOADING") && <Logs id={instance.id} />}
      <section aria-labelledby="history">
        <h2 id="history">Status history</h2>
        <DataTable caption="Status history" columns={HISTORY_COLUMNS} rows={[...instance.statusHistory].reverse()} rowKey={(h) => `${h.at}-${h.to}-${h.event}`} />
      </section>
    </div>
  );
}

export default function InstancePage({ id }: { id: string }) {
  return (
    <RequireSession what="see this instance">
      {/* One state per instance: another instance's page starts afresh. */}
      <InstanceView key={id} id={decodeURIComponent(id)} />
    </RequireSession>
  );
}
