import { SearchQueryError } from "../errors.ts";
import { parseMoney } from "../money.ts";

/**
 * The offer filter language of the reference CLI: space-separated `field op value` clauses such as
 * `gpu_name=RTX_4090 num_gpus>=2 dph<1.5 geolocation in [US,CA]`. This module only reads text;
 * search.ts turns the result into SQL.
 *
 * - Operators: `= == != < <= > >= in notin` and the words `eq neq gt gte lt lte`; spaces around
 *   symbolic operators are optional, word operators need them.
 * - Values: numbers, `true`/`false`, `null`, lists `[a,b]` (for `in`/`notin`), strings with `_` for
 *   a space (`RTX_4090`) or quoted (`"RTX 4090"`, taken literally).
 * - `field=any` drops every clause on the field, the default ones included.
 * - Several clauses on one field all apply (`num_gpus>=2 num_gpus<=4`); a later clause with the same
 *   operator replaces the earlier one.
 * - Units: RAM fields are typed in GB (1 GB = 1000 MB, as the reference CLI) and stored in MB;
 *   money fields in dollars, compared exactly in micro-dollars; `duration` in days.
 */

/** How a field's values are read and compared. */
export type FieldKind =
  | "int" // integer column; fractional bounds are rounded the way that keeps the comparison exact
  | "float"
  | "money" // dollars typed, micro-dollar bigint compared
  | "bool"
  | "string"
  | "geo"; // a two-letter country code, or text found in the location

export interface FieldSpec {
  kind: FieldKind;
  /** Multiplies typed numbers into stored units (GB → MB). */
  scale?: number;
  /** The GraphQL type whose global ids ("Offer:12-1") are accepted as well as the bare id. */
  globalIdType?: string;
  description: string;
}

