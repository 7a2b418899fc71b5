import { getNamedType, getNullableType, isListType, isObjectType } from "graphql";
import { beforeAll, describe, expect, it } from "vitest";
import { issueApiKey } from "../domain/apiKeys.ts";
import { postEntry } from "../domain/billing/ledger.ts";
import { prisma } from "../infra/db.ts";
import { schema } from "../schema/index.ts";
import { useTestApp } from "./support/app.ts";
import { createAccount } from "./support/rentals.ts";

const app = useTestApp();

interface Page<T> {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  nodes: T[];
}

/** Every page of a list, asking `pageSize` at a time; returns the pages as they came. */
async function pages<T>(list: string, fields: string, pageSize: number, key: string, args = ""): Promise<Page<T>[]> {
  const result: Page<T>[] = [];
  let after: string | null = null;
  do {
    const response = await app.gql(
      `query ($first: Int!, $after: String) { ${list}(first: $first, after: $after${args}) { totalCount pageInfo { hasNextPage endCursor } nodes { ${fields} } } }`,
      { first: pageSize, after },
      key,
    );
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    const page = response.data[list] as Page<T>;
    result.push(page);
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after !== null && result.length < 50);
  return result;
}

describe("every list is a connection", () => {
  it("the root's lists are connections with totalCount, but for bounded aggregates and nodes(ids)", () => {
    const plainLists: string[] = [];
    const withoutTotal: string[] = [];
    for (const field of Object.values(schema.getQueryType()!.getFields())) {
      const type = getNullableType(field.type);
      if (isListType(type)) plainLists.push(field.name);
      const named = getNamedType(field.type);
      if (isObjectType(named) && named.name.endsWith("Connection") && !named.getFields().totalCount) withoutTotal.push(field.name);
    }
    // One row per GPU model; at most ~2,000 points per range; as many as the ids asked for.
    expect(plainLists.sort()).toEqual(["marketStats", "nodes", "priceHistory"]);
    expect(withoutTotal).toEqual([]);
  });
});

describe("paging", () => {
  let host: { userId: number; key: string };

  beforeAll(async () => {
    host = await createAccount("pager");
  });

  it("payouts: all of more than 100, page by page, with their total (once capped at the last 100)", async () => {
    const friday = Date.UTC(2024, 0, 5);
    await prisma.payout.createMany({
      data: Array.from({ length: 130 }, (_, i) => ({
        hostId: host.userId,
        periodStart: new Date(friday + i * 7 * 86_400_000),
        amountMicros: BigInt(20_000_000 + i),
        status: "PAID" as const,
      })),
    });
    const got = await pages<{ amount: string }>("payouts", "amount", 100, host.key);
    expect(got.map((page) => page.nodes.length)).toEqual([100, 30]);
    expect(got.every((page) => page.totalCount === 130)).toBe(true);
    const amounts = got.flatMap((page) => page.nodes.map((node) => node.amount));
    expect(new Set(amounts).size).toBe(130);
    expect(amounts[0]).toBe("20.000129");
  });

  it("a page never holds more than 100: asking for more gives 100 and the next page", async () => {
    const response = await app.gql(`{ payouts(first: 500) { totalCount pageInfo { hasNextPage } nodes { amount } } }`, {}, host.key);
    expect(response.data.payouts.nodes).toHaveLength(100);
    expect(response.data.payouts).toMatchObject({ totalCount: 130, pageInfo: { hasNextPage: true } });
  });

  it("API keys and invoices page the same way, and their totals count only the caller's", async () => {
    for (let i = 0; i < 4; i++) await issueApiKey(prisma, { userId: host.userId, name: `k${i}`, scope: "ACCOUNT" });
    const keys = await pages<{ name: string }>("apiKeys", "name", 2, host.key);
    expect(keys.map((page) => page.nodes.map((node) => node.name))).toEqual([["k3", "k2"], ["k1", "k0"], ["test"]]);
    expect(keys.map((page) => page.totalCount)).toEqual([5, 5, 5]);

    for (let i = 1; i <= 4; i++) {
      await prisma.$transaction((tx) => postEntry(tx, { userId: host.userId, kind: "ADJUSTMENT", amountMicros: BigInt(i * 1_000_000), description: `adjustment ${i}` }));
    }
    const range = `, from: "${new Date(Date.now() - 86_400_000).toISOString()}", to: "${new Date(Date.now() + 86_400_000).toISOString()}"`;
    const invoices = await pages<{ description: string }>("invoices", "description", 3, host.key, range);
    expect(invoices.map((page) => page.nodes.length)).toEqual([3, 2]);
    expect(invoices[0].totalCount).toBe(5);
    expect(new Set(invoices.flatMap((page) => page.nodes.map((node) => node.description))).size).toBe(5);

    const other = await createAccount("stranger");
    const theirs = await app.gql(`{ apiKeys { totalCount } payouts { totalCount } }`, {}, other.key);
    expect(theirs.data).toEqual({ apiKeys: { totalCount: 1 }, payouts: { totalCount: 0 } });
  });
});
