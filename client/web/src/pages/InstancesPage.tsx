import { useEffect, useMemo } from "react";
import { useQuery, useSubscription } from "urql";
import { Link } from "wouter";
import { useAllPages } from "../allPages.ts";
import { type Column, DataTable } from "../components/base/DataTable.tsx";
import { Alert } from "../components/base/Field.tsx";
import { RequireSession } from "../components/RequireSession.tsx";
import { gpuRate, StatusBadge, useNow } from "../components/instances.tsx";
import { fromMicros, money, timeLeft, toMicros } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { InstanceRowFragment } from "../gql/graphql.ts";

graphql(`
  fragment InstanceRow on Instance {
    id
    label
    image
    status
    statusMessage
    kind
    numGpus
    pricePerGpuHour
    bidPerGpuHour
    storagePricePerGbMonth
    diskGb
    endDate
    createdAt
    machineId
  }
`);

const MyInstances = graphql(`
  query MyInstances {
    instances(first: 100) {
      edges {
        node {
          ...InstanceRow
        }
      }
    }
  }
`);

const InstanceCosts = graphql(`
  query InstanceCosts($from: DateTime!, $to: DateTime!, $after: String) {
    charges(from: $from, to: $to, first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        instanceId
        amount
      }
    }
  }
`);

/** Charges accrue every second; the list's cost column refreshes this often. */
const COST_REFRESH_MS = 15_000;

const InstanceChanges = graphql(`
  subscription InstanceChanges {
    instanceStatus {
      ...InstanceRow
    }
  }
`);

function InstancesList() {
  const [listed] = useQuery({ query: MyInstances, requestPolicy: "cache-and-network" });
  // Every change of any instance arrives here; the latest version of each wins over the list's.
  const [live] = useSubscription({ query: InstanceChanges }, (changes: Record<string, InstanceRowFragment> = {}, event) => ({
    ...changes,
    [event.instanceStatus.id]: event.instanceStatus,
  }));
  const now = useNow();
  const oldest = listed.data?.instances.edges.at(-1)?.node.createdAt;
  const costRange = useMemo(
    () => (oldest ? { from: `${oldest.slice(0, 10)}T00:00:00.000Z`, to: new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000 + 86_400_000).toISOString() } : null),
    [oldest],
  );
  const costs = useAllPages(InstanceCosts, costRange, (data) => data.charges);
  const refreshCosts = costs.reload;
  useEffect(() => {
    const timer = setInterval(refreshCosts, COST_REFRESH_MS);
    return () => clearInterval(timer);
  }, [refreshCosts]);
  const costById = new Map<string, bigint>();
  for (const line of costs.items ?? []) costById.set(line.instanceId, (costById.get(line.instanceId) ?? 0n) + toMicros(line.amount));
  const byId = new Map<string, InstanceRowFragment>();
  for (const edge of listed.data?.instances.edges ?? []) byId.set(edge.node.id, edge.node);
  for (const instance of Object.values(live.data ?? {})) byId.set(instance.id, instance);
  const rows = [...byId.values()].filter((i) => i.status !== "DESTROYED").sort((a, b) => b.createdAt.localeCompare(a.createdAt));

  const columns: Column<InstanceRowFragment>[] = [
    {
      key: "instance",
      header: "Instance",
      cell: (i) => (
        <Link href={`/instances/${encodeURIComponent(i.id)}`}>
          {i.label || i.id} <span className="muted small">{i.image}</span>
        </Link>
      ),
    },
    { key: "status", header: "Status", cell: (i) => <StatusBadge status={i.status} /> },
    { key: "gpus", header: "GPUs", numeric: true, cell: (i) => i.numGpus },
    { key: "kind", header: "Type", cell: (i) => (i.kind === "INTERRUPTIBLE" ? "bid" : "on-demand") },
    { key: "price", header: "$/GPU·h", numeric: true, cell: (i) => money(gpuRate(i), 3) },
    { key: "cost", header: "Cost so far", numeric: true, cell: (i) => money(fromMicros(costById.get(i.id) ?? 0n), 2) },
    { key: "disk", header: "Disk", numeric: true, cell: (i) => `${i.diskGb} GB` },
    { key: "left", header: "Time left", numeric: true, cell: (i) => timeLeft(i.endDate, now) },
    { key: "message", header: "Note", cell: (i) => <span className="muted">{i.statusMessage ?? ""}</span> },
  ];
  return (
    <section>
      <h1>Instances</h1>
      {listed.error && <Alert>{listed.error.message}</Alert>}
      <DataTable
        caption="Your instances"
        columns={columns}
        rows={rows}
        rowKey={(i) => i.id}
        busy={listed.fetching}
        empty={
          <>
            No instances. <Link href="/">Rent one from the search</Link>.
          </>
        }
      />
    </section>
  );
}

export default function InstancesPage() {
  return (
    <RequireSession what="see your instances">
      <InstancesList />
    </RequireSession>
  );
}
