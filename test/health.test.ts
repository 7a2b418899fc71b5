import { describe, expect, it } from "vitest";
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

  it("refuses queries deeper than the limit", async () => {
    const deep = `{ me { ${"a { ".repeat(20)}b${" }".repeat(20)} } }`;
    const result = await app.gql(deep);
    expect(result.errors?.length).toBeGreaterThan(0);
    expect(result.data).toBeUndefined();
  });
});
