import { queryFromInfo } from "@pothos/plugin-prisma";
import DataLoader from "dataloader";
import type { GraphQLResolveInfo } from "graphql";
import type { Prisma, User } from "../prisma/generated/client/client.ts";
import { prisma } from "./db.ts";
import { eventStream } from "./pubsub.ts";

/*
 * The `balance` subscription's side of the pubsub: its event stream (throttled) and the batched
 * refetch of the account that every event is answered with.
 */

/**
 * While metering runs, an account's balance moves every second: the metering job publishes one
 * event per account per tick, and a subscriber receives one event per metered second, at once
 * (comparing the seconds the ticks metered rather than arrival times, so that a tick's jitter never
 * holds one back). Anything else in between (usage reports) waits for the next tick or for this
 * long after the previous event, merged with whatever comes meanwhile; payments go out at once.
 */
const BALANCE_MIN_GAP_MS = 1000;

/** The account's balance events, throttled and merged as above; `null` first (pubsub.ts). */
export function balanceStream(userId: number) {
  return eventStream("balance", userId, {
    merge: (a, b) => ({ immediate: a.immediate || b.immediate, meteredUntil: Math.max(a.meteredUntil ?? 0, b.meteredUntil ?? 0) || undefined }),
    throttle: {
      minGapMs: BALANCE_MIN_GAP_MS,
      passes: (event, previous) => event.immediate || (event.meteredUntil !== undefined && event.meteredUntil !== previous?.meteredUntil),
    },
  });
}

type UserQuery = { select?: Prisma.UserSelect | null; include?: Prisma.UserInclude | null };
/** A planned query and its JSON, the key of the refetch batch it joins. */
type PlannedQuery = { query: UserQuery; shape: string };

/**
 * Pending refetches by selection. A metering tick wakes every balance subscriber of the process at
 * once; Prisma batches their findUnique calls itself but then matches each result to its call in
 * a loop over the batch (quadratic: 2,500 reads took ~0.3 s, 5,000 ~1.2 s, measured), so the
 * reads of one wake-up are instead one findMany per selection, matched by id.
 */
const pendingRefetches = new Map<string, DataLoader<number, User | undefined>>();

function refetchUser({ query, shape }: PlannedQuery, id: number): Promise<User | undefined> {
  let loader = pendingRefetches.get(shape);
  if (!loader) {
    const batch = new DataLoader<number, User | undefined>(
      async (ids) => {
        pendingRefetches.delete(shape); // later reads start a new batch: never a cached balance
        const select = query.select ? { ...query.select, id: true } : undefined;
        const users = (await prisma.user.findMany({ ...query, select, where: { id: { in: [...ids] } } })) as User[];
        const byId = new Map(users.map((user) => [user.id, user]));
        return ids.map((userId) => byId.get(userId));
      },
      // Every subscriber one Redis message wakes reads in this batch.
      { cache: false, batchScheduleFn: (dispatch) => setImmediate(dispatch) },
    );
    pendingRefetches.set(shape, (loader = batch));
  }
  return loader.load(id);
}

/**
 * A subscription's selection is the same for every event (one operation, fixed variables): its
 * query is planned on the first event and kept with the subscription's context. Planning it for
 * each event was ~15% of the API's CPU in a metering burst (bench/RESULTS.md).
 */
const plannedQueries = new WeakMap<object, PlannedQuery>();

function plannedQuery(context: object, info: GraphQLResolveInfo): PlannedQuery {
  let planned = plannedQueries.get(context);
  if (!planned) {
    const query = queryFromInfo({ context, info }) as UserQuery;
    plannedQueries.set(context, (planned = { query, shape: JSON.stringify(query) }));
  }
  return planned;
}

/** The account with the subscription's selection, read in the batch of its wake-up. */
export function refetchSubscribedUser(context: object, info: GraphQLResolveInfo, userId: number): Promise<User | undefined> {
  return refetchUser(plannedQuery(context, info), userId);
}
