// The search lives in the URL (shareable, reloadable): these are its parameters.
import type { OfferFilter, OfferOrderField } from "../gql/graphql.ts";

export interface SearchState {
  /** The query-language box. */
  q: string;
  gpu: string;
  minGpus: string;
  minVram: string;
  maxPrice: string;
  minReliability: string;
  minDlperfPerDollar: string;
  minDirectPorts: string;
  countries: string;
  /** "any" shows unverified machines too. */
  verified: "" | "any";
  datacenter: boolean;
  storage: string;
  view: "ondemand" | "bid";
  sort: string;
  after: string;
}

const DEFAULTS: SearchState = {
  q: "",
  gpu: "",
  minGpus: "",
  minVram: "",
  maxPrice: "",
  minReliability: "",
  minDlperfPerDollar: "",
  minDirectPorts: "",
  countries: "",
  verified: "",
  datacenter: false,
  storage: "10",
  view: "ondemand",
  sort: "",
  after: "",
};

const KEYS: Record<keyof SearchState, string> = {
  q: "q",
  gpu: "gpu",
  minGpus: "gpus",
  minVram: "vram",
  maxPrice: "max_dph",
  minReliability: "reliability",
  minDlperfPerDollar: "dlperf_usd",
  minDirectPorts: "direct_ports",
  countries: "country",
  verified: "verified",
  datacenter: "datacenter",
  storage: "storage",
  view: "type",
  sort: "sort",
  after: "after",
};

export function parseSearch(search: string): SearchState {
  const params = new URLSearchParams(search);
  const state = { ...DEFAULTS };
  for (const [field, key] of Object.entries(KEYS) as [keyof SearchState, string][]) {
    const value = params.get(key);
    if (value === null) continue;
    if (field === "datacenter") state.datacenter = value === "1" || value === "true";
    else if (field === "view") state.view = value === "bid" ? "bid" : "ondemand";
    else if (field === "verified") state.verified = value === "any" ? "any" : "";
    else (state as unknown as Record<string, string>)[field] = value;
  }
  return state;
}

export function formatSearch(state: SearchState): string {
  const params = new URLSearchParams();
  for (const [field, key] of Object.entries(KEYS) as [keyof SearchState, string][]) {
    const value = state[field];
    if (value === DEFAULTS[field]) continue;
    params.set(key, field === "datacenter" ? "1" : String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

const positive = (value: string) => (value.trim() !== "" && Number.isFinite(Number(value)) ? Number(value) : undefined);

/** The offers query's variables for this search. */
export function searchVariables(state: SearchState, pageSize: number) {
  const filter: OfferFilter = {};
  if (state.gpu) filter.gpuNames = [state.gpu];
  if (positive(state.minGpus) !== undefined) filter.minNumGpus = Math.trunc(positive(state.minGpus)!);
  if (positive(state.minVram) !== undefined) filter.minGpuRamGb = positive(state.minVram);
  if (state.maxPrice.trim()) filter.maxDphTotal = state.maxPrice.trim();
  if (positive(state.minReliability) !== undefined) filter.minReliability = positive(state.minReliability);
  const countries = state.countries
    .split(/[\s,]+/)
    .map((c) => c.trim().toUpperCase())
    .filter(Boolean);
  if (countries.length) filter.countries = countries;
  if (state.verified === "any") filter.verified = null;
  if (state.datacenter) filter.datacenter = true;
  // A bid can win GPUs on a machine that is partly rented: interruptible shows rented machines too.
  if (state.view === "bid") filter.rentable = null;
  // Filters the OfferFilter input has no field for go into the query language.
  const dlperf = positive(state.minDlperfPerDollar);
  const directPorts = positive(state.minDirectPorts);
  const query = [state.q.trim(), dlperf !== undefined ? `dlperf_usd>=${dlperf}` : "", directPorts !== undefined ? `direct_port_count>=${Math.trunc(directPorts)}` : ""]
    .filter(Boolean)
    .join(" ");
  const [field, direction] = state.sort.split(":");
  return {
    query: query || null,
    filter,
    first: pageSize,
    after: state.after || null,
    storageGb: positive(state.storage) ?? 10,
    orderBy: field ? [{ field: field as OfferOrderField, direction: direction === "ASC" ? ("ASC" as const) : ("DESC" as const) }] : null,
  };
}
