import { z } from "zod";
import { type Db, driverRows } from "../../infra/db.ts";
import { Prisma } from "../../prisma/generated/client/client.ts";
import type { LaunchMode } from "../../prisma/generated/client/client.ts";
import { ValidationError } from "../errors.ts";
import { launchMode, portList } from "../instances/launchSpec.ts";
import { directPortsNeeded } from "../instances/ports.ts";
import { MAX_GEOLOCATION_LENGTH } from "../machines.ts";
import { MAX_INT4, parseInput } from "../validation.ts";
import {
  type Clause,
  type Condition,
  OFFER_FIELDS,
  type OfferField,
  type Scalar,
  parseOfferQuery,
  resolveClauses,
} from "./query-language.ts";
import { DEFAULT_STORAGE_GB, HOURS_PER_MONTH, storageMilliGb } from "./ranking.ts";

/**
 * Offer search: one parameterized SQL statement over the materialized `offer` table for a page of
 * offers with their machine's extra specs. Filters come from the query language and the structured
 * `OfferFilter`; order from `orderBy` (default `score` descending); Relay keyset pagination with the
 * offer id as the last key, so pages neither repeat nor skip offers while the table holds still.
 */

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

export type SortDirection = "ASC" | "DESC";

/** Fields an offer list can be ordered by: every numeric field, and the location (by its text). */
export const SORTABLE_FIELDS = (Object.keys(OFFER_FIELDS) as OfferField[]).filter((field) =>
  ["int", "float", "money", "geo"].includes(OFFER_FIELDS[field].kind),
);

export interface OfferOrder {
  field: OfferField;
  direction: SortDirection;
}

export const DEFAULT_ORDER: OfferOrder[] = [{ field: "score", direction: "DESC" }];

/** The structured filter for frontends; every part narrows the search like a query clause would. */
export interface OfferFilter {
  gpuNames?: string[] | null;
  minNumGpus?: number | null;
  maxNumGpus?: number | null;
  minGpuRamGb?: number | null;
  maxDphTotal?: bigint | null;
  minReliability?: number | null;
  minDlperf?: number | null;
  minCudaVersion?: number | null;
  minInetDownMbps?: number | null;
  minDurationDays?: number | null;
  countries?: string[] | null;
  datacenter?: boolean | null;
  /** Absent keeps the default (true); null accepts both. */
  verified?: boolean | null;
  /** Absent keeps the default (true); null accepts both. */
  rentable?: boolean | null;
  /** The rental's launch mode and ports: machines with too few free direct ports for them are left out. */
  launchMode?: LaunchMode | null;
  ports?: string[] | null;
}

export interface OfferSearchArgs {
  query?: string | null;
  filter?: OfferFilter | null;
  orderBy?: OfferOrder[] | null;
  storageGb?: number | null;
  first?: number | null;
  after?: string | null;
}

/** One offer as the search returns it; RAM in MB, money in micro-dollars. */
export interface OfferRow {
  id: string;
  machineId: number;
  hostId: number;
  numGpus: number;
  gpuName: string;
  gpuRam: number;
  gpuTotalRam: number;
  computeCap: number;
  totalFlops: number;
  gpuMemBw: number;
  pcieBw: number;
  pcieGen: number;
  cpuName: string;
  cpuCores: number;
  cpuCoresEffective: number;
  cpuRam: number;
  diskSpace: number;
  diskBw: number;
  inetUp: number;
  inetDown: number;
  cudaMaxGood: number;
  driverVersion: string;
  reliability: number;
  dlperf: number;
  pricePerGpuMicros: bigint;
  minBidMicros: bigint;
  storageCostMicros: bigint;
  inetUpCostMicros: bigint;
  inetDownCostMicros: bigint;
  dphTotalMicros: bigint;
  dlperfPerDphtotal: number;
  flopsPerDphtotal: number;
  score: number;
  verified: boolean;
  datacenter: boolean;
  geolocation: string;
  countryCode: string;
  endDate: Date;
  rentable: boolean;
  rented: boolean;
  gpusFreeOfOnDemand: number;
  directPortCount: number;
  staticIp: boolean;
  winningBidMicros: bigint | null;
}

export interface OfferPage {
  offers: OfferRow[];
  /** Counts the offers matching the search over every page; run only when asked for. */
  totalCount: () => Promise<number>;
  /** The cursor of the page's offer at `index`, made only when asked for. */
  cursor: (index: number) => string;
  hasNextPage: boolean;
  hasPreviousPage: boolean;
}

