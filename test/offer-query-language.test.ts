import { describe, expect, it } from "vitest";
import { SearchQueryError } from "../domain/errors.ts";
import { type Clause, parseOfferQuery, resolveClauses } from "../domain/offers/query-language.ts";

function errorOf(query: string): SearchQueryError {
  try {
    parseOfferQuery(query);
  } catch (error) {
    expect(error).toBeInstanceOf(SearchQueryError);
    return error as SearchQueryError;
  }
  throw new Error(`"${query}" parsed`);
}

describe("operators", () => {
  it.each([
    ["num_gpus=2", "eq"],
    ["num_gpus==2", "eq"],
    ["num_gpus!=2", "neq"],
    ["num_gpus<2", "lt"],
    ["num_gpus<=2", "lte"],
    ["num_gpus>2", "gt"],
    ["num_gpus>=2", "gte"],
    ["num_gpus = 2", "eq"],
    ["num_gpus >= 2", "gte"],
    ["num_gpus eq 2", "eq"],
    ["num_gpus neq 2", "neq"],
    ["num_gpus gt 2", "gt"],
    ["num_gpus gte 2", "gte"],
    ["num_gpus lt 2", "lt"],
    ["num_gpus LTE 2", "lte"],
  ])("%s reads as %s", (query, op) => {
    expect(parseOfferQuery(query)).toEqual([{ field: "num_gpus", op, value: 2 }]);
  });

  it("reads in and notin with lists, with or without brackets and spaces", () => {
    expect(parseOfferQuery("num_gpus in [1, 2,4] gpu_name notin [RTX_3090,\"A100 SXM4\"] compute_cap in 860,890")).toEqual([
      { field: "num_gpus", op: "in", value: [1, 2, 4] },
      { field: "gpu_name", op: "notin", value: ["RTX 3090", "A100 SXM4"] },
      { field: "compute_cap", op: "in", value: [860, 890] },
    ]);
  });
});

describe("values", () => {
  it("reads several clauses, booleans, floats and strings with _ for a space", () => {
    expect(parseOfferQuery("  gpu_name=RTX_4090 verified=false reliability>0.98  datacenter = True ")).toEqual([
      { field: "gpu_name", op: "eq", value: "RTX 4090" },
      { field: "verified", op: "eq", value: false },
      { field: "reliability", op: "gt", value: 0.98 },
      { field: "datacenter", op: "eq", value: true },
    ]);
  });

  it("takes quoted strings literally", () => {
    expect(parseOfferQuery(`gpu_name="RTX 4090" geolocation='New_York'`)).toEqual([
      { field: "gpu_name", op: "eq", value: "RTX 4090" },
      { field: "geolocation", op: "eq", value: "New_York" },
    ]);
  });

  it("reads null with = and !=", () => {
    expect(parseOfferQuery("driver_version=null gpu_name!=null")).toEqual([
      { field: "driver_version", op: "eq", value: null },
      { field: "gpu_name", op: "neq", value: null },
    ]);
  });

  it("reads RAM fields in GB and stores MB", () => {
    expect(parseOfferQuery("gpu_ram>=24 gpu_total_ram>=7.5 cpu_ram<64")).toEqual([
      { field: "gpu_ram", op: "gte", value: 24_000 },
      { field: "gpu_total_ram", op: "gte", value: 7_500 },
      { field: "cpu_ram", op: "lt", value: 64_000 },
    ]);
  });

  it("reads money in dollars as exact micro-dollars", () => {
    expect(parseOfferQuery("dph_total<0.5 min_bid<=0.123456 storage_cost<.1")).toEqual([
      { field: "dph_total", op: "lt", value: 500_000n },
      { field: "min_bid", op: "lte", value: 123_456n },
      { field: "storage_cost", op: "lt", value: 100_000n },
    ]);
  });

  it("resolves the aliases", () => {
    expect(parseOfferQuery("dph<1 cuda_vers>=12.1 dlperf_usd>100")).toEqual([
      { field: "dph_total", op: "lt", value: 1_000_000n },
      { field: "cuda_max_good", op: "gte", value: 12.1 },
      { field: "dlperf_per_dphtotal", op: "gt", value: 100 },
    ]);
  });

  it("reads field=any as clearing the field", () => {
    expect(parseOfferQuery("verified=any rentable = *")).toEqual([
      { field: "verified", op: "any" },
      { field: "rentable", op: "any" },
    ]);
  });
});

describe("resolving clauses", () => {
  const resolve = (query: string) => resolveClauses(parseOfferQuery(query));

  it("applies the defaults verified=true rentable=true", () => {
    expect(resolve("")).toEqual([
      { field: "verified", op: "eq", value: true },
      { field: "rentable", op: "eq", value: true },
    ]);
  });

  it("any removes a default and every earlier clause on the field", () => {
    expect(resolve("num_gpus>=2 num_gpus<8 verified=any num_gpus=any")).toEqual([
      { field: "rentable", op: "eq", value: true },
    ]);
  });

  it("keeps several operators on a field, the later one replacing the same operator", () => {
    expect(resolve("num_gpus>=2 num_gpus<=8 num_gpus>=4 verified=false")).toEqual([
      { field: "verified", op: "eq", value: false },
      { field: "rentable", op: "eq", value: true },
      { field: "num_gpus", op: "gte", value: 4 },
      { field: "num_gpus", op: "lte", value: 8 },
    ]);
  });

  it("applies clauses given after the query, such as the structured filter's", () => {
    const later: Clause[] = [{ field: "rentable", op: "any" }];
    expect(resolveClauses([...parseOfferQuery("verified=any"), ...later])).toEqual([]);
  });
});

describe("errors name the offending token", () => {
  it.each([
    ["gpu_nmae=RTX_4090", "gpu_nmae", "Unknown field"],
    ["num_gpus=>2", "=>", "Unknown operator"],
    ["num_gpus ~ 2", "~", "Unknown operator"],
    ["num_gpus about 2", "about", "Expected an operator"],
    ["num_gpus", "end of query", "Expected an operator"],
    ["num_gpus>=", "num_gpus", "Missing value"],
    ["num_gpus>=two", "two", "needs a number"],
    ["reliability>0.9x", "0.9x", "needs a number"],
    ["dph_total<0.1234567", "0.1234567", "at most 6 decimals"],
    ["dph_total<$1", "$1", "needs dollars"],
    ["verified=yes", "yes", "true or false"],
    ["verified>true", ">", "takes = != in notin"],
    ["gpu_name>=RTX_4090", ">=", "takes = != in notin"],
    ["gpu_name in [RTX_4090,A100", "[RTX_4090,A100", "Unterminated list"],
    ['gpu_name="RTX 4090', '"RTX 4090', "Unterminated string"],
    ["num_gpus in []", "[]", "Empty list"],
    ["num_gpus=[1,2]", "[1,2]", "needs in or notin"],
    ["num_gpus>any", "any", "only works with ="],
    ["num_gpus<null", "null", "null only works"],
    ["num_gpus in [1,two]", "two", "needs a number"],
    ["=2", "=2", "Expected a field name"],
  ])("%s → token %s", (query, token, message) => {
    const error = errorOf(query);
    expect(error.code).toBe("INVALID_QUERY");
    expect(error.token).toBe(token);
    expect(error.message).toContain(message);
    expect(error.message).toContain(token === "end of query" ? "end of query" : token);
  });

  it("names the field of a bad value", () => {
    expect(errorOf("gpu_ram>=lots").field).toBe("gpu_ram");
    expect(errorOf("dph>abc").field).toBe("dph_total");
  });
});
