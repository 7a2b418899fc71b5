import { useEffect, useMemo, useState } from "react";
import { useQuery } from "urql";
import { Link, useLocation, useSearch } from "wouter";
import { type Column, DataTable } from "../components/base/DataTable.tsx";
import { Alert, Field } from "../components/base/Field.tsx";
import { money, number, percent } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { SearchOffersQuery } from "../gql/graphql.ts";
import { formatSearch, parseSearch, type SearchState, searchVariables } from "./searchParams.ts";

const PAGE_SIZE = 25;
/** Bid-to-win moves with every bid placed: the interruptible view refreshes this often. */
const BID_REFRESH_MS = 5000;

const SearchOffers = graphql(`
  query SearchOffers($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $first: Int, $after: String, $storageGb: Float) {
    offers(query: $query, filter: $filter, orderBy: $orderBy, first: $first, after: $after, storageGb: $storageGb) {
      edges {
        node {
          id
          gpuName
          numGpus
          gpuRam
          totalFlops
          dlperf
          dlperfPerDphTotal
          reliability
          geolocation
          countryCode
          cpuCores
          cpuRam
          diskSpace
          inetDown
          inetUp
          directPortCount
          durationDays
          dphTotal
          pricePerGpuHour
          minBid
          winningBid
          verified
          datacenter
          rentable
          cudaMaxGood
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const GpuModels = graphql(`
  query GpuModels {
    marketStats {
      gpuName
    }
  }
`);

type OfferRow = SearchOffersQuery["offers"]["edges"][number]["node"];

/** Higher is better for these: their first click sorts descending. */
const DESCENDING_FIRST = new Set(["DLPERF", "DLPERF_PER_DPHTOTAL", "RELIABILITY", "TOTAL_FLOPS", "GPU_RAM", "NUM_GPUS", "CPU_CORES", "DISK_SPACE", "INET_DOWN", "DURATION", "SCORE", "DIRECT_PORT_COUNT"]);

function columns(state: SearchState): Column<OfferRow>[] {
  const bid = state.view === "bid";
  const storage = encodeURIComponent(state.storage);
  return [
    {
      key: "NUM_GPUS",
      header: "GPUs",
      sortable: true,
      cell: (o) => (
        <span className="gpu">
          <strong>
            {o.numGpus}× {o.gpuName}
          </strong>
          {o.verified ? <span className="badge ok">verified</span> : <span className="badge">unverified</span>}
          {o.datacenter && <span className="badge dc">datacenter</span>}
        </span>
      ),
    },
    { key: "GPU_RAM", header: "VRAM", numeric: true, sortable: true, cell: (o) => `${number(o.gpuRam, 0)} GB` },
    { key: "TOTAL_FLOPS", header: "TFLOPS", numeric: true, sortable: true, cell: (o) => number(o.totalFlops, 1) },
    { key: "DLPERF", header: "DLPerf", numeric: true, sortable: true, cell: (o) => number(o.dlperf, 1) },
    { key: "DLPERF_PER_DPHTOTAL", header: "DLPerf/$", numeric: true, sortable: true, cell: (o) => number(o.dlperfPerDphTotal, 0) },
    { key: "RELIABILITY", header: "Reliability", numeric: true, sortable: true, cell: (o) => percent(o.reliability, 2) },
    { key: "GEOLOCATION", header: "Location", sortable: true, cell: (o) => o.geolocation },
    { key: "CPU_CORES", header: "CPU / RAM", numeric: true, sortable: true, cell: (o) => `${o.cpuCores} c / ${number(o.cpuRam, 0)} GB` },
    { key: "DISK_SPACE", header: "Disk", numeric: true, sortable: true, cell: (o) => `${number(o.diskSpace, 0)} GB` },
    { key: "INET_DOWN", header: "Net ↓", numeric: true, sortable: true, cell: (o) => `${number(o.inetDown, 0)} Mbps` },
    { key: "DIRECT_PORT_COUNT", header: "Direct ports", numeric: true, sortable: true, cell: (o) => o.directPortCount },
    { key: "DURATION", header: "Max days", numeric: true, sortable: true, cell: (o) => number(o.durationDays, 0) },
    ...(bid
      ? [
          { key: "MIN_BID", header: "Min bid /GPU·h", numeric: true, sortable: true, cell: (o: OfferRow) => money(o.minBid, 3) },
          {
            key: "WINNING_BID",
            header: "Bid to win now /GPU·h",
            numeric: true,
            sortable: true,
            title: "The lowest bid per GPU-hour that would run now",
            cell: (o: OfferRow) => (o.winningBid ? <strong>{money(o.winningBid, 3)}</strong> : <span className="muted">on-demand full</span>),
          },
        ]
      : [
          {
            key: "DPH_TOTAL",
            header: `$/hr (with ${state.storage || 10} GB)`,
            numeric: true,
            sortable: true,
            cell: (o: OfferRow) => <strong>{money(o.dphTotal, 3)}</strong>,
          },
        ]),
    {
      key: "rent",
      header: "",
      cell: (o) =>
        bid && !o.winningBid ? null : (
          <Link
            className="btn small primary"
            href={`/rent/${encodeURIComponent(o.id)}?storage=${storage}${bid ? "&type=bid" : ""}`}
            aria-label={`${bid ? "Bid" : "Rent"}: ${o.numGpus}× ${o.gpuName} in ${o.geolocation}`}
          >
            {bid ? "Bid" : "Rent"}
          </Link>
        ),
    },
  ];
}

export function SearchPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const state = useMemo(() => parseSearch(search), [search]);
  const [draft, setDraft] = useState(state);
  useEffect(() => setDraft(state), [state]);

  // Typing settles for a moment before the URL (and the search) follows.
  useEffect(() => {
    const next = formatSearch(draft);
    if (next === formatSearch(state)) return;
    const timer = setTimeout(() => navigate(`/${next}`, { replace: true }), 300);
    return () => clearTimeout(timer);
  }, [draft, state, navigate]);

  const variables = useMemo(() => searchVariables(state, PAGE_SIZE), [state]);
  const [result, reexecute] = useQuery({ query: SearchOffers, variables });
  const [models] = useQuery({ query: GpuModels });

  useEffect(() => {
    if (state.view !== "bid") return;
    const timer = setInterval(() => reexecute({ requestPolicy: "network-only" }), BID_REFRESH_MS);
    return () => clearInterval(timer);
  }, [state.view, reexecute]);

  const change = (patch: Partial<SearchState>) => setDraft((current) => ({ ...current, after: "", ...patch }));
  const apply = (patch: Partial<SearchState>) => navigate(`/${formatSearch({ ...draft, after: "", ...patch })}`, { replace: true });

  const queryError = result.error?.graphQLErrors.find((e) => e.extensions?.code === "INVALID_QUERY")?.message;
  const otherError = !queryError && result.error ? result.error.graphQLErrors[0]?.message ?? result.error.message : null;
  const offers = result.data?.offers.edges.map((edge) => edge.node) ?? [];
  const [sortKey, sortDirection] = state.sort.split(":");

  const onSort = (key: string) => {
    const direction = sortKey === key ? (sortDirection === "ASC" ? "DESC" : "ASC") : DESCENDING_FIRST.has(key) ? "DESC" : "ASC";
    apply({ sort: `${key}:${direction}` });
  };

  return (
    <div className="search-page">
      <h1 className="visually-hidden">Search GPU offers</h1>
      <div className="view-switch" role="group" aria-label="Rental type">
        <button type="button" className={state.view === "ondemand" ? "btn primary" : "btn ghost"} aria-pressed={state.view === "ondemand"} onClick={() => apply({ view: "ondemand", sort: "" })}>
          On-demand
        </button>
        <button type="button" className={state.view === "bid" ? "btn primary" : "btn ghost"} aria-pressed={state.view === "bid"} onClick={() => apply({ view: "bid", sort: "" })}>
          Interruptible (bid)
        </button>
      </div>
      <div className="search-layout">
        <form
          className="filters card"
          aria-label="Search filters"
          onSubmit={(event) => {
            event.preventDefault();
            apply({});
          }}
        >
          <Field label="Query" error={queryError} hint="e.g. gpu_name=RTX_4090 num_gpus>=2 dph<1.5">
            {(props) => (
              <textarea
                {...props}
                name="q"
                rows={2}
                spellCheck={false}
                className="mono"
                value={draft.q}
                onChange={(e) => change({ q: e.target.value })}
                onKeyDown={(e) => {
                  if (e.key === "Enter" && !e.shiftKey) {
                    e.preventDefault();
                    apply({});
                  }
                }}
              />
            )}
          </Field>
          <Field label="GPU model">
            {(props) => (
              <select {...props} name="gpu" value={draft.gpu} onChange={(e) => apply({ gpu: e.target.value })}>
                <option value="">Any</option>
                {models.data?.marketStats.map((m) => (
                  <option key={m.gpuName}>{m.gpuName}</option>
                ))}
                {draft.gpu && !models.data?.marketStats.some((m) => m.gpuName === draft.gpu) && <option>{draft.gpu}</option>}
              </select>
            )}
          </Field>
          <div className="pair">
            <Field label="Min GPUs">
              {(props) => <input {...props} name="gpus" type="number" min={1} max={64} inputMode="numeric" value={draft.minGpus} onChange={(e) => change({ minGpus: e.target.value })} />}
            </Field>
            <Field label="Min VRAM (GB)">
              {(props) => <input {...props} name="vram" type="number" min={0} value={draft.minVram} onChange={(e) => change({ minVram: e.target.value })} />}
            </Field>
          </div>
          <div className="pair">
            <Field label="Max $/hr">
              {(props) => <input {...props} name="max_dph" type="number" min={0} step="0.01" value={draft.maxPrice} onChange={(e) => change({ maxPrice: e.target.value })} />}
            </Field>
            <Field label="Min reliability">
              {(props) => <input {...props} name="reliability" type="number" min={0} max={1} step="0.01" placeholder="0.95" value={draft.minReliability} onChange={(e) => change({ minReliability: e.target.value })} />}
            </Field>
          </div>
          <div className="pair">
            <Field label="Min DLPerf/$">
              {(props) => <input {...props} name="dlperf_usd" type="number" min={0} value={draft.minDlperfPerDollar} onChange={(e) => change({ minDlperfPerDollar: e.target.value })} />}
            </Field>
            <Field label="Storage (GB)" hint="priced into $/hr">
              {(props) => <input {...props} name="storage" type="number" min={1} value={draft.storage} onChange={(e) => change({ storage: e.target.value })} />}
            </Field>
          </div>
          <div className="pair">
            <Field label="Countries" hint="codes, e.g. US, DE">
              {(props) => <input {...props} name="country" autoComplete="off" value={draft.countries} onChange={(e) => change({ countries: e.target.value })} />}
            </Field>
            <Field label="Min direct ports">
              {(props) => <input {...props} name="direct_ports" type="number" min={0} value={draft.minDirectPorts} onChange={(e) => change({ minDirectPorts: e.target.value })} />}
            </Field>
          </div>
          <fieldset className="checks">
            <legend className="visually-hidden">Machine kind</legend>
            <label>
              <input type="checkbox" name="verified" checked={draft.verified === "any"} onChange={(e) => apply({ verified: e.target.checked ? "any" : "" })} /> Include unverified
            </label>
            <label>
              <input type="checkbox" name="datacenter" checked={draft.datacenter} onChange={(e) => apply({ datacenter: e.target.checked })} /> Datacenter only
            </label>
          </fieldset>
          <div className="actions">
            <button type="submit" className="btn primary">
              Search
            </button>
            <button type="button" className="btn ghost" onClick={() => navigate(state.view === "bid" ? "/?type=bid" : "/", { replace: true })}>
              Reset
            </button>
          </div>
        </form>
        <section className="results" aria-labelledby="results-title">
          <div className="results-head">
            <h2 id="results-title">
              {state.view === "bid" ? "Interruptible offers" : "On-demand offers"}
              {result.fetching && <span className="muted small"> updating…</span>}
            </h2>
            <p className="muted small" aria-live="polite">
              {result.data ? `${offers.length} offer${offers.length === 1 ? "" : "s"} on this page` : ""}
            </p>
          </div>
          {otherError && <Alert>{otherError}</Alert>}
          <DataTable
            caption="Offers"
            columns={columns(state)}
            rows={offers}
            rowKey={(o) => o.id}
            sort={sortKey ? { key: sortKey, direction: sortDirection === "ASC" ? "ASC" : "DESC" } : null}
            onSort={onSort}
            busy={result.fetching}
            empty={result.fetching ? "Searching…" : "No offers match this search."}
          />
          <nav className="pager" aria-label="Pages">
            <button type="button" className="btn ghost" disabled={!state.after} onClick={() => navigate(`/${formatSearch({ ...state, after: "" })}`)}>
              First page
            </button>
            <button
              type="button"
              className="btn ghost"
              disabled={!result.data?.offers.pageInfo.hasNextPage}
              onClick={() => navigate(`/${formatSearch({ ...state, after: result.data?.offers.pageInfo.endCursor ?? "" })}`)}
            >
              Next page
            </button>
          </nav>
        </section>
      </div>
    </div>
  );
}
