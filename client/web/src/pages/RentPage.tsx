import { type FormEvent, useMemo, useState } from "react";
import { useMutation, useQuery } from "urql";
import { Link, useLocation, useSearch } from "wouter";
import { Alert, Field } from "../components/base/Field.tsx";
import { RequireSession } from "../components/RequireSession.tsx";
import { money, number, percent } from "../format.ts";
import { graphql } from "../gql/index.ts";
import type { LaunchMode } from "../gql/graphql.ts";
import { resultError, type ResultError } from "../results.ts";

const RentOffer = graphql(`
  query RentOffer($query: String!, $storageGb: Float) {
    offers(query: $query, first: 1, storageGb: $storageGb, filter: { verified: null, rentable: null }) {
      edges {
        node {
          id
          gpuName
          numGpus
          gpuRam
          geolocation
          reliability
          dphTotal
          pricePerGpuHour
          storageCostPerGbMonth
          minBid
          winningBid
          diskSpace
          durationDays
          rentable
        }
      }
    }
  }
`);

const RentTemplates = graphql(`
  query RentTemplates {
    templates(first: 100) {
      edges {
        node {
          id
          name
          imageReference
          launchMode
          onstart
          ports
          recommendedDiskGb
          recommended
          env {
            key
            value
          }
        }
      }
    }
  }
`);

const CreateInstance = graphql(`
  mutation CreateInstance($input: CreateInstanceInput!) {
    createInstance(input: $input) {
      __typename
      ... on MutationCreateInstanceSuccess {
        data {
          instance {
            id
            status
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
      ... on BidTooLowError {
        minBidPerGpuHour
      }
    }
  }
`);

const LAUNCH_MODES: { value: LaunchMode; label: string }[] = [
  { value: "SSH", label: "SSH" },
  { value: "JUPYTER", label: "Jupyter" },
  { value: "ENTRYPOINT", label: "Image entrypoint" },
];

/** "KEY=value" lines. */
function parseEnv(text: string) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const at = line.indexOf("=");
      return at < 0 ? { key: line, value: "" } : { key: line.slice(0, at).trim(), value: line.slice(at + 1) };
    });
}

/** "machineId-numGpus", from an offer id such as "Offer:12-4" or "12-4". */
function offerQuery(offerId: string): string | null {
  const match = /(\d+)-(\d+)$/.exec(offerId);
  return match ? `machine_id=${match[1]} num_gpus=${match[2]} verified=any rentable=any` : null;
}

