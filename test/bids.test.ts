import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineHeartbeat, sweepMachineLiveness } from "../domain/agent/liveness.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { eventually } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { runCli } from "./support/cli.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, unwrap } from "./support/rentals.ts";
import { subscribe } from "./support/ws.ts";

const app = useTestApp();
let auction: AuctionWorker;
/** Clearings the worker completed, per machine: the order book may send at most one event for each. */
const clearings = new Map<number, number>();
beforeAll(async () => {
  auction = await startAuctionWorker();
  auction.worker.on("completed", (job) => clearings.set(job.data.machineId, (clearings.get(job.data.machineId) ?? 0) + 1));
});
afterAll(async () => {
  await auction.close();
  await closePubSub();
});

const BID_FIELDS = "id machineId numGpus pricePerGpuHour placedAt standing priceToWin instance { id label }";
const BIDS = /* GraphQL */ `
  query ($status: [BidStanding!], $first: Int, $after: String) {
    bids(status: $status, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ${BID_FIELDS} } }
    }
  }
`;
const BOOK_FIELDS = "machineId numGpus onDemandGpus minBid clearingPrice levels { price gpus bids winningGpus }";
const ORDER_BOOK = /* GraphQL */ `query ($machineId: ID!) { orderBook(machineId: $machineId) { ${BOOK_FIELDS} } }`;
const INSTANCE_BID = /* GraphQL */ `
  query ($id: ID!) { instance(id: $id) { id bid { ${BID_FIELDS} } bidHistory { price placedAt standing priceToWin } } }
`;
const CHANGE_BID = /* GraphQL */ `
  mutation ($id: ID!, $price: Money!) {
    changeBid(instanceId: $id, pricePerGpuHour: $price) { __typename ... on Error { code message } }
  }
`;
const DESTROY = /* GraphQL */ `mutation ($id: ID!) { destroyInstance(id: $id) { __typename ... on Error { code } } }`;

async function placeBid(key: string, machineId: number, numGpus: number, price: string, label: string): Promise<string> {
  const result = await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, numGpus, { bidPricePerGpuHour: price, label }) }, key);
  const created = unwrap(result.data.createInstance);
  expect(created.__typename, JSON.stringify(result)).toBe("CreateInstancePayload");
  return created.instance.id;
}

async function myBids(key: string, variables: Record<string, unknown> = {}) {
  const response = await app.gql(BIDS, variables, key);
  expect(response.errors).toBeUndefined();
  return response.data.bids;
}

const bidId = (instanceId: string) => instanceId.replace("Instance:", "Bid:");

