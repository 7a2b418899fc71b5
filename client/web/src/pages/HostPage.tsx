import { type FormEvent, useMemo, useState } from "react";
import { useMutation, useQuery } from "urql";
import { useAllPages } from "../allPages.ts";
import { type Column, DataTable } from "../components/base/DataTable.tsx";
import { Alert, Field } from "../components/base/Field.tsx";
import { TimeSeriesChart } from "../components/base/TimeSeriesChart.tsx";
import { RequireSession } from "../components/RequireSession.tsx";
import { dateTime, fromMicros, money, number, percent, toMicros } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { HostMachineFragment } from "../gql/graphql.ts";
import { resultError, type ResultError } from "../results.ts";

graphql(`
  fragment HostMachine on Machine {
    id
    gpuName
    numGpus
    gpuRamMb
    countryCode
    geolocation
    listed
    online
    verification
    reliability
    lastHeartbeatAt
    pricePerGpuHour
    minBidPerGpuHour
    storagePricePerGbMonth
    inetUpPricePerGb
    inetDownPricePerGb
    minChunk
    endDate
    metrics {
      cpuLoad
      diskFreeGb
      gpuUtilization
      gpuTemperatureC
    }
  }
`);

const MyMachines = graphql(`
  query MyMachines($after: String) {
    myMachines(first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        ...HostMachine
      }
    }
  }
`);