export const OFFER_FIELDS = {
  id: { kind: "string", globalIdType: "Offer", description: "the offer's id (12-1, or its global id Offer:12-1)" },
  gpu_name: { kind: "string", description: "GPU model, exactly as listed (RTX_4090)" },
  num_gpus: { kind: "int", description: "GPUs in the offer" },
  gpu_ram: { kind: "int", scale: 1000, description: "VRAM per GPU, GB" },
  gpu_total_ram: { kind: "int", scale: 1000, description: "VRAM of all the offer's GPUs, GB" },
  compute_cap: { kind: "int", description: "CUDA compute capability × 100 (860 for 8.6)" },
  total_flops: { kind: "float", description: "FP32 TFLOPS of all the offer's GPUs" },
  gpu_mem_bw: { kind: "float", description: "GPU memory bandwidth, GB/s" },
  pcie_bw: { kind: "float", description: "PCIe bandwidth per GPU, GB/s" },
  pci_gen: { kind: "int", description: "PCIe generation of the GPUs' slots" },
  gpu_arch: { kind: "string", description: "GPU vendor architecture: nvidia (every GPU here has a CUDA compute capability)" },
  gpu_frac: { kind: "float", description: "the offer's share of the machine's GPUs, 0 to 1" },
  cpu_arch: { kind: "string", description: "CPU architecture, arm64 or amd64: as the host's agent detected it, else from the CPU's model name (Arm, Grace, Altra, Graviton are arm64)" },
  has_avx: { kind: "bool", description: "the CPU has AVX, as the host's agent detected it (false when not detected)" },
  gpu_max_power: { kind: "float", description: "each GPU's power limit, W, as nvidia-smi reports it (0 when not reported)" },
  gpu_max_temp: { kind: "float", description: "the GPUs' temperature limit, °C, as nvidia-smi reports it (no bound matches a machine that did not report it)" },
  cpu_ghz: { kind: "float", description: "the CPU's top clock, GHz (no bound matches a machine whose agent did not detect it)" },
  mobo_name: { kind: "string", description: "motherboard model, exactly as DMI names it (ROMED8-2T)" },
  ubuntu_version: { kind: "float", description: "the host's Ubuntu release as a number (22.04); no bound matches a host on another system" },
  cpu_cores: { kind: "int", description: "CPU cores of the machine" },
  cpu_cores_effective: { kind: "float", description: "CPU cores a rental of the offer gets (its share of the machine's)" },
  cpu_ram: { kind: "int", scale: 1000, description: "system RAM a rental of the offer gets (its share), GB" },
  disk_space: { kind: "float", description: "disk still free on the machine, GB" },
  disk_bw: { kind: "float", description: "disk bandwidth, MB/s" },
  inet_up: { kind: "float", description: "upload bandwidth, Mbps" },
  inet_down: { kind: "float", description: "download bandwidth, Mbps" },
  cuda_max_good: { kind: "float", description: "highest CUDA version the driver supports" },
  driver_version: { kind: "string", description: "NVIDIA driver version, exactly (535.104.05)" },
  reliability: { kind: "float", description: "reliability estimate, 0 to 1" },
  dlperf: { kind: "float", description: "DLPerf of the offer's GPUs" },
  dlperf_per_dphtotal: { kind: "float", description: "DLPerf per $/hr" },
  flops_per_dphtotal: { kind: "float", description: "TFLOPS per $/hr" },
  score: { kind: "float", description: "the default ranking: DLPerf per $/hr × reliability³" },
  dph_total: { kind: "money", description: "$/hr for the GPUs and the requested storage" },
  min_bid: { kind: "money", description: "lowest interruptible bid per GPU, $/hr" },
  storage_cost: { kind: "money", description: "storage, $/GB-month" },
  inet_up_cost: { kind: "money", description: "upload, $/GB" },
  inet_down_cost: { kind: "money", description: "download, $/GB" },
  winning_bid: {
    kind: "money",
    description: "the lowest bid per GPU that would run the offer now, $/hr (null when on-demand rentals leave too few GPUs: no bound matches it)",
  },
  verified: { kind: "bool", description: "the machine is verified" },
  verification: { kind: "string", description: "the machine's verification: verified, unverified or deverified" },
  external: { kind: "bool", description: "listed on another marketplace: never, every offer here is this marketplace's own" },
  vms_enabled: { kind: "bool", description: "rentable as a virtual machine: never, rentals here are containers" },
  datacenter: { kind: "bool", description: "secure cloud: a vetted datacenter" },
  geolocation: { kind: "geo", description: "country code (US) or location text (Germany)" },
  duration: { kind: "float", description: "days until the listing's end date" },
  rentable: { kind: "bool", description: "can be rented on demand now" },
  rented: { kind: "bool", description: "some of its GPUs are rented" },
  direct_port_count: { kind: "int", description: "free external ports for direct connections" },
  static_ip: { kind: "bool", description: "the host declared a fixed public address" },
  machine_id: { kind: "int", description: "machine id" },
  host_id: { kind: "int", description: "host id" },
} as const satisfies Record<string, FieldSpec>;

export type OfferField = keyof typeof OFFER_FIELDS;

export const FIELD_ALIASES: Record<string, OfferField> = {
  dph: "dph_total",
  cuda_vers: "cuda_max_good",
  dlperf_usd: "dlperf_per_dphtotal",
  flops_usd: "flops_per_dphtotal",
};

/**
 * Fields of the reference's query language that this marketplace does not record, with what they
 * mean there: a search on one is refused by name rather than as an unknown field.
 */
export const UNRECORDED_FIELDS: Record<string, string> = {
  bw_nvlink: "the NVLink bandwidth",
  gpu_display_active: "whether a display is attached to the GPU",
  reliability2: "the reference's second reliability estimate",
};

export type Op = "eq" | "neq" | "lt" | "lte" | "gt" | "gte" | "in" | "notin";

const OPERATORS: Record<string, Op> = {
  "=": "eq",
  "==": "eq",
  "!=": "neq",
  "<": "lt",
  "<=": "lte",
  ">": "gt",
  ">=": "gte",
  eq: "eq",
  neq: "neq",
  lt: "lt",
  lte: "lte",
  gt: "gt",
  gte: "gte",
  in: "in",
  notin: "notin",
};

/** A typed value: numbers in stored units, money in micro-dollars. */
export type Scalar = number | bigint | boolean | string | null;

export interface Condition {
  field: OfferField;
  op: Op;
  value: Scalar | Scalar[];
}

/** One clause as typed; `any` clears the field. */
export type Clause = Condition | { field: OfferField; op: "any" };

/** What a search filters on unless told otherwise (`verified=any` lifts it). */
export const DEFAULT_CLAUSES: Clause[] = [
  { field: "verified", op: "eq", value: true },
  { field: "rentable", op: "eq", value: true },
];