describe("a client's bids against a competitor's higher bid, through the API alone", () => {
  let client: { userId: number; key: string };
  let competitor: { userId: number; key: string };
  let machineId: number;
  let small: string;
  let large: string;
  let rival: string;

  beforeAll(async () => {
    const host = await createAccount("host");
    client = await createAccount("client");
    competitor = await createAccount("competitor");
    machineId = await createListedMachine(host.userId, { numGpus: 4 });
    small = await placeBid(client.key, machineId, 2, "0.20", "client-small");
    large = await placeBid(client.key, machineId, 2, "0.25", "client-large");
    rival = await placeBid(competitor.key, machineId, 4, "0.30", "rival-secret-label");
  });

  it("shows both bids OUTBID with the price that wins each back, which is the offer's winningBid", async () => {
    const bids = await eventually(async () => {
      const page = await myBids(client.key);
      return page.edges.every((e: any) => e.node.standing === "OUTBID") && page.totalCount === 2 ? page : undefined;
    });
    expect(bids.edges.map((e: any) => e.node)).toEqual([
      expect.objectContaining({ id: bidId(large), machineId: `Machine:${machineId}`, numGpus: 2, pricePerGpuHour: "0.25", priceToWin: "0.300001" }),
      expect.objectContaining({ id: bidId(small), numGpus: 2, pricePerGpuHour: "0.20", priceToWin: "0.300001" }),
    ]);
    const offers = await app.gql(`{ offers(query: "machine_id=${machineId} num_gpus=2 rentable=any", first: 5) { edges { node { id winningBid } } } }`);
    expect(offers.data.offers.edges.map((e: any) => e.node)).toEqual([{ id: `Offer:${machineId}-2`, winningBid: "0.300001" }]);
    // Filtered by standing, and paged.
    expect((await myBids(client.key, { status: ["WINNING"] })).totalCount).toBe(0);
    const first = await myBids(client.key, { status: ["OUTBID"], first: 1 });
    expect(first).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
    const second = await myBids(client.key, { status: ["OUTBID"], first: 1, after: first.pageInfo.endCursor });
    expect(second.edges.map((e: any) => e.node.id)).toEqual([bidId(small)]);
    // The competitor sees only its own.
    const theirs = await myBids(competitor.key);
    expect(theirs.edges.map((e: any) => [e.node.id, e.node.standing])).toEqual([[bidId(rival), "WINNING"]]);
  });

  it("shows the anonymous order book with the competitor's level, and nothing of who placed it", async () => {
    const response = await app.gql(ORDER_BOOK, { machineId: `Machine:${machineId}` });
    expect(response.data.orderBook).toEqual({
      machineId: `Machine:${machineId}`,
      numGpus: 4,
      onDemandGpus: 0,
      minBid: "0.10",
      clearingPrice: "0.30",
      levels: [
        { price: "0.30", gpus: 4, bids: 1, winningGpus: 4 },
        { price: "0.25", gpus: 2, bids: 1, winningGpus: 0 },
        { price: "0.20", gpus: 2, bids: 1, winningGpus: 0 },
      ],
    });
    const offers = await app.gql(`{ offers(query: "machine_id=${machineId} rentable=any", first: 5) { edges { node { orderBook { ${BOOK_FIELDS} } } } } }`);
    for (const edge of offers.data.offers.edges) expect(edge.node.orderBook).toEqual(response.data.orderBook);
    const everything = JSON.stringify([response, offers]);
    for (const secret of [rival, small, large, "rival-secret-label", "client-small", `"${competitor.userId}"`]) expect(everything).not.toContain(secret);
  });

  it("streams the bids' standing and the book as the competitor raises and then withdraws", async () => {
    const bidEvents = subscribe(app.url, client.key, `subscription { bids { ${BID_FIELDS} } }`);
    const bookEvents = subscribe(app.url, client.key, `subscription ($m: ID!) { orderBook(machineId: $m) { ${BOOK_FIELDS} } }`, { m: String(machineId) });
    try {
      // Each subscription starts with the current state.
      await bidEvents.next((b) => b.id === bidId(small) && b.standing === "OUTBID");
      await bidEvents.next((b) => b.id === bidId(large) && b.standing === "OUTBID");
      await bookEvents.next((book) => book.levels[0].price === "0.30");
      const booksBefore = bookEvents.values.length;
      const clearingsBefore = clearings.get(machineId) ?? 0;

      const raised = bidEvents.values.length;
      expect((await app.gql(CHANGE_BID, { id: rival, price: "0.45" }, competitor.key)).data.changeBid.__typename).toBe("MutationChangeBidSuccess");
      for (const id of [small, large]) {
        await bidEvents.next((b) => b.id === bidId(id) && b.standing === "OUTBID" && b.priceToWin === "0.450001", 10_000, raised);
      }
      await bookEvents.next((book) => book.levels[0].price === "0.45" && book.clearingPrice === "0.45", 10_000, booksBefore);

      const withdrawn = bidEvents.values.length;
      expect((await app.gql(DESTROY, { id: rival }, competitor.key)).data.destroyInstance.__typename).toBe("MutationDestroyInstanceSuccess");
      for (const id of [small, large]) await bidEvents.next((b) => b.id === bidId(id) && b.standing === "WINNING", 10_000, withdrawn);
      const book = await bookEvents.next((b) => b.levels.length === 2, 10_000, booksBefore);
      expect(book).toMatchObject({
        clearingPrice: "0.20",
        levels: [
          { price: "0.25", gpus: 2, bids: 1, winningGpus: 2 },
          { price: "0.20", gpus: 2, bids: 1, winningGpus: 2 },
        ],
      });
      // Never more book events than clearings of the machine (the worker's "completed" may come after the event it published).
      const bookEventsSeen = bookEvents.values.length - booksBefore;
      await eventually(() => (clearings.get(machineId) ?? 0) - clearingsBefore >= bookEventsSeen);
      expect(bidEvents.errors).toEqual([]);
      expect(JSON.stringify([bidEvents.values, bookEvents.values])).not.toContain("rival-secret-label");
    } finally {
      await bidEvents.close();
      await bookEvents.close();
    }
  });

  it("keeps every price a bid held with the standing each produced", async () => {
    const rivalView = await app.gql(INSTANCE_BID, { id: rival }, competitor.key);
    expect(rivalView.data.instance.bidHistory).toEqual([
      expect.objectContaining({ price: "0.30", standing: "WINNING", priceToWin: "0.300001" }),
      expect.objectContaining({ price: "0.45", standing: "WINNING", priceToWin: "0.450001" }),
    ]);
    // Destroyed: no longer in the auction.
    expect(rivalView.data.instance.bid).toMatchObject({ standing: null, priceToWin: null, pricePerGpuHour: "0.45" });
    // Its creation's standing depends on which clearing saw it first; a change's is the next clearing's.
    expect((await app.gql(CHANGE_BID, { id: small, price: "0.22" }, client.key)).data.changeBid.__typename).toBe("MutationChangeBidSuccess");
    const mine = await eventually(async () => {
      const view = (await app.gql(INSTANCE_BID, { id: small }, client.key)).data.instance;
      // The instance and its history are read one after the other: wait until both show the clearing.
      return view.bidHistory[1]?.standing && view.bid.standing ? view : undefined;
    });
    expect(mine.bid).toMatchObject({ id: bidId(small), standing: "WINNING", pricePerGpuHour: "0.22", instance: { id: small, label: "client-small" } });
    expect(mine.bidHistory).toEqual([
      expect.objectContaining({ price: "0.20", standing: expect.any(String) }),
      expect.objectContaining({ price: "0.22", standing: "WINNING", priceToWin: "0.220001" }),
    ]);
  });
});

