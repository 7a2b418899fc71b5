import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineHeartbeat, sweepMachineLiveness } from "../domain/agent/liveness.ts";
import { closePubSub } from "../infra/pubsub.ts";
import { type AuctionWorker, startAuctionWorker } from "../workers/auction.ts";
import { eventually } from "./support/agent-process.ts";
import { useTestApp } from "./support/app.ts";
import { runCli } from "./support/cli.ts";
import { CREATE_INSTANCE, createAccount, createListedMachine, instanceInput, listMachineThroughApi, unwrap } from "./support/rentals.ts";
import { type TestSubscription, subscribe } from "./support/ws.ts";

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

/**
 * A book subscription opened after `clearingsBefore` was counted got at most one event per clearing
 * of the machine since, besides its first (the book as it was). The worker's "completed" may come
 * after the event its clearing published: wait for the count to catch up, never for fewer.
 */
async function expectAtMostOneEventPerClearing(book: TestSubscription, machineId: number, clearingsBefore: number): Promise<void> {
  const events = book.values.length - 1;
  await eventually(() => (clearings.get(machineId) ?? 0) - clearingsBefore >= events);
}

describe("a client's bids against a competitor's higher bid, through the API alone", () => {
  it("shows the bids' standing, the price to win each back, the anonymous book, and live events as the competitor raises and withdraws", async () => {
    const host = await createAccount("host");
    const client = await createAccount("client");
    const competitor = await createAccount("competitor");
    const machine = await listMachineThroughApi(app, host.key, { numGpus: 4, pricePerGpuHour: "0.40", minBidPerGpuHour: "0.10" });
    const machineId = Number(machine.split(":")[1]);
    // Counted before the book's subscription starts: every event after its first answers a clearing counted from here.
    const clearingsBefore = clearings.get(machineId) ?? 0;
    const bidEvents = subscribe(app.url, client.key, `subscription { bids { ${BID_FIELDS} } }`);
    const bookEvents = subscribe(app.url, client.key, `subscription ($m: ID!) { orderBook(machineId: $m) { ${BOOK_FIELDS} } }`, { m: machine });
    const competitorEvents = subscribe(app.url, competitor.key, `subscription { bids { ${BID_FIELDS} } }`);
    /** The price a new bid for `numGpus` needs on the machine now, by offer search (anonymous). */
    const winningBid = async (numGpus: number) => {
      const offers = await app.gql(`{ offers(query: "machine_id=${machineId} num_gpus=${numGpus} verified=any rentable=any", first: 5) { edges { node { winningBid } } } }`);
      expect(offers.data.offers.edges, JSON.stringify(offers)).toHaveLength(1);
      return offers.data.offers.edges[0].node.winningBid;
    };
    /** The client's bids by id, once `settled` holds for them. */
    const clientBidsWhen = async (settled: (page: any) => boolean) => eventually(async () => {
      const page = await myBids(client.key);
      return settled(page) ? page : undefined;
    });
    try {
      await bookEvents.next((book) => book.machineId === machine && book.levels.length === 0);

      // The client's two bids, each placed once the previous one is ranked, so each creation's standing is known.
      const small = await placeBid(client.key, machineId, 2, "0.20", "client-small");
      await bidEvents.next((b) => b.id === bidId(small) && b.standing === "WINNING");
      const large = await placeBid(client.key, machineId, 2, "0.25", "client-large");
      await bidEvents.next((b) => b.id === bidId(large) && b.standing === "WINNING");

      // The competitor's higher bid takes the whole machine.
      let from = bidEvents.values.length;
      const rival = await placeBid(competitor.key, machineId, 4, "0.30", "rival-secret-label");
      for (const id of [small, large]) await bidEvents.next((b) => b.id === bidId(id) && b.standing === "OUTBID" && b.priceToWin === "0.300001", 10_000, from);
      await competitorEvents.next((b) => b.id === bidId(rival) && b.standing === "WINNING");

      // Standing and the price to win each back: the offer's winningBid for the bid's size.
      const outbid = await clientBidsWhen((page) => page.edges.every((e: any) => e.node.standing === "OUTBID" && e.node.priceToWin === "0.300001"));
      expect(outbid.totalCount).toBe(2);
      expect(outbid.edges.map((e: any) => e.node)).toEqual([
        expect.objectContaining({ id: bidId(large), machineId: machine, numGpus: 2, pricePerGpuHour: "0.25", standing: "OUTBID", priceToWin: "0.300001", instance: { id: large, label: "client-large" } }),
        expect.objectContaining({ id: bidId(small), machineId: machine, numGpus: 2, pricePerGpuHour: "0.20", standing: "OUTBID", priceToWin: "0.300001", instance: { id: small, label: "client-small" } }),
      ]);
      expect(await winningBid(2)).toBe("0.300001");
      // By standing, and paged.
      expect((await myBids(client.key, { status: ["WINNING"] })).totalCount).toBe(0);
      const first = await myBids(client.key, { status: ["OUTBID", "PREEMPTED_BY_ON_DEMAND"], first: 1 });
      expect(first).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
      const second = await myBids(client.key, { status: ["OUTBID"], first: 1, after: first.pageInfo.endCursor });
      expect(second).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: false } });
      expect(second.edges.map((e: any) => e.node.id)).toEqual([bidId(small)]);
      // The instance's own view of its bid.
      const view = (await app.gql(INSTANCE_BID, { id: small }, client.key)).data.instance;
      expect(view.bid).toEqual(outbid.edges[1].node);
      // Each bid sees only its owner: the competitor lists its own.
      const theirs = await myBids(competitor.key);
      expect(theirs.edges.map((e: any) => [e.node.id, e.node.standing, e.node.priceToWin])).toEqual([[bidId(rival), "WINNING", "0.300001"]]);

      // The book, anonymously, by the query, the machine and the offers: the competitor's level and nothing of who placed it.
      const expectedBook = {
        machineId: machine,
        numGpus: 4,
        onDemandGpus: 0,
        minBid: "0.10",
        clearingPrice: "0.30",
        levels: [
          { price: "0.30", gpus: 4, bids: 1, winningGpus: 4 },
          { price: "0.25", gpus: 2, bids: 1, winningGpus: 0 },
          { price: "0.20", gpus: 2, bids: 1, winningGpus: 0 },
        ],
      };
      const anonymous = await app.gql(
        `query ($m: ID!) { orderBook(machineId: $m) { ${BOOK_FIELDS} } machine(id: $m) { orderBook { ${BOOK_FIELDS} } }
           offers(query: "machine_id=${machineId} verified=any rentable=any", first: 5) { edges { node { orderBook { ${BOOK_FIELDS} } } } } }`,
        { m: machine },
      );
      expect(anonymous.errors).toBeUndefined();
      expect(anonymous.data.orderBook).toEqual(expectedBook);
      expect(anonymous.data.machine.orderBook).toEqual(expectedBook);
      expect(anonymous.data.offers.edges.length).toBeGreaterThan(0);
      for (const edge of anonymous.data.offers.edges) expect(edge.node.orderBook).toEqual(expectedBook);
      await bookEvents.next((book) => isDeepStrictEqual(book, expectedBook));
      const booksBefore = bookEvents.values.length;

      // The competitor raises: the client's bids stay outbid, with the new price to win each back, and the book moves.
      from = bidEvents.values.length;
      expect((await app.gql(CHANGE_BID, { id: rival, price: "0.45" }, competitor.key)).data.changeBid.__typename).toBe("MutationChangeBidSuccess");
      for (const id of [small, large]) await bidEvents.next((b) => b.id === bidId(id) && b.standing === "OUTBID" && b.priceToWin === "0.450001", 10_000, from);
      await bookEvents.next((book) => book.clearingPrice === "0.45" && book.levels[0].price === "0.45" && book.levels[0].winningGpus === 4, 10_000, booksBefore);
      await clientBidsWhen((page) => page.edges.every((e: any) => e.node.standing === "OUTBID" && e.node.priceToWin === "0.450001"));
      expect(await winningBid(2)).toBe("0.450001");

      // The competitor withdraws: the client's bids win back the machine.
      from = bidEvents.values.length;
      expect((await app.gql(DESTROY, { id: rival }, competitor.key)).data.destroyInstance.__typename).toBe("MutationDestroyInstanceSuccess");
      for (const id of [small, large]) await bidEvents.next((b) => b.id === bidId(id) && b.standing === "WINNING" && b.priceToWin === "0.200001", 10_000, from);
      const book = await bookEvents.next((b) => b.levels.length === 2, 10_000, booksBefore);
      expect(book).toEqual({
        ...expectedBook,
        clearingPrice: "0.20",
        levels: [
          { price: "0.25", gpus: 2, bids: 1, winningGpus: 2 },
          { price: "0.20", gpus: 2, bids: 1, winningGpus: 2 },
        ],
      });
      const won = await clientBidsWhen((page) => page.edges.every((e: any) => e.node.standing === "WINNING"));
      expect(won.edges.map((e: any) => [e.node.id, e.node.priceToWin])).toEqual([[bidId(large), "0.200001"], [bidId(small), "0.200001"]]);
      expect(await winningBid(2)).toBe("0.200001");
      expect((await myBids(competitor.key)).totalCount).toBe(0);

      await expectAtMostOneEventPerClearing(bookEvents, machineId, clearingsBefore);

      // Every price each bid held, when, and the standing it produced.
      const rivalView = (await app.gql(INSTANCE_BID, { id: rival }, competitor.key)).data.instance;
      expect(rivalView.bidHistory).toEqual([
        { price: "0.30", placedAt: expect.any(String), standing: "WINNING", priceToWin: "0.300001" },
        { price: "0.45", placedAt: expect.any(String), standing: "WINNING", priceToWin: "0.450001" },
      ]);
      expect(Date.parse(rivalView.bidHistory[1].placedAt)).toBeGreaterThan(Date.parse(rivalView.bidHistory[0].placedAt));
      // Withdrawn: no longer in the auction, its last price kept.
      expect(rivalView.bid).toMatchObject({ standing: null, priceToWin: null, pricePerGpuHour: "0.45" });
      expect((await app.gql(CHANGE_BID, { id: small, price: "0.22" }, client.key)).data.changeBid.__typename).toBe("MutationChangeBidSuccess");
      const mine = await eventually(async () => {
        const instance = (await app.gql(INSTANCE_BID, { id: small }, client.key)).data.instance;
        // The instance and its history are read one after the other: wait until both show the clearing.
        return instance.bidHistory[1]?.standing && instance.bid.priceToWin === "0.220001" ? instance : undefined;
      });
      expect(mine.bid).toMatchObject({ id: bidId(small), standing: "WINNING", pricePerGpuHour: "0.22", placedAt: mine.bidHistory[1].placedAt });
      expect(mine.bidHistory).toEqual([
        { price: "0.20", placedAt: expect.any(String), standing: "WINNING", priceToWin: "0.10" },
        { price: "0.22", placedAt: mine.bid.placedAt, standing: "WINNING", priceToWin: "0.220001" },
      ]);
      expect((await app.gql(INSTANCE_BID, { id: large }, client.key)).data.instance.bidHistory).toEqual([
        { price: "0.25", placedAt: expect.any(String), standing: "WINNING", priceToWin: "0.200001" },
      ]);

      // Neither side learns the other's ids or labels from any of it.
      for (const sub of [bidEvents, bookEvents, competitorEvents]) expect(sub.errors).toEqual([]);
      const clientSaw = JSON.stringify([bidEvents.values, bookEvents.values, anonymous, outbid]);
      for (const secret of [rival, bidId(rival), "rival-secret-label", `"${competitor.userId}"`]) expect(clientSaw).not.toContain(secret);
      const competitorSaw = JSON.stringify([competitorEvents.values, theirs]);
      for (const secret of [small, large, bidId(small), bidId(large), "client-small", "client-large"]) expect(competitorSaw).not.toContain(secret);
      expect(JSON.stringify(anonymous)).not.toMatch(/client-|Instance:|Bid:/);
    } finally {
      await bidEvents.close();
      await bookEvents.close();
      await competitorEvents.close();
    }
  });
});