const ORDERED_KINDS: ReadonlySet<FieldKind> = new Set(["int", "float", "money"]);

export function isOfferField(name: string): name is OfferField {
  return Object.hasOwn(OFFER_FIELDS, name);
}

/** The field a typed name stands for, through the aliases; null when unknown. */
export function resolveField(name: string): OfferField | null {
  const lower = name.toLowerCase();
  const field = FIELD_ALIASES[lower] ?? lower;
  return isOfferField(field) ? field : null;
}

/** Reads a query into clauses, in order. Throws SearchQueryError naming the offending token. */
export function parseOfferQuery(text: string): Clause[] {
  const clauses: Clause[] = [];
  const scanner = new Scanner(text);
  while (scanner.skipSpaces()) {
    const name = scanner.match(/[A-Za-z_][A-Za-z0-9_]*/y);
    if (!name) {
      const token = scanner.word();
      throw new SearchQueryError(`Expected a field name at "${token}"`, token);
    }
    const field = resolveField(name);
    if (!field) {
      const unrecorded = UNRECORDED_FIELDS[name.toLowerCase()];
      if (unrecorded === undefined) throw new SearchQueryError(`Unknown field "${name}"`, name, name);
      throw new SearchQueryError(
        `${name} (${unrecorded}) is not recorded by this marketplace: offers cannot be searched by it`,
        name,
        name,
        "UNRECORDED_FIELD",
      );
    }

    scanner.skipSpaces();
    const op = readOperator(scanner, name);
    scanner.skipSpaces();
    const raw = readValue(scanner, name);
    clauses.push(typedClause(field, op, raw));
  }
  return clauses;
}

/**
 * The conditions that apply after defaults and later clauses: `any` drops the field, a repeated
 * operator on a field replaces the earlier value.
 */
export function resolveClauses(clauses: Clause[]): Condition[] {
  const byField = new Map<OfferField, Map<Op, Condition>>();
  for (const clause of [...DEFAULT_CLAUSES, ...clauses]) {
    if (clause.op === "any") {
      byField.delete(clause.field);
      continue;
    }
    const ops = byField.get(clause.field) ?? new Map<Op, Condition>();
    ops.set(clause.op, clause);
    byField.set(clause.field, ops);
  }
  return [...byField.values()].flatMap((ops) => [...ops.values()]);
}

class Scanner {
  position = 0;
  constructor(readonly text: string) {}

  /** Skips whitespace; false at the end of the text. */
  skipSpaces(): boolean {
    while (this.position < this.text.length && /\s/.test(this.text[this.position])) this.position++;
    return this.position < this.text.length;
  }

  /** Consumes `pattern` (a sticky regexp) at the position. */
  match(pattern: RegExp): string | null {
    pattern.lastIndex = this.position;
    const found = pattern.exec(this.text);
    if (!found) return null;
    this.position += found[0].length;
    return found[0];
  }

  peek(): string | undefined {
    return this.text[this.position];
  }

  /** The rest of the current word, for error messages; "end of query" at the end. */
  word(): string {
    return /^\S+/.exec(this.text.slice(this.position))?.[0] ?? "end of query";
  }
}

interface RawValue {
  /** As typed, for error messages. */
  token: string;
  /** Items of a bracketed list, or the single value. */
  items: { text: string; quoted: boolean }[];
  list: boolean;
}