const ListMachine = graphql(`
  mutation ListMachine($input: ListMachineInput!) {
    listMachine(input: $input) {
      __typename
      ... on MutationListMachineSuccess {
        data {
          ...HostMachine
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

const UnlistMachine = graphql(`
  mutation UnlistMachine($machineId: ID!) {
    unlistMachine(machineId: $machineId) {
      __typename
      ... on MutationUnlistMachineSuccess {
        data {
          ...HostMachine
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`);

const HostEarnings = graphql(`
  query HostEarnings($from: DateTime!, $to: DateTime!, $after: String) {
    earnings(from: $from, to: $to, first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        day
        machineId
        total
      }
    }
  }
`);

const EstimateEarnings = graphql(`
  query EstimateEarnings($specs: MachineSpecsInput!) {
    earningsEstimate(specs: $specs) {
      gpuName
      numGpus
      perDay
      perDayLow
      perDayHigh
      utilization
      similarMachines
      source
      windowDays
    }
  }
`);

/** "Machine:12" → "12". */
const machineNumber = (id: string) => id.replace(/^Machine:/, "");

/** Listing terms for one machine: price, min bid, storage, end date; listing again updates them. */
function ListingForm({ machine, onDone }: { machine: HostMachineFragment; onDone: () => void }) {
  const [state, list] = useMutation(ListMachine);
  const defaultEnd = machine.endDate ? machine.endDate.slice(0, 10) : new Date(Date.now() + 90 * 86_400_000).toISOString().slice(0, 10);
  const [price, setPrice] = useState(machine.pricePerGpuHour ?? "");
  const [minBid, setMinBid] = useState(machine.minBidPerGpuHour ?? "");
  const [storage, setStorage] = useState(machine.storagePricePerGbMonth ?? "");
  const [endDate, setEndDate] = useState(defaultEnd);
  const [error, setError] = useState<ResultError | null>(null);
  async function submit(event: FormEvent) {
    event.preventDefault();
    const outcome = await list({
      input: {
        machineId: machine.id,
        pricePerGpuHour: price.trim(),
        minBidPerGpuHour: minBid.trim() || null,
        storagePricePerGbMonth: storage.trim() || null,
        inetUpPricePerGb: machine.inetUpPricePerGb,
        inetDownPricePerGb: machine.inetDownPricePerGb,
        minChunk: machine.minChunk,
        endDate: endDate ? new Date(`${endDate}T23:59:59.000Z`).toISOString() : "",
      },
    });
    const failure = resultError(outcome.data?.listMachine, outcome.error);
    setError(failure);
    if (!failure) onDone();
  }
  const label = `machine ${machineNumber(machine.id)}`;
  return (
    <form className="listing" onSubmit={submit} noValidate aria-label={`Listing of ${label}`}>
      <div className="inline-form">
        <Field label="Price $/GPU·h" error={error?.fields.pricePerGpuHour}>
          {(props) => <input {...props} name="price" inputMode="decimal" value={price} onChange={(e) => setPrice(e.target.value)} />}
        </Field>
        <Field label="Min bid $/GPU·h" error={error?.fields.minBidPerGpuHour}>
          {(props) => <input {...props} name="minBid" inputMode="decimal" value={minBid} onChange={(e) => setMinBid(e.target.value)} />}
        </Field>
        <Field label="Storage $/GB·month" error={error?.fields.storagePricePerGbMonth}>
          {(props) => <input {...props} name="storage" inputMode="decimal" value={storage} onChange={(e) => setStorage(e.target.value)} />}
        </Field>
        <Field label="End date" error={error?.fields.endDate}>
          {(props) => <input {...props} name="endDate" type="date" value={endDate} onChange={(e) => setEndDate(e.target.value)} />}
        </Field>
        <button type="submit" className="btn primary" disabled={state.fetching}>
          {machine.listed ? "Update listing" : "List"}
        </button>
      </div>
      {error && Object.keys(error.fields).length === 0 && <Alert>{error.message}</Alert>}
    </form>
  );
}

function Machines() {
  const machines = useAllPages(MyMachines, {}, (data) => data.myMachines);
  const refetch = machines.reload;
  const [, unlist] = useMutation(UnlistMachine);
  const [editing, setEditing] = useState<string | null>(null);
  const rows = machines.items ?? [];
  const columns: Column<HostMachineFragment>[] = [
    { key: "machine", header: "Machine", cell: (m) => `#${machineNumber(m.id)} · ${m.numGpus}× ${m.gpuName}` },
    { key: "where", header: "Location", cell: (m) => m.geolocation },
    {
      key: "status",
      header: "Status",
      cell: (m) => (
        <>
          <span className={`status ${m.online ? "RUNNING" : "STOPPED"}`}>{m.online ? "online" : "offline"}</span> {m.listed ? "listed" : "unlisted"} ·{" "}
          {m.verification.toLowerCase()}
        </>
      ),
    },
    { key: "reliability", header: "Reliability", numeric: true, cell: (m) => percent(m.reliability, 2) },
    {
      key: "metrics",
      header: "GPU util / temp",
      cell: (m) =>
        m.metrics?.gpuUtilization?.length
          ? `${m.metrics.gpuUtilization.map((u) => percent(u, 0)).join(" ")} / ${(m.metrics.gpuTemperatureC ?? []).map((t) => `${number(t, 0)}°C`).join(" ")}`
          : "—",
    },
    { key: "heartbeat", header: "Last heartbeat", cell: (m) => dateTime(m.lastHeartbeatAt) },
    { key: "price", header: "$/GPU·h", numeric: true, cell: (m) => money(m.pricePerGpuHour, 3) },
    { key: "minBid", header: "Min bid", numeric: true, cell: (m) => money(m.minBidPerGpuHour, 3) },
    { key: "end", header: "Ends", cell: (m) => (m.endDate ? m.endDate.slice(0, 10) : "—") },
    {
      key: "actions",
      header: "",
      cell: (m) => (
        <span className="actions tight">
          <button type="button" className="btn small ghost" aria-expanded={editing === m.id} onClick={() => setEditing(editing === m.id ? null : m.id)}>
            {m.listed ? "Edit listing" : "List…"}
          </button>
          {m.listed && (
            <button type="button" className="btn small ghost" onClick={async () => (await unlist({ machineId: m.id }), refetch())}>
              Unlist
            </button>
          )}
        </span>
      ),
    },
  ];
  const current = rows.find((m) => m.id === editing);
  return (
    <section aria-labelledby="machines-title">
      <h2 id="machines-title">Machines</h2>
      {machines.error && <Alert>{machines.error.message}</Alert>}
      <DataTable caption="Your machines" columns={columns} rows={rows} rowKey={(m) => m.id} empty="No machines yet: register one with the host agent." />
      {current && (
        <div className="card">
          <h3>
            Listing of machine #{machineNumber(current.id)} ({current.numGpus}× {current.gpuName})
          </h3>
          <ListingForm
            key={current.id}
            machine={current}
            onDone={() => {
              setEditing(null);
              refetch();
            }}
          />
        </div>
      )}
    </section>
  );
}

const DAY_MS = 86_400_000;
const dollars = (v: number) => `$${v.toFixed(2)}`;

/** Earnings per day over the last 30 days, all machines together. */
function EarningsChart() {
  const range = useMemo(() => {
    const today = new Date(new Date().toISOString().slice(0, 10)).getTime();
    return { from: new Date(today - 29 * DAY_MS).toISOString(), to: new Date(today + DAY_MS).toISOString() };
  }, []);
  const earnings = useAllPages(HostEarnings, range, (data) => data.earnings);
  const chart = useMemo(() => {
    const perDay = new Map<number, number>();
    for (const row of earnings.items ?? []) {
      const at = new Date(row.day).getTime() / 1000;
      // Money is a decimal string; the chart's scale is the one place it becomes a float.
      perDay.set(at, (perDay.get(at) ?? 0) + Number(row.total));
    }
    const x: number[] = [];
    for (let t = new Date(range.from).getTime(); t < new Date(range.to).getTime(); t += DAY_MS) x.push(t / 1000);
    return { x, series: [{ label: "Earnings", color: "#047857", bars: true, values: x.map((t) => perDay.get(t) ?? 0) }] };
  }, [earnings.items, range]);
  const total = fromMicros((earnings.items ?? []).reduce((sum, row) => sum + toMicros(row.total), 0n));
  return (
    <section className="card" aria-labelledby="earnings-title">
      <h2 id="earnings-title">Earnings per day (30 days)</h2>
      {earnings.error ? (
        <Alert>{earnings.error.message}</Alert>
      ) : earnings.items === null ? (
        <p className="muted">Loading earnings…</p>
      ) : (
        <TimeSeriesChart title={`Earnings per day, ${money(total)} in all`} x={chart.x} series={chart.series} yLabel="$ per day" formatY={dollars} />
      )}
    </section>
  );
}

function Estimate() {
  const [gpuName, setGpuName] = useState("RTX 4090");
  const [numGpus, setNumGpus] = useState("4");
  const [specs, setSpecs] = useState<{ gpuName: string; numGpus: number } | null>(null);
  const [result] = useQuery({ query: EstimateEarnings, variables: { specs: specs ?? { gpuName: "", numGpus: 1 } }, pause: !specs });
  const estimate = result.data?.earningsEstimate;
  return (
    <section className="card" aria-labelledby="estimate-title">
      <h2 id="estimate-title">Earnings estimate for new hardware</h2>
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          setSpecs({ gpuName: gpuName.trim(), numGpus: Math.max(1, Math.trunc(Number(numGpus)) || 1) });
        }}
      >
        <Field label="GPU model">{(props) => <input {...props} name="estimateGpu" value={gpuName} onChange={(e) => setGpuName(e.target.value)} />}</Field>
        <Field label="GPUs">{(props) => <input {...props} name="estimateGpus" type="number" min={1} value={numGpus} onChange={(e) => setNumGpus(e.target.value)} />}</Field>
        <button type="submit" className="btn primary">
          Estimate
        </button>
      </form>
      {result.error && <Alert>{result.error.graphQLErrors[0]?.message ?? result.error.message}</Alert>}
      {estimate && (
        <p role="status">
          {estimate.source === "NONE" ? (
            `No market data for ${estimate.gpuName} yet.`
          ) : (
            <>
              {estimate.numGpus}× {estimate.gpuName}: about <strong>{money(estimate.perDay)}</strong> a day
              {estimate.perDayLow && estimate.perDayHigh ? ` (${money(estimate.perDayLow)}–${money(estimate.perDayHigh)})` : ""}, utilization {percent(estimate.utilization, 0)}, from{" "}
              {estimate.similarMachines} similar machines over {estimate.windowDays} days.
            </>
          )}
        </p>
      )}
    </section>
  );
}

export default function HostPage() {
  return (
    <div>
      <h1>Hosting</h1>
      <RequireSession what="manage your machines">
        <Machines />
        <EarningsChart />
      </RequireSession>
      <Estimate />
    </div>
  );
}
