import { useMemo } from "react";
import { useQuery } from "urql";
import { useLocation, useSearch } from "wouter";
import { type Column, DataTable } from "../components/base/DataTable.tsx";
import { Alert, Field } from "../components/base/Field.tsx";
import { TimeSeriesChart } from "../components/base/TimeSeriesChart.tsx";
import { money, number, percent } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { MarketStatsQuery, PriceBucket } from "../gql/graphql.ts";

const MarketStats = graphql(`
  query MarketStats {
    marketStats {
      gpuName
      machines
      machinesFullyRented
      gpusTotal
      gpusRented
      gpusAvailable
      utilization
      minPrice
      p50Price
      p90Price
      minBid
      p50Bid
      dlperfPerDollar
    }
  }
`);

const PriceHistory = graphql(`
  query PriceHistory($gpuName: String!, $from: DateTime!, $to: DateTime!, $bucket: PriceBucket!) {
    priceHistory(gpuName: $gpuName, from: $from, to: $to, bucket: $bucket) {
      time
      minPrice
      p50Price
      p90Price
      minBid
      p50Bid
      utilization
      samples
    }
  }
`);

type StatsRow = MarketStatsQuery["marketStats"][number];

const STATS_COLUMNS: Column<StatsRow>[] = [
  { key: "gpu", header: "GPU", cell: (s) => s.gpuName },
  { key: "machines", header: "Machines", numeric: true, cell: (s) => number(s.machines, 0) },
  { key: "gpus", header: "GPUs rented / total", numeric: true, cell: (s) => `${number(s.gpusRented, 0)} / ${number(s.gpusTotal, 0)}` },
  { key: "available", header: "GPUs free", numeric: true, cell: (s) => number(s.gpusAvailable, 0) },
  { key: "utilization", header: "Utilization", numeric: true, cell: (s) => percent(s.utilization, 0) },
  { key: "minPrice", header: "Min $/GPU·h", numeric: true, cell: (s) => money(s.minPrice, 3) },
  { key: "p50Price", header: "Median", numeric: true, cell: (s) => money(s.p50Price, 3) },
  { key: "p90Price", header: "p90", numeric: true, cell: (s) => money(s.p90Price, 3) },
  { key: "minBid", header: "Min bid", numeric: true, cell: (s) => money(s.minBid, 3) },
  { key: "p50Bid", header: "Median bid", numeric: true, cell: (s) => money(s.p50Bid, 3) },
  { key: "dlperf", header: "DLPerf/$", numeric: true, cell: (s) => number(s.dlperfPerDollar, 0) },
];

/** Ranges offered, with the bucket that suits each (the API bounds points per range). */
const RANGES: Record<string, { label: string; hours: number; bucket: PriceBucket }> = {
  "6h": { label: "6 hours", hours: 6, bucket: "MINUTE" },
  "1d": { label: "1 day", hours: 24, bucket: "HOUR" },
  "7d": { label: "7 days", hours: 24 * 7, bucket: "HOUR" },
  "30d": { label: "30 days", hours: 24 * 30, bucket: "DAY" },
};

const SERIES = [
  { key: "p50Price", label: "Median on-demand", color: "#1d4ed8" },
  { key: "minPrice", label: "Lowest on-demand", color: "#0891b2" },
  { key: "p50Bid", label: "Median bid", color: "#b45309" },
  { key: "minBid", label: "Lowest bid", color: "#be185d" },
] as const;

const dollars = (v: number) => `$${v.toFixed(2)}`;

export default function MarketPage() {
  const params = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const [stats] = useQuery({ query: MarketStats, requestPolicy: "cache-and-network" });
  const models = stats.data?.marketStats.map((s) => s.gpuName) ?? [];
  const gpuName = params.get("gpu") ?? models[0] ?? "";
  const rangeKey = params.get("range") && RANGES[params.get("range")!] ? params.get("range")! : "1d";
  const bucket = (params.get("bucket") as PriceBucket | null) ?? RANGES[rangeKey].bucket;
  const set = (patch: Record<string, string>) => {
    const next = new URLSearchParams({ gpu: gpuName, range: rangeKey, bucket, ...patch });
    navigate(`/market?${next}`, { replace: true });
  };
  const variables = useMemo(() => {
    // Whole minutes, so the variables (and the query) stay the same across renders.
    const to = Math.ceil(Date.now() / 60_000) * 60_000;
    return { gpuName, bucket, from: new Date(to - RANGES[rangeKey].hours * 3_600_000).toISOString(), to: new Date(to).toISOString() };
  }, [gpuName, bucket, rangeKey]);
  const [history] = useQuery({ query: PriceHistory, variables, pause: !gpuName });
  const chart = useMemo(() => {
    const points = history.data?.priceHistory ?? [];
    return {
      x: points.map((p) => new Date(p.time).getTime() / 1000),
      series: SERIES.map((s) => ({ label: s.label, color: s.color, values: points.map((p) => (p[s.key] === null ? null : Number(p[s.key]))) })),
    };
  }, [history.data]);

  return (
    <div>
      <h1>Market</h1>
      <section className="card" aria-labelledby="history-title">
        <h2 id="history-title">Price history</h2>
        <div className="inline-form">
          <Field label="GPU model">
            {(props) => (
              <select {...props} value={gpuName} onChange={(e) => set({ gpu: e.target.value })}>
                {models.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Range">
            {(props) => (
              <select {...props} value={rangeKey} onChange={(e) => set({ range: e.target.value, bucket: RANGES[e.target.value].bucket })}>
                {Object.entries(RANGES).map(([key, range]) => (
                  <option key={key} value={key}>
                    {range.label}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Bucket">
            {(props) => (
              <select {...props} value={bucket} onChange={(e) => set({ bucket: e.target.value })}>
                <option value="MINUTE">minute</option>
                <option value="HOUR">hour</option>
                <option value="DAY">day</option>
              </select>
            )}
          </Field>
        </div>
        {history.error && <Alert>{history.error.graphQLErrors[0]?.message ?? history.error.message}</Alert>}
        {gpuName && !history.error && (
          <TimeSeriesChart title={`${gpuName}: $ per GPU-hour`} x={chart.x} series={chart.series} yLabel="$ / GPU·h" formatY={dollars} />
        )}
      </section>
      <section aria-labelledby="stats-title">
        <h2 id="stats-title">Market now</h2>
        {stats.error && <Alert>{stats.error.message}</Alert>}
        <DataTable caption="Market statistics per GPU model" columns={STATS_COLUMNS} rows={stats.data?.marketStats ?? []} rowKey={(s) => s.gpuName} />
      </section>
    </div>
  );
}