function readOperator(scanner: Scanner, field: string): Op {
  const symbol = scanner.match(/[=<>!~]+/y);
  if (symbol) {
    const op = OPERATORS[symbol];
    if (!op) throw new SearchQueryError(`Unknown operator "${symbol}" after ${field}`, symbol, field);
    return op;
  }
  const word = scanner.match(/[A-Za-z]+(?=[\s["']|$)/y);
  const op = word ? OPERATORS[word.toLowerCase()] : undefined;
  if (!op) {
    const token = word ?? scanner.word();
    throw new SearchQueryError(`Expected an operator after ${field}, found "${token}"`, token, field);
  }
  return op;
}

function readValue(scanner: Scanner, field: string): RawValue {
  const start = scanner.position;
  const first = scanner.peek();
  if (first === undefined) throw new SearchQueryError(`Missing value after ${field}`, field, field);
  if (first === "[") {
    const list = scanner.match(/\[[^\]]*\]/y);
    if (!list) {
      const token = scanner.text.slice(start);
      throw new SearchQueryError(`Unterminated list "${token}" for ${field}`, token, field);
    }
    const inner = list.slice(1, -1).trim();
    const items = inner === "" ? [] : inner.split(",").map((item) => unquote(item.trim(), field));
    return { token: list, items, list: true };
  }
  if (first === '"' || first === "'") {
    const quoted = scanner.match(first === '"' ? /"[^"]*"/y : /'[^']*'/y);
    if (!quoted) {
      const token = scanner.text.slice(start);
      throw new SearchQueryError(`Unterminated string ${token} for ${field}`, token, field);
    }
    return { token: quoted, items: [{ text: quoted.slice(1, -1), quoted: true }], list: false };
  }
  const bare = scanner.match(/\S+/y)!;
  // The reference CLI also takes `in a,b` without brackets.
  return { token: bare, items: bare.split(",").map((text) => ({ text, quoted: false })), list: bare.includes(",") };
}

function unquote(item: string, field: string): { text: string; quoted: boolean } {
  const quoted = /^(["'])(.*)\1$/.exec(item);
  if (quoted) return { text: quoted[2], quoted: true };
  if (/["']/.test(item)) throw new SearchQueryError(`Unterminated string ${item} for ${field}`, item, field);
  return { text: item, quoted: false };
}

function typedClause(field: OfferField, op: Op, raw: RawValue): Clause {
  const spec: FieldSpec = OFFER_FIELDS[field];
  const single = !raw.list && raw.items.length === 1 && !raw.items[0].quoted ? raw.items[0].text : null;
  if (single !== null && ["any", "*", "?"].includes(single.toLowerCase())) {
    if (op !== "eq") throw new SearchQueryError(`"${single}" only works with =, as in ${field}=any`, single, field);
    return { field, op: "any" };
  }
  if (single === "null") {
    if (op !== "eq" && op !== "neq") throw new SearchQueryError(`null only works with = and != (${field})`, single, field);
    return { field, op, value: null };
  }
  if (op === "in" || op === "notin") {
    if (raw.items.length === 0) throw new SearchQueryError(`Empty list ${raw.token} for ${field}`, raw.token, field);
    return { field, op, value: raw.items.map((item) => typedScalar(field, spec, item)) };
  }
  if (raw.list) throw new SearchQueryError(`A list needs in or notin, as in ${field} in ${raw.token}`, raw.token, field);
  if (!ORDERED_KINDS.has(spec.kind) && op !== "eq" && op !== "neq") {
    const symbol = Object.keys(OPERATORS).find((key) => OPERATORS[key] === op)!;
    throw new SearchQueryError(`${field} takes = != in notin, not ${symbol}`, symbol, field);
  }
  return { field, op, value: typedScalar(field, spec, raw.items[0]) };
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function typedScalar(field: OfferField, spec: FieldSpec, item: { text: string; quoted: boolean }): Scalar {
  const { text } = item;
  switch (spec.kind) {
    case "int":
    case "float": {
      if (!NUMBER.test(text)) throw new SearchQueryError(`${field} needs a number, found "${text}"`, text, field);
      return Number(text) * (spec.scale ?? 1);
    }
    case "money": {
      const micros = parseMoney(text.startsWith(".") ? `0${text}` : text);
      if (micros === null) {
        throw new SearchQueryError(`${field} needs dollars with at most 6 decimals, found "${text}"`, text, field);
      }
      return micros;
    }
    case "bool": {
      const lower = text.toLowerCase();
      if (lower !== "true" && lower !== "false") {
        throw new SearchQueryError(`${field} needs true or false, found "${text}"`, text, field);
      }
      return lower === "true";
    }
    case "string":
    case "geo": {
      if (spec.globalIdType && text.startsWith(`${spec.globalIdType}:`)) return text.slice(spec.globalIdType.length + 1);
      const value = item.quoted || spec.globalIdType ? text : text.replaceAll("_", " ");
      if (value.trim() === "") throw new SearchQueryError(`${field} needs a non-empty value`, text, field);
      return value;
    }
  }
}