describe("standings other than winning and outbid", () => {
  it("a raised minimum bid, an on-demand rental and an offline machine each move the bid, with events", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const renter = await createAccount("renter");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const bid = await placeBid(client.key, machineId, 2, "0.20", "standings");
    const events = subscribe(app.url, client.key, `subscription { bids { ${BID_FIELDS} } }`);
    const setMinBid = (price: string) =>
      app.gql(`mutation ($m: ID!, $p: Money!) { setMinBid(machineId: $m, pricePerGpuHour: $p) { __typename } }`, { m: `Machine:${machineId}`, p: price }, host.key);
    try {
      await events.next((b) => b.standing === "WINNING" && b.priceToWin === "0.200001");
      let from = events.values.length;
      expect((await setMinBid("0.25")).data.setMinBid.__typename).toBe("MutationSetMinBidSuccess");
      await events.next((b) => b.id === bidId(bid) && b.standing === "BELOW_MIN_BID" && b.priceToWin === "0.25", 10_000, from);
      from = events.values.length;
      await setMinBid("0.10");
      await events.next((b) => b.standing === "WINNING", 10_000, from);

      from = events.values.length;
      const rental = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, renter.key)).data.createInstance);
      expect(rental.__typename).toBe("CreateInstancePayload");
      await events.next((b) => b.standing === "PREEMPTED_BY_ON_DEMAND" && b.priceToWin === null, 10_000, from);
      const book = (await app.gql(ORDER_BOOK, { machineId: String(machineId) })).data.orderBook;
      expect(book).toMatchObject({ onDemandGpus: 1, clearingPrice: null, levels: [{ price: "0.20", gpus: 2, bids: 1, winningGpus: 0 }] });

      from = events.values.length;
      const now = new Date();
      await machineHeartbeat(machineId, {}, now);
      expect((await sweepMachineLiveness(new Date(now.getTime() + 3_600_000))).offline).toContain(machineId);
      await events.next((b) => b.standing === "WAITING_FOR_MACHINE" && b.priceToWin === null, 10_000, from);
      expect(events.errors).toEqual([]);
    } finally {
      await events.close();
    }
  });
});