const finite = z.number().finite();
const filterSchema = z
  .object({
    gpuNames: z.array(z.string().trim().min(1).max(100)).min(1).max(50).nullish(),
    minNumGpus: z.number().int().min(0).max(1024).nullish(),
    maxNumGpus: z.number().int().min(0).max(1024).nullish(),
    minGpuRamGb: finite.min(0).max(100_000).nullish(),
    maxDphTotal: z.bigint().min(0n).nullish(),
    minReliability: finite.min(0).max(1).nullish(),
    minDlperf: finite.min(0).nullish(),
    minCudaVersion: finite.min(0).max(100).nullish(),
    minInetDownMbps: finite.min(0).nullish(),
    minDurationDays: finite.min(0).max(100_000).nullish(),
    countries: z
      .array(z.string().regex(/^[A-Za-z]{2}$/, "must be a two-letter country code"))
      .min(1)
      .max(250)
      .nullish(),
    datacenter: z.boolean().nullish(),
    verified: z.boolean().nullish(),
    rentable: z.boolean().nullish(),
    launchMode: launchMode.nullish(),
    ports: portList.nullish(),
  })
  .nullish();

const argsSchema = z.object({
  query: z.string().max(2000).nullish(),
  filter: filterSchema,
  orderBy: z
    .array(z.object({ field: z.enum(SORTABLE_FIELDS as [OfferField, ...OfferField[]]), direction: z.enum(["ASC", "DESC"]) }))
    .max(5)
    .refine((orders) => new Set(orders.map((o) => o.field)).size === orders.length, "each field at most once")
    .nullish(),
  storageGb: finite.min(0).max(100_000).nullish(),
  first: z.number().int().min(0).max(MAX_PAGE_SIZE).nullish(),
  after: z.string().max(1000).nullish(),
});

/** How the pieces of one search render to SQL: the storage size decides dph_total and what follows from it. */
interface SqlContext {
  /** Column qualifier: "" inside the page query, "o." in the outer select. */
  prefix: string;
  storageMilliGb: bigint;
  defaultStorage: boolean;
}

function col(ctx: SqlContext, name: string): Prisma.Sql {
  return Prisma.raw(`${ctx.prefix}${name}`);
}

// The SQL twins of ranking.ts: same operations, same order, so stored and computed values agree.
function dphTotalSql(ctx: SqlContext): Prisma.Sql {
  if (ctx.defaultStorage) return col(ctx, "dph_total_micros");
  const divisor = BigInt(HOURS_PER_MONTH) * 1000n;
  return Prisma.sql`(${col(ctx, "gpu_dph_micros")} + (${col(ctx, "storage_cost_micros")} * ${ctx.storageMilliGb}::bigint + ${divisor / 2n}::bigint) / ${divisor}::bigint)`;
}

function perDollarHourSql(ctx: SqlContext, value: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`(${value} * 1000000 / GREATEST(${dphTotalSql(ctx)}, 1))`;
}

function dlperfPerDphSql(ctx: SqlContext): Prisma.Sql {
  return ctx.defaultStorage ? col(ctx, "dlperf_per_dphtotal") : perDollarHourSql(ctx, col(ctx, "dlperf"));
}

/** A column of the offer's machine, for the fields the offer table does not copy (rarely searched). */
function machineSql(ctx: SqlContext, expression: string): Prisma.Sql {
  return Prisma.raw(`(SELECT ${expression} FROM machine WHERE machine.id = ${ctx.prefix || "offer."}machine_id)`);
}

const reliabilityCubed = (ctx: SqlContext) =>
  Prisma.sql`(${col(ctx, "reliability")} * ${col(ctx, "reliability")} * ${col(ctx, "reliability")})`;