describe("a busy machine's order book", () => {
  it("sends at most one event per clearing, the last one the book as the bidding left it", async () => {
    const host = await createAccount("host");
    const bidders = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => createAccount(`bidder${i}`)));
    const watcher = await createAccount("watcher");
    const machineId = await createListedMachine(host.userId, { numGpus: 4 });
    const clearingsBefore = clearings.get(machineId) ?? 0;
    const book = subscribe(app.url, watcher.key, `subscription ($m: ID!) { orderBook(machineId: $m) { ${BOOK_FIELDS} } }`, { m: String(machineId) });
    try {
      await book.next();
      // Six bidders at once, each then raising its bid: many clearings requested while others run.
      const placed = await Promise.all(bidders.map((bidder, i) => placeBid(bidder.key, machineId, 1, `0.2${i}`, `busy-${i}`)));
      const raised = await Promise.all(placed.map((id, i) => app.gql(CHANGE_BID, { id, price: `0.3${i}` }, bidders[i]!.key)));
      for (const response of raised) expect(response.data.changeBid.__typename).toBe("MutationChangeBidSuccess");
      const final = {
        machineId: `Machine:${machineId}`,
        numGpus: 4,
        onDemandGpus: 0,
        minBid: "0.10",
        clearingPrice: "0.32",
        levels: [5, 4, 3, 2, 1, 0].map((i) => ({ price: `0.3${i}`, gpus: 1, bids: 1, winningGpus: i >= 2 ? 1 : 0 })),
      };
      await book.next((b) => isDeepStrictEqual(b, final), 20_000);
      expect((await app.gql(ORDER_BOOK, { machineId: String(machineId) })).data.orderBook).toEqual(final);
      await expectAtMostOneEventPerClearing(book, machineId, clearingsBefore);
      expect(book.errors).toEqual([]);
    } finally {
      await book.close();
    }
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

  it("an unlisted, removed or unknown machine's book is NOT_FOUND, by query, subscription and offer", async () => {
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
    // Removed for good: still not found, and its host sees no book on it.
    const removed = await app.gql(`mutation ($id: ID!) { removeMachine(machineId: $id) { __typename } }`, { id: `Machine:${machineId}` }, host.key);
    expect(removed.data.removeMachine.__typename).toBe("MutationRemoveMachineSuccess");
    expect((await app.gql(ORDER_BOOK, { machineId: `Machine:${machineId}` })).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const hostView = await app.gql(`query ($id: ID!) { machine(id: $id) { removedAt orderBook { numGpus } } }`, { id: `Machine:${machineId}` }, host.key);
    expect(hostView.data.machine).toEqual({ removedAt: expect.any(String), orderBook: null });
  });
});