describe("CLI", () => {
  it("show bids prints the price to win beside each bid; show order-book the anonymous levels", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const competitor = await createAccount("competitor");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const mine = await placeBid(client.key, machineId, 1, "0.15", "cli-bid");
    await placeBid(competitor.key, machineId, 2, "0.35", "cli-rival");
    await eventually(async () => (await myBids(client.key)).edges[0]?.node.priceToWin === "0.350001");
    const configPath = join(await mkdtemp(join(tmpdir(), "gm-cli-")), "config.json");

    const bids = await runCli(app.url, configPath, ["show", "bids"], { key: client.key });
    expect(bids).toMatchObject({ code: 0, stderr: "" });
    const [header, row, ...rest] = bids.stdout.trim().split("\n");
    expect(header).toMatch(/Instance\s+Label\s+Machine\s+GPUs\s+Bid\/GPU-hr\s+To win\s+Standing/);
    expect(rest).toEqual([]);
    expect(row!.trim().split(/\s+/).slice(0, 7)).toEqual([mine.split(":")[1], "cli-bid", String(machineId), "1", "$0.15", "$0.350001", "OUTBID"]);

    const book = await runCli(app.url, configPath, ["show", "order-book", String(machineId)]);
    expect(book).toMatchObject({ code: 0, stderr: "" });
    expect(book.stdout).toContain(`Machine ${machineId}: 2 GPUs, 0 held on demand`);
    expect(book.stdout).toContain("Minimum bid $0.10/GPU-hr, clearing at $0.35/GPU-hr");
    expect(book.stdout.trim().split("\n").slice(-2).map((line) => line.trim().split(/\s+/))).toEqual([
      ["$0.35", "2", "1", "2"],
      ["$0.15", "1", "1", "0"],
    ]);
    expect(book.stdout).not.toContain("cli-rival");
    const missing = await runCli(app.url, configPath, ["show", "order-book", "999999"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("NOT_FOUND");
  });
});

describe("bids and books that are not there", () => {
  it("an on-demand instance has no bid and no bid history; it is not among the bids", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    const created = unwrap((await app.gql(CREATE_INSTANCE, { input: instanceInput(machineId, 1) }, client.key)).data.createInstance);
    const view = await app.gql(INSTANCE_BID, { id: created.instance.id }, client.key);
    expect(view.data.instance).toMatchObject({ bid: null, bidHistory: [] });
    expect((await myBids(client.key)).totalCount).toBe(0);
    const book = await eventually(async () => {
      const response = await app.gql(ORDER_BOOK, { machineId: String(machineId) });
      return response.data.orderBook.onDemandGpus === 1 ? response.data.orderBook : undefined;
    });
    expect(book).toMatchObject({ levels: [], clearingPrice: null });
  });

  it("an unlisted or unknown machine's book is NOT_FOUND, by query, subscription and offer", async () => {
    const host = await createAccount("host");
    const machineId = await createListedMachine(host.userId, { numGpus: 2 });
    expect((await app.gql(ORDER_BOOK, { machineId: `Machine:${machineId}` })).data.orderBook.numGpus).toBe(2);
    const unlisted = await app.gql(
      `mutation ($id: ID!) { unlistMachine(machineId: $id) { __typename } }`,
      { id: `Machine:${machineId}` },
      host.key,
    );
    expect(unlisted.data.unlistMachine.__typename).toBe("MutationUnlistMachineSuccess");
    for (const id of [`Machine:${machineId}`, "Machine:999999", "999999"]) {
      const response = await app.gql(ORDER_BOOK, { machineId: id });
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(response)).toBe("NOT_FOUND");
    }
    for (const id of ["Instance:1", "abc", "-1"]) {
      const response = await app.gql(ORDER_BOOK, { machineId: id });
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(response)).toBe("VALIDATION");
    }
    const mine = await app.gql(`{ myMachines { nodes { id orderBook { numGpus } } } }`, {}, host.key);
    expect(mine.data.myMachines.nodes).toEqual([{ id: `Machine:${machineId}`, orderBook: null }]);
    const watcher = await createAccount("watcher");
    const sub = subscribe(app.url, watcher.key, `subscription ($m: ID!) { orderBook(machineId: $m) { numGpus } }`, { m: `Machine:${machineId}` });
    try {
      expect(JSON.stringify(await sub.failed())).toContain("NOT_FOUND");
    } finally {
      await sub.close();
    }
  });
});