/** Each field's SQL value, in the units the stored and typed values share (MB, micro-dollars, days). */
const FIELD_SQL: Record<OfferField, (ctx: SqlContext) => Prisma.Sql> = {
  id: (ctx) => col(ctx, "id"),
  gpu_name: (ctx) => col(ctx, "gpu_name"),
  num_gpus: (ctx) => col(ctx, "num_gpus"),
  gpu_ram: (ctx) => col(ctx, "gpu_ram"),
  gpu_total_ram: (ctx) => col(ctx, "gpu_total_ram"),
  compute_cap: (ctx) => col(ctx, "compute_cap"),
  total_flops: (ctx) => col(ctx, "total_flops"),
  gpu_mem_bw: (ctx) => col(ctx, "gpu_mem_bw"),
  pcie_bw: (ctx) => col(ctx, "pcie_bw"),
  pci_gen: (ctx) => machineSql(ctx, "pcie_gen"),
  // A compute capability is CUDA's: every GPU listed here is NVIDIA's.
  gpu_arch: () => Prisma.sql`'nvidia'::text`,
  gpu_frac: (ctx) => Prisma.sql`(${col(ctx, "num_gpus")}::float8 / ${machineSql(ctx, "num_gpus")})`,
  cpu_arch: (ctx) =>
    machineSql(ctx, String.raw`COALESCE(cpu_arch, CASE WHEN cpu_name ~* '\m(arm|arm64|aarch64|neoverse|grace|altra|graviton)\M' THEN 'arm64' ELSE 'amd64' END)`),
  // Detected by the agent; machines registered by hand do not say (no AVX, no power limit known).
  has_avx: (ctx) => machineSql(ctx, "COALESCE(has_avx, FALSE)"),
  gpu_max_power: (ctx) => machineSql(ctx, "COALESCE(gpu_max_power_w, 0)"),
  // Unknown stays NULL: no bound matches it, and `field=null` finds such machines.
  gpu_max_temp: (ctx) => machineSql(ctx, "gpu_max_temp_c::float8"),
  cpu_ghz: (ctx) => machineSql(ctx, "cpu_ghz"),
  mobo_name: (ctx) => machineSql(ctx, "mobo_name"),
  // Validated as "NN.NN" when stored, so the cast cannot fail.
  ubuntu_version: (ctx) => machineSql(ctx, "ubuntu_version::float8"),
  cpu_cores: (ctx) => col(ctx, "cpu_cores"),
  cpu_cores_effective: (ctx) => col(ctx, "cpu_cores_effective"),
  cpu_ram: (ctx) => col(ctx, "cpu_ram"),
  disk_space: (ctx) => col(ctx, "disk_space"),
  disk_bw: (ctx) => col(ctx, "disk_bw"),
  inet_up: (ctx) => col(ctx, "inet_up"),
  inet_down: (ctx) => col(ctx, "inet_down"),
  cuda_max_good: (ctx) => col(ctx, "cuda_max_good"),
  driver_version: (ctx) => col(ctx, "driver_version"),
  reliability: (ctx) => col(ctx, "reliability"),
  dlperf: (ctx) => col(ctx, "dlperf"),
  dlperf_per_dphtotal: dlperfPerDphSql,
  flops_per_dphtotal: (ctx) => perDollarHourSql(ctx, col(ctx, "total_flops")),
  score: (ctx) =>
    ctx.defaultStorage ? col(ctx, "score") : Prisma.sql`(${dlperfPerDphSql(ctx)} * ${reliabilityCubed(ctx)})`,
  dph_total: dphTotalSql,
  min_bid: (ctx) => col(ctx, "min_bid_micros"),
  storage_cost: (ctx) => col(ctx, "storage_cost_micros"),
  inet_up_cost: (ctx) => col(ctx, "inet_up_cost_micros"),
  inet_down_cost: (ctx) => col(ctx, "inet_down_cost_micros"),
  winning_bid: (ctx) => col(ctx, "winning_bid_micros"),
  verified: (ctx) => col(ctx, "verified"),
  verification: (ctx) => machineSql(ctx, "lower(verification::text)"),
  external: () => Prisma.sql`FALSE`,
  vms_enabled: () => Prisma.sql`FALSE`,
  datacenter: (ctx) => col(ctx, "datacenter"),
  geolocation: (ctx) => col(ctx, "geolocation"),
  duration: (ctx) => Prisma.sql`(EXTRACT(EPOCH FROM (${col(ctx, "end_date")} - now())) / 86400)`,
  // The row's flag is as of the last sync; a listing whose end date has passed since is not rentable.
  rentable: (ctx) => Prisma.sql`(${col(ctx, "rentable")} AND ${col(ctx, "end_date")} > now())`,
  rented: (ctx) => col(ctx, "rented"),
  direct_port_count: (ctx) => col(ctx, "direct_port_count"),
  static_ip: (ctx) => col(ctx, "static_ip"),
  machine_id: (ctx) => col(ctx, "machine_id"),
  host_id: (ctx) => col(ctx, "host_id"),
};

/** Sortable fields a machine may not have reported: they sort as 0, so that every cursor key is a number. */
const UNREPORTED_SORTS_AS_ZERO = new Set<OfferField>(["gpu_max_temp", "cpu_ghz", "ubuntu_version"]);

/**
 * Sortable fields that are null for some offers (no bid can win GPUs that on-demand rentals hold):
 * those offers come after every value in either direction, since they are the ones a user sorting
 * by the field is least looking for.
 */
const NULLS_LAST = new Set<OfferField>(["winning_bid"]);

/** What ordering by a field means, for the API's documentation. */
export function sortFieldDescription(field: OfferField): string {
  if (OFFER_FIELDS[field].kind === "geo") return "the machine's location text (Oregon, US), alphabetically (accents after the plain letter, as in a dictionary)";
  return NULLS_LAST.has(field) ? `${OFFER_FIELDS[field].description}; offers without one come last either way` : OFFER_FIELDS[field].description;
}

/** Order keys: the field's value, except duration, ordered by the end date so that cursors do not drift with time. */
function sortKeySql(field: OfferField, ctx: SqlContext): Prisma.Sql {
  if (field === "duration") return col(ctx, "end_date");
  // Places sort as people read them (Île-de-France among the I's) whatever the database's collation;
  // ICU's root collation is deterministic, so a cursor's key still compares equal to its own row only.
  if (OFFER_FIELDS[field].kind === "geo") return Prisma.sql`(${FIELD_SQL[field](ctx)} COLLATE "und-x-icu")`;
  return UNREPORTED_SORTS_AS_ZERO.has(field) ? Prisma.sql`COALESCE(${FIELD_SQL[field](ctx)}, 0)` : FIELD_SQL[field](ctx);
}