function RentForm({ offerId }: { offerId: string }) {
  const params = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const storage = Number(params.get("storage") ?? 10) || 10;
  const query = offerQuery(offerId);
  const [offerResult] = useQuery({ query: RentOffer, variables: { query: query ?? "", storageGb: storage }, pause: !query });
  const [creating, create] = useMutation(CreateInstance);
  const [templates] = useQuery({ query: RentTemplates });
  const [templateId, setTemplateId] = useState("");
  const offer = offerResult.data?.offers.edges[0]?.node;

  const [image, setImage] = useState("pytorch/pytorch:latest");
  const [launchMode, setLaunchMode] = useState<LaunchMode>("SSH");
  const [diskGb, setDiskGb] = useState(String(Math.round(storage)));
  const [env, setEnv] = useState("");
  const [ports, setPorts] = useState("");
  const [onstart, setOnstart] = useState("");
  const [label, setLabel] = useState("");
  const [kind, setKind] = useState<"ondemand" | "bid">(params.get("type") === "bid" ? "bid" : "ondemand");
  const [bid, setBid] = useState("");
  const [error, setError] = useState<ResultError | null>(null);
  // One key per form: a retried submit (a lost response) returns the first instance.
  const idempotencyKey = useMemo(() => crypto.randomUUID(), []);

  if (!query) return <Alert>That is not an offer id.</Alert>;
  if (offerResult.fetching && !offer) return <p className="muted">Loading the offer…</p>;
  if (!offer) return <Alert>This offer is no longer listed. <Link href="/">Search again</Link></Alert>;
  const suggestedBid = offer.winningBid ?? offer.minBid;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const outcome = await create({
      input: {
        offerId: offer!.id,
        templateId: templateId || null,
        image: image.trim(),
        launchMode,
        diskGb: Number.isInteger(Number(diskGb)) ? Number(diskGb) : -1,
        env: parseEnv(env),
        ports: ports
          .split(/[\s,]+/)
          .map((p) => p.trim())
          .filter(Boolean),
        onstart: onstart || null,
        label: label.trim() || null,
        bidPricePerGpuHour: kind === "bid" ? (bid.trim() || suggestedBid) : null,
        idempotencyKey,
      },
    });
    const result = outcome.data?.createInstance;
    const failure = resultError(result, outcome.error);
    if (failure) {
      if (result?.__typename === "BidTooLowError") failure.fields.bidPricePerGpuHour = `${failure.message} (at least ${money(result.minBidPerGpuHour, 3)}/GPU·h)`;
      setError(failure);
      return;
    }
    if (result?.__typename === "MutationCreateInstanceSuccess") navigate(`/instances/${encodeURIComponent(result.data.instance.id)}`);
  }

  const shown = new Set(["templateId", "image", "launchMode", "diskGb", "env", "ports", "onstart", "label", "bidPricePerGpuHour"]);
  const unplaced = error && (Object.keys(error.fields).length === 0 || Object.keys(error.fields).some((f) => !shown.has(f)));
  return (
    <div className="grid">
      <section className="card" aria-labelledby="offer-title">
        <h1 id="offer-title">
          Rent {offer.numGpus}× {offer.gpuName}
        </h1>
        <dl className="facts">
          <dt>Location</dt>
          <dd>{offer.geolocation}</dd>
          <dt>VRAM</dt>
          <dd>{number(offer.gpuRam, 0)} GB per GPU</dd>
          <dt>Reliability</dt>
          <dd>{percent(offer.reliability, 2)}</dd>
          <dt>On-demand</dt>
          <dd>
            {money(offer.dphTotal, 3)}/hr with {storage} GB ({money(offer.pricePerGpuHour, 3)} per GPU·h + storage {money(offer.storageCostPerGbMonth, 3)}/GB·month)
          </dd>
          <dt>Interruptible</dt>
          <dd>
            min bid {money(offer.minBid, 3)}/GPU·h; to win now {offer.winningBid ? money(offer.winningBid, 3) : "— (on-demand rentals hold the GPUs)"}
          </dd>
          <dt>Disk</dt>
          <dd>up to {number(offer.diskSpace, 0)} GB</dd>
          <dt>Listing ends in</dt>
          <dd>{number(offer.durationDays, 0)} days</dd>
        </dl>
      </section>
      <form className="card" onSubmit={submit} noValidate aria-label="Rental">
        <Field label="Template" error={error?.fields.templateId} hint="fills in the fields below; what you change overrides it">
          {(props) => (
            <select
              {...props}
              name="template"
              value={templateId}
              onChange={(e) => {
                setTemplateId(e.target.value);
                const chosen = templates.data?.templates.edges.find((edge) => edge.node.id === e.target.value)?.node;
                if (!chosen) return;
                setImage(chosen.imageReference);
                setLaunchMode(chosen.launchMode);
                setOnstart(chosen.onstart);
                setPorts(chosen.ports.join(", "));
                setEnv(chosen.env.map((v) => `${v.key}=${v.value}`).join("\n"));
                setDiskGb(String(Math.max(chosen.recommendedDiskGb, Math.round(storage))));
              }}
            >
              <option value="">None</option>
              {templates.data?.templates.edges.map(({ node }) => (
                <option key={node.id} value={node.id}>
                  {node.name}
                  {node.recommended ? " (recommended)" : ""}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Docker image" error={error?.fields.image}>
          {(props) => <input {...props} name="image" required value={image} onChange={(e) => setImage(e.target.value)} />}
        </Field>
        <fieldset className="radios" aria-describedby={error?.fields.launchMode ? "launch-error" : undefined}>
          <legend>Launch mode</legend>
          {LAUNCH_MODES.map((mode) => (
            <label key={mode.value}>
              <input type="radio" name="launchMode" value={mode.value} checked={launchMode === mode.value} onChange={() => setLaunchMode(mode.value)} /> {mode.label}
            </label>
          ))}
          {error?.fields.launchMode && (
            <small id="launch-error" className="field-error" role="alert">
              {error.fields.launchMode}
            </small>
          )}
        </fieldset>
        <Field label="Disk (GB)" error={error?.fields.diskGb} hint="allocated once; it cannot grow later">
          {(props) => <input {...props} name="diskGb" type="number" min={1} inputMode="numeric" value={diskGb} onChange={(e) => setDiskGb(e.target.value)} />}
        </Field>
        <Field label="Environment" error={error?.fields.env} hint="one KEY=value per line">
          {(props) => <textarea {...props} name="env" rows={2} className="mono" value={env} onChange={(e) => setEnv(e.target.value)} />}
        </Field>
        <Field label="Ports" error={error?.fields.ports} hint="e.g. 8080, 8081/udp">
          {(props) => <input {...props} name="ports" className="mono" value={ports} onChange={(e) => setPorts(e.target.value)} />}
        </Field>
        <Field label="On-start script" error={error?.fields.onstart}>
          {(props) => <textarea {...props} name="onstart" rows={3} className="mono" value={onstart} onChange={(e) => setOnstart(e.target.value)} />}
        </Field>
        <Field label="Label" error={error?.fields.label}>
          {(props) => <input {...props} name="label" value={label} onChange={(e) => setLabel(e.target.value)} />}
        </Field>
        <fieldset className="radios">
          <legend>Pricing</legend>
          <label>
            <input type="radio" name="kind" checked={kind === "ondemand"} onChange={() => setKind("ondemand")} /> On-demand at {money(offer.pricePerGpuHour, 3)}/GPU·h
          </label>
          <label>
            <input type="radio" name="kind" checked={kind === "bid"} onChange={() => setKind("bid")} /> Interruptible bid
          </label>
        </fieldset>
        {kind === "bid" && (
          <Field label="Bid per GPU-hour ($)" error={error?.fields.bidPricePerGpuHour} hint={`to win now: ${money(suggestedBid, 3)}`}>
            {(props) => <input {...props} name="bid" inputMode="decimal" placeholder={suggestedBid} value={bid} onChange={(e) => setBid(e.target.value)} />}
          </Field>
        )}
        {unplaced && <Alert>{error!.message}</Alert>}
        <div className="actions">
          <button type="submit" className="btn primary" disabled={creating.fetching}>
            {kind === "bid" ? "Place bid and rent" : "Rent now"}
          </button>
          <Link href="/">Back to search</Link>
        </div>
      </form>
    </div>
  );
}

export default function RentPage({ offerId }: { offerId: string }) {
  return (
    <RequireSession what="rent this offer">
      <RentForm offerId={decodeURIComponent(offerId)} />
    </RequireSession>
  );
}
