import { describe, expect, it } from "vitest";
import { config } from "../infra/config.ts";
import { useTestApp } from "./support/app.ts";

describe("server", () => {
  const app = useTestApp();

  it("answers /healthz with 200 when PostgreSQL and Redis answer", async () => {
    const response = await fetch(`${app.baseUrl}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
  });

  it("serves GraphQL to anonymous callers", async () => {
    expect(await app.gql("{ me { email } }")).toEqual({ data: { me: null } });
  });

  it("rejects an unknown API key with a coded error", async () => {
    const result = await app.gql("{ me { email } }", {}, "gmk_not-a-real-key");
    expect(result.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });

  it("refuses valid queries deeper than the limit, and only those", async () => {
    // `ofType` nests as deep as asked on any type, so both queries are valid: only the limit tells them apart.
    const nested = (depth: number) => `{ __type(name: "Query") { ${"ofType { ".repeat(depth - 2)}name${" }".repeat(depth - 2)} } }`;
    const { MAX_QUERY_DEPTH } = config();
    const atLimit = await app.gql(nested(MAX_QUERY_DEPTH));
    expect(atLimit.errors).toBeUndefined();
    expect(atLimit.data.__type.ofType).toBeNull(); // Query is a named type: it wraps nothing

    const beyond = await app.gql(nested(MAX_QUERY_DEPTH + 1));
    expect(beyond.data).toBeUndefined();
    expect(beyond.errors?.map((error) => error.message)).toEqual([expect.stringContaining(`depth limit of ${MAX_QUERY_DEPTH} exceeded`)]);
  });
});