/** The type a cursor's key is read back as (KEY_TYPES). */
function sortKeyType(field: OfferField): KeyType {
  if (field === "duration") return "timestamptz";
  return ({ int: "int4", float: "float8", money: "int8", geo: "text" } as const)[OFFER_FIELDS[field].kind as "int" | "float" | "money" | "geo"];
}

const SQL_OPS = { eq: "=", neq: "<>", lt: "<", lte: "<=", gt: ">", gte: ">=" } as const;

function conditionSql(condition: Condition, ctx: SqlContext): Prisma.Sql {
  const { field, op, value } = condition;
  const kind = OFFER_FIELDS[field].kind;
  if (kind === "geo") return geoSql(op, value, ctx);
  const expr = FIELD_SQL[field](ctx);
  if (value === null) return op === "eq" ? Prisma.sql`${expr} IS NULL` : Prisma.sql`${expr} IS NOT NULL`;
  if (op === "in" || op === "notin") {
    // An integer column holds no fractional value: such list items match nothing.
    const items = (value as Scalar[]).filter((item) => kind !== "int" || isIntValue(item as number));
    if (items.length === 0) return Prisma.raw(op === "in" ? "FALSE" : "TRUE");
    return Prisma.sql`${expr} ${Prisma.raw(op === "in" ? "IN" : "NOT IN")} (${Prisma.join(items.map((item) => scalarSql(item, kind)))})`;
  }
  if (kind === "int") return intComparisonSql(expr, op, value as number);
  return Prisma.sql`${expr} ${Prisma.raw(SQL_OPS[op])} ${scalarSql(value as Scalar, kind)}`;
}

function scalarSql(value: Scalar, kind: string): Prisma.Sql {
  if (kind === "money") return Prisma.sql`${value}::bigint`;
  return Prisma.sql`${value}`;
}

function isIntValue(value: number): boolean {
  return Number.isInteger(value) && Math.abs(value) <= MAX_INT4;
}

/**
 * Integer columns compare against integer parameters, which keeps their indexes usable: a
 * fractional bound is rounded the way that gives the same rows (num_gpus > 1.5 is num_gpus >= 2).
 */
function intComparisonSql(expr: Prisma.Sql, op: Exclude<Condition["op"], "in" | "notin">, value: number): Prisma.Sql {
  if (op === "eq" || op === "neq") {
    if (!isIntValue(value)) return Prisma.raw(op === "eq" ? "FALSE" : "TRUE");
    return Prisma.sql`${expr} ${Prisma.raw(SQL_OPS[op])} ${value}`;
  }
  const rounded = op === "gt" || op === "lte" ? Math.floor(value) : Math.ceil(value);
  const bound = Math.max(-MAX_INT4, Math.min(MAX_INT4, rounded));
  return Prisma.sql`${expr} ${Prisma.raw(SQL_OPS[op])} ${bound}`;
}

/** geolocation matches a two-letter country code exactly, anything else as text within the location. */
function geoSql(op: Condition["op"], value: Condition["value"], ctx: SqlContext): Prisma.Sql {
  if (value === null) return Prisma.raw(op === "eq" ? "FALSE" : "TRUE");
  const values = (Array.isArray(value) ? value : [value]) as string[];
  const matches = values.map((place) =>
    /^[A-Za-z]{2}$/.test(place)
      ? Prisma.sql`${col(ctx, "country_code")} = ${place.toUpperCase()}`
      : Prisma.sql`${col(ctx, "geolocation")} ILIKE ${`%${place.replace(/[\\%_]/g, "\\$&")}%`}`,
  );
  const any = Prisma.sql`(${Prisma.join(matches, " OR ")})`;
  return op === "eq" || op === "in" ? any : Prisma.sql`NOT ${any}`;
}

/** The structured filter as clauses, applied after the query's. */
function filterClauses(filter: OfferFilter | null | undefined): Clause[] {
  if (!filter) return [];
  const clauses: Clause[] = [];
  const add = (field: OfferField, op: Condition["op"], value: Condition["value"] | undefined) => {
    if (value !== undefined && value !== null) clauses.push({ field, op, value });
  };
  add("gpu_name", "in", filter.gpuNames);
  add("num_gpus", "gte", filter.minNumGpus);
  add("num_gpus", "lte", filter.maxNumGpus);
  add("gpu_ram", "gte", filter.minGpuRamGb == null ? null : filter.minGpuRamGb * OFFER_FIELDS.gpu_ram.scale);
  add("dph_total", "lte", filter.maxDphTotal);
  add("reliability", "gte", filter.minReliability);
  add("dlperf", "gte", filter.minDlperf);
  add("cuda_max_good", "gte", filter.minCudaVersion);
  add("inet_down", "gte", filter.minInetDownMbps);
  add("duration", "gte", filter.minDurationDays);
  add("geolocation", "in", filter.countries);
  add("datacenter", "eq", filter.datacenter);
  // Ports are mapped to free ports of the machine's direct range: one whose range cannot hold the
  // rental's (its mode's own included) cannot take it.
  if (filter.launchMode != null || filter.ports != null) {
    const needed = directPortsNeeded(filter.launchMode ?? "ENTRYPOINT", filter.ports ?? []);
    if (needed > 0) add("direct_port_count", "gte", needed);
  }
  for (const field of ["verified", "rentable"] as const) {
    const wanted = filter[field];
    if (wanted === null) clauses.push({ field, op: "any" });
    else add(field, "eq", wanted);
  }
  return clauses;
}

interface Cursor {
  /** The order and storage size the cursor was made for. */
  o: string;
  /** The keys' values; null only for a field of NULLS_LAST. */
  k: (string | null)[];
  id: string;
}

function orderSignature(orders: OfferOrder[], milliGb: bigint): string {
  return `${orders.map((o) => `${o.field}:${o.direction}`).join(",")}@${milliGb}`;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

/**
 * Each key type's values as cursorKey writes them, and the SQL type a key is read back as: the
 * cast must not fail (text must not hold a NUL, which PostgreSQL refuses).
 */
const KEY_TYPES = {
  int4: { sql: "int4", valid: (key: string) => /^-?\d{1,10}$/.test(key) && Math.abs(Number(key)) <= MAX_INT4 },
  int8: { sql: "int8", valid: (key: string) => /^-?\d{1,18}$/.test(key) },
  float8: { sql: "float8", valid: (key: string) => /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(key) && Number.isFinite(Number(key)) },
  timestamptz: {
    sql: "timestamptz",
    valid: (key: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/.test(key) && !Number.isNaN(Date.parse(key)),
  },
  text: { sql: "text", valid: (key: string) => key.length <= MAX_GEOLOCATION_LENGTH && !key.includes("\0") },
  offerId: { sql: "text", valid: (key: string) => /^\d{1,10}-\d{1,2}$/.test(key) },
} as const satisfies Record<string, { sql: string; valid: (key: string) => boolean }>;

type KeyType = keyof typeof KEY_TYPES;

interface OrderKey {
  sql: Prisma.Sql;
  type: KeyType;
  direction: SortDirection;
  /** Null for some rows, which sort after every value (NULLS_LAST). */
  nullable: boolean;
}

function decodeCursor(text: string, signature: string, keys: OrderKey[]): Cursor {
  let cursor: Cursor;
  try {
    cursor = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw new ValidationError([{ path: ["after"], message: "is not a cursor from this search" }]);
  }
  const valid =
    typeof cursor?.id === "string" &&
    Array.isArray(cursor.k) &&
    cursor.k.length === keys.length - 1 &&
    [...cursor.k, cursor.id].every((key, i) =>
      key === null ? keys[i].nullable : typeof key === "string" && KEY_TYPES[keys[i].type].valid(key),
    );
  if (!valid) throw new ValidationError([{ path: ["after"], message: "is not a cursor from this search" }]);
  if (cursor.o !== signature) {
    throw new ValidationError([{ path: ["after"], message: "was made for another order or storage size" }]);
  }
  return cursor;
}

function cursorKey(value: unknown): string | null {
  if (value === null) return null;
  return value instanceof Date ? value.toISOString() : String(value);
}

/** A key in ORDER BY: nullable keys put their nulls last whichever the direction. */
function orderSql(expr: Prisma.Sql, key: OrderKey): Prisma.Sql {
  return Prisma.sql`${expr} ${Prisma.raw(key.direction)}${Prisma.raw(key.nullable ? " NULLS LAST" : "")}`;
}

/**
 * Rows after the cursor in the given order, the offer id breaking ties in the direction of the
 * last key. One direction throughout without nullable keys is a row comparison, which an index on
 * (key, id) answers; otherwise the equivalent OR of prefixes, where a null key equals only null
 * and every null comes after every value.
 */
function keysetSql(keys: OrderKey[], cursor: Cursor): Prisma.Sql {
  const raw = [...cursor.k, cursor.id];
  const values = raw.map((value, i) => Prisma.sql`${value}::${Prisma.raw(KEY_TYPES[keys[i].type].sql)}`);
  const after = (direction: SortDirection) => Prisma.raw(direction === "DESC" ? "<" : ">");
  if (keys.every((key) => key.direction === keys[0].direction && !key.nullable)) {
    return Prisma.sql`(${Prisma.join(keys.map((key) => key.sql))}) ${after(keys[0].direction)} (${Prisma.join(values)})`;
  }
  const equal = (key: OrderKey, i: number) =>
    raw[i] === null ? Prisma.sql`${key.sql} IS NULL` : Prisma.sql`${key.sql} = ${values[i]}`;
  const beyond = (key: OrderKey, i: number): Prisma.Sql | null => {
    if (raw[i] === null) return null;
    const strict = Prisma.sql`${key.sql} ${after(key.direction)} ${values[i]}`;
    return key.nullable ? Prisma.sql`(${strict} OR ${key.sql} IS NULL)` : strict;
  };
  const branches = keys.flatMap((key, i) => {
    const last = beyond(key, i);
    return last ? [Prisma.join([...keys.slice(0, i).map(equal), last], " AND ")] : [];
  });
  return Prisma.sql`(${Prisma.join(branches.map((branch) => Prisma.sql`(${branch})`), " OR ")})`;
}

/** Stored default-disk twins of the orders whose value depends on storageGb, in the direction where "better" is first. */
const STORED_TWINS: Partial<Record<OfferField, { column: string; direction: SortDirection }>> = {
  score: { column: "score", direction: "DESC" },
  dlperf_per_dphtotal: { column: "dlperf_per_dphtotal", direction: "DESC" },
  dph_total: { column: "dph_total_micros", direction: "ASC" },
};

/**
 * For more disk than the default, ordered by score, dlperf_per_dphtotal or dph_total: a bound on
 * the stored (default-disk) column that keeps every row of the page, so that an index on it
 * narrows the rows whose value must be computed. More disk never makes an offer better than its
 * stored value (dph only grows), so if the k rows best by the stored value are at worst T by the
 * computed value, any row stored worse than T is computed worse than T, and k rows beat it.
 */
function storedBoundSql(
  orders: OfferOrder[],
  milliGb: bigint,
  conditions: Prisma.Sql[],
  k: number,
  ctx: SqlContext,
): Prisma.Sql | null {
  const twin = orders.length === 1 ? STORED_TWINS[orders[0].field] : undefined;
  if (!twin || orders[0].direction !== twin.direction || milliGb <= storageMilliGb(DEFAULT_STORAGE_GB)) return null;
  const stored = Prisma.raw(twin.column);
  const desc = twin.direction === "DESC";
  const where = conditions.length ? Prisma.sql`WHERE ${Prisma.join(conditions, " AND ")}` : Prisma.empty;
  return Prisma.sql`${stored} ${Prisma.raw(desc ? ">=" : "<=")} (SELECT ${Prisma.raw(desc ? "min" : "max")}(value) FROM (
    SELECT ${FIELD_SQL[orders[0].field](ctx)} AS value FROM offer ${where} ORDER BY ${stored} ${Prisma.raw(twin.direction)} LIMIT ${k}) best)`;
}

/** The columns that make an offer's size: every offer of one (num_gpus, gpu_ram, gpu_total_ram) is one part of a size split. */
const SIZE_FIELDS = new Set<OfferField>(["num_gpus", "gpu_ram", "gpu_total_ram"]);

/** Orders with a (num_gpus, gpu_ram, gpu_total_ram, key, id) index (prisma/schema.prisma), at the default disk size. */
const SIZE_ORDERED_KEYS = new Set<OfferField>(["score", "dph_total"]);

/**
 * Whether to search size by size: a lower bound on the size asks for big boxes, which are expensive
 * and rank low, so an ordered scan of all offers walks past every smaller one before finding the page.
 * Each (num_gpus, gpu_ram, gpu_total_ram) that the size conditions accept is instead an ordered scan of
 * its own, found by a loose index scan: their number depends on the GPU models and chunk sizes listed,
 * not on the offers. A GPU model condition is left to the model's own indexes.
 */
function splitsBySize(conditions: Condition[], orders: OfferOrder[], ctx: SqlContext): boolean {
  return (
    ctx.defaultStorage &&
    SIZE_ORDERED_KEYS.has(orders[0].field) &&
    conditions.some((c) => SIZE_FIELDS.has(c.field) && (c.op === "gte" || c.op === "gt")) &&
    !conditions.some((c) => c.field === "gpu_name" && (c.op === "eq" || c.op === "in"))
  );
}

/**
 * The sizes the size conditions accept, as rows (num_gpus, gpu_ram, gpu_total_ram) named `size`: each
 * next distinct size is the first index entry after the last one (a loose index scan of the size indexes).
 */
function acceptedSizesSql(sizeConditions: Condition[], ctx: SqlContext): Prisma.Sql {
  const accepted = sizeConditions.map((condition) => conditionSql(condition, { ...ctx, prefix: "size." }));
  return Prisma.sql`(WITH RECURSIVE size AS (
      (SELECT num_gpus, gpu_ram, gpu_total_ram FROM offer ORDER BY num_gpus, gpu_ram, gpu_total_ram LIMIT 1)
      UNION ALL
      SELECT following.* FROM size CROSS JOIN LATERAL (
        SELECT num_gpus, gpu_ram, gpu_total_ram FROM offer
        WHERE (num_gpus, gpu_ram, gpu_total_ram) > (size.num_gpus, size.gpu_ram, size.gpu_total_ram)
        ORDER BY num_gpus, gpu_ram, gpu_total_ram LIMIT 1) following)
    SELECT * FROM size WHERE ${Prisma.join(accepted, " AND ")}) size`;
}

export interface OfferSearchPlan {
  sql: Prisma.Sql;
  /** How many offers match, over every page. */
  countSql: Prisma.Sql;
  limit: number;
  hasPreviousPage: boolean;
  signature: string;
  keyCount: number;
}

const offerColumn = (name: string) => (ctx: SqlContext) => col(ctx, name);

/** Each field of a found offer as the page's SQL computes it (from the offer, or "m." its machine). */
const ROW_COLUMN_SQL: Record<keyof OfferRow, (ctx: SqlContext) => Prisma.Sql> = {
  id: offerColumn("id"),
  machineId: offerColumn("machine_id"),
  hostId: offerColumn("host_id"),
  numGpus: offerColumn("num_gpus"),
  gpuName: offerColumn("gpu_name"),
  gpuRam: offerColumn("gpu_ram"),
  gpuTotalRam: offerColumn("gpu_total_ram"),
  computeCap: offerColumn("compute_cap"),
  totalFlops: offerColumn("total_flops"),
  gpuMemBw: offerColumn("gpu_mem_bw"),
  pcieBw: offerColumn("pcie_bw"),
  pcieGen: () => Prisma.raw("m.pcie_gen"),
  cpuName: () => Prisma.raw("m.cpu_name"),
  cpuCores: offerColumn("cpu_cores"),
  cpuCoresEffective: offerColumn("cpu_cores_effective"),
  cpuRam: offerColumn("cpu_ram"),
  diskSpace: offerColumn("disk_space"),
  diskBw: offerColumn("disk_bw"),
  inetUp: offerColumn("inet_up"),
  inetDown: offerColumn("inet_down"),
  cudaMaxGood: offerColumn("cuda_max_good"),
  driverVersion: offerColumn("driver_version"),
  reliability: offerColumn("reliability"),
  dlperf: offerColumn("dlperf"),
  pricePerGpuMicros: offerColumn("price_per_gpu_micros"),
  minBidMicros: offerColumn("min_bid_micros"),
  storageCostMicros: offerColumn("storage_cost_micros"),
  inetUpCostMicros: offerColumn("inet_up_cost_micros"),
  inetDownCostMicros: offerColumn("inet_down_cost_micros"),
  dphTotalMicros: FIELD_SQL.dph_total,
  dlperfPerDphtotal: FIELD_SQL.dlperf_per_dphtotal,
  flopsPerDphtotal: FIELD_SQL.flops_per_dphtotal,
  score: FIELD_SQL.score,
  verified: offerColumn("verified"),
  datacenter: offerColumn("datacenter"),
  geolocation: offerColumn("geolocation"),
  countryCode: offerColumn("country_code"),
  endDate: offerColumn("end_date"),
  rentable: FIELD_SQL.rentable,
  rented: offerColumn("rented"),
  gpusFreeOfOnDemand: offerColumn("gpus_free_of_on_demand"),
  directPortCount: offerColumn("direct_port_count"),
  staticIp: offerColumn("static_ip"),
  winningBidMicros: offerColumn("winning_bid_micros"),
};

/** Fields of an offer read from its machine: only a page that asks for one joins it. */
const MACHINE_COLUMNS = new Set<keyof OfferRow>(["pcieGen", "cpuName"]);

export const OFFER_ROW_COLUMNS = Object.keys(ROW_COLUMN_SQL) as (keyof OfferRow)[];

/**
 * Validates the arguments and builds the statement for a page whose offers carry `columns` (and
 * their ids); exported so that the benchmark runs the same SQL.
 */
export function planOfferSearch(input: OfferSearchArgs, columns: readonly (keyof OfferRow)[] = OFFER_ROW_COLUMNS): OfferSearchPlan {
  const args = parseInput(argsSchema, input);
  const storageGb = args.storageGb ?? DEFAULT_STORAGE_GB;
  const milliGb = storageMilliGb(storageGb);
  const base = { storageMilliGb: milliGb, defaultStorage: milliGb === storageMilliGb(DEFAULT_STORAGE_GB) };
  const inner: SqlContext = { ...base, prefix: "" };
  const outer: SqlContext = { ...base, prefix: "o." };

  const clauses = [...(args.query ? parseOfferQuery(args.query) : []), ...filterClauses(args.filter)];
  const resolved = resolveClauses(clauses);
  // A short list of GPU models is searched model by model and the parts merged: each part is then
  // an ordered scan of a (gpu_name, key) index instead of a sort of every offer of those models.
  const split = resolved.find(
    (c) => c.field === "gpu_name" && c.op === "in" && (c.value as Scalar[]).length <= 8 && !(c.value as Scalar[]).includes(null),
  );
  const conditions = resolved.filter((c) => c !== split).map((condition) => conditionSql(condition, inner));

  const orders = args.orderBy?.length ? args.orderBy : DEFAULT_ORDER;
  const signature = orderSignature(orders, milliGb);
  const lastDirection = orders[orders.length - 1].direction;
  const keys: OrderKey[] = [
    ...orders.map((order) => ({
      sql: sortKeySql(order.field, inner),
      type: sortKeyType(order.field),
      direction: order.direction,
      nullable: NULLS_LAST.has(order.field),
    })),
    { sql: Prisma.raw("id"), type: "offerId", direction: lastDirection, nullable: false },
  ];
  const matching = [...conditions, ...(split ? [conditionSql(split, inner)] : [])];
  const countSql = Prisma.sql`SELECT count(*)::int AS count FROM offer ${matching.length ? Prisma.sql`WHERE ${Prisma.join(matching, " AND ")}` : Prisma.empty}`;
  if (args.after) conditions.push(keysetSql(keys, decodeCursor(args.after, signature, keys)));

  const first = args.first ?? DEFAULT_PAGE_SIZE;
  const bound = storedBoundSql(orders, milliGb, [...conditions, ...(split ? [conditionSql(split, inner)] : [])], first + 1, inner);
  if (bound) conditions.push(bound);
  const keyColumns = orders.map((_, i) => Prisma.raw(`k${i}`));
  const innerOrder = Prisma.join(keys.map((key) => orderSql(key.sql, key)));
  const aliasOrder = (table: string) =>
    Prisma.join([...keyColumns, Prisma.raw("id")].map((column, i) => orderSql(Prisma.sql`${Prisma.raw(table)}.${column}`, keys[i])));
  const innerKeys = orders.map((order, i) => Prisma.sql`, ${sortKeySql(order.field, inner)} AS k${Prisma.raw(String(i))}`);
  const pageQuery = (extra: Prisma.Sql[]) => {
    const all = [...conditions, ...extra];
    const where = all.length ? Prisma.sql`WHERE ${Prisma.join(all, " AND ")}` : Prisma.empty;
    return Prisma.sql`SELECT id${Prisma.join(innerKeys, "")} FROM offer ${where} ORDER BY ${innerOrder} LIMIT ${first + 1}`;
  };
  const page = split
    ? Prisma.sql`SELECT * FROM (${Prisma.join(
        [...new Set(split.value as string[])].map((name) => Prisma.sql`(${pageQuery([Prisma.sql`gpu_name = ${name}`])})`),
        " UNION ALL ",
      )}) part ORDER BY ${aliasOrder("part")} LIMIT ${first + 1}`
    : splitsBySize(resolved, orders, inner)
      ? Prisma.sql`SELECT part.* FROM ${acceptedSizesSql(resolved.filter((c) => SIZE_FIELDS.has(c.field)), inner)}
          CROSS JOIN LATERAL (${pageQuery([
            Prisma.sql`num_gpus = size.num_gpus AND gpu_ram = size.gpu_ram AND gpu_total_ram = size.gpu_total_ram`,
          ])}) part
          ORDER BY ${aliasOrder("part")} LIMIT ${first + 1}`
      : pageQuery([]);

  // The page is chosen over the narrow (id, keys) rows first, and the wide columns and the machine
  // are fetched for those rows only: sorting carries a few bytes per offer instead of the whole row.
  const selected = [...new Set(columns)].filter((column) => column !== "id");
  const machine = selected.some((column) => MACHINE_COLUMNS.has(column));
  const sql = Prisma.sql`
    SELECT o.id, ${Prisma.join([
      ...selected.map((column) => Prisma.sql`${ROW_COLUMN_SQL[column](outer)} AS ${Prisma.raw(`"${column}"`)}`),
      ...keyColumns.map((k) => Prisma.sql`page.${k}`),
    ])}
    FROM (${page}) page
    JOIN offer o ON o.id = page.id
    ${machine ? Prisma.sql`JOIN machine m ON m.id = o.machine_id` : Prisma.empty}
    ORDER BY ${aliasOrder("page")}`;
  return { sql, countSql, limit: first, hasPreviousPage: Boolean(args.after), signature, keyCount: orders.length };
}

/**
 * A page of offers with the fields in `columns` (every field by default). Throws SearchQueryError for
 * a query it cannot read, ValidationError for bad arguments.
 */
export async function searchOffers(db: Db, input: OfferSearchArgs, columns?: readonly (keyof OfferRow)[]): Promise<OfferPage> {
  const plan = planOfferSearch(input, columns);
  const rows = await driverRows<OfferRow & Record<string, unknown>>(db, plan.sql);
  const offers = rows.slice(0, plan.limit);
  const cursor = (index: number) =>
    encodeCursor({
      o: plan.signature,
      k: Array.from({ length: plan.keyCount }, (_, i) => cursorKey(offers[index][`k${i}`])),
      id: offers[index].id,
    });
  const totalCount = async () => (await db.$queryRaw<{ count: number }[]>(plan.countSql))[0].count;
  return { offers, cursor, totalCount, hasNextPage: rows.length > plan.limit, hasPreviousPage: plan.hasPreviousPage };
}

/**
 * One offer by its id ("12-4", or "Offer:12-4"), whether or not it is verified or rentable now; null
 * when no listed machine offers that chunk. `storageGb` prices storage into dph_total as in a search.
 */
export async function offerById(db: Db, id: string, storageGb?: number | null): Promise<OfferRow | null> {
  const bare = id.startsWith("Offer:") ? id.slice("Offer:".length) : id;
  if (!/^\d{1,10}-\d{1,4}$/.test(bare)) return null;
  const page = await searchOffers(db, { query: `id=${bare} verified=any rentable=any`, storageGb, first: 1 });
  return page.offers[0] ?? null;
}
