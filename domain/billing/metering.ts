import { isBoundViolation, meteringPrisma, type Tx } from "../../infra/db.ts";
import { config } from "../../infra/config.ts";
import { logger } from "../../infra/logger.ts";
import { PERIOD_SECONDS, SECONDS_PER_HOUR, SECONDS_PER_STORAGE_MONTH, periodStart } from "./rates.ts";

/*
 * Per-second metering of GPU and storage time (rules and rounding: rates.ts).
 *
 * Accounts are metered in METERING_PHASES phases by client id (an accrual row goes with its client),
 * a fraction of a second apart: the job runs every 1000 / METERING_PHASES ms and takes the phase
 * whose clock is oldest, so each phase's balances move once a second, at their own moment. One
 * commit for every account would move all their balances at the same instant, and the balance
 * subscription would then owe all of them an event at once (bench/RESULTS.md, "Subscriptions").
 * Hosts, earning from clients of every phase, are credited by each phase's tick.
 *
 * Each phase's clock (metering_clock.metered_until, row id = phase + 1, whole seconds) says up to
 * when its rows have been charged. A tick takes the window [clock, now − lag), and in ONE
 * transaction, with the clock row locked and ticks of all phases serialized by one advisory lock:
 *
 * 1. reconciles the accrual rows with what happened in the window: an open row (time_accrual with
 *    ended_at null) is a stretch at one rate; it is closed and another opened only when the rate
 *    changes (status, machine online, bid, billing period). Statuses come from the instance's status
 *    history, so a change is cut at its second even when the metering was down for hours. Only the
 *    instances flagged by indexes (status or bid changed in the window, machine clearing pending)
 *    are looked at closely, plus, once a minute, those a full comparison finds mismatched;
 *    their ids go to the reconciling statement as an array (skipped when empty, the usual case), so
 *    that its plan fits 10 candidates or 100,000 (a misestimated nested loop over 10,000 cost 30 s).
 *    Each open row also has a narrow copy in open_time_accrual (rate = price × units, start in
 *    epoch seconds, the client's phase), inserted and deleted by the same statement that opens and
 *    closes the row.
 * 2. charges every row overlapping the window the difference floor(total at the window's end) −
 *    floor(total at its start) — so each row is charged exactly floor(its whole total), the
 *    per-row rule of rates.ts — summed per account, kind and category into that period's CHARGE
 *    (client, negative) and EARNING (host) ledger entries, and moves the balances by the same sums.
 *    The rows are the phase's open ones, from open_time_accrual (integers only; index on phase),
 *    and the few closed since the window's start (index on ended_at).
 * 3. advances the clock.
 *
 * So a retried or duplicated tick finds the clock moved and charges nothing twice; a crash rolls the
 * whole tick back and the next one charges the same seconds; a pause of any length is caught up
 * window by window (a window never crosses a billing period). Writes per tick do not grow with the
 * number of instances: only ledger entries (one per account, kind and category) and balances move,
 * every tick; accrual rows change on state changes and once per period.
 *
 * Cost at 100,000 running instances (bench/RESULTS.md): the per-row floors need every open row of
 * the phase each tick (a sum of floors is not the floor of a sum, so per-account rate totals cannot
 * give the exact figure), but from the narrow table that is a scan and aggregation of integers; the
 * rest is the phase's ledger entries and balances updated in place (hosts' in every phase).
 *
 * What is read at the tick rather than from history: the machine's online flag and an interruptible
 * instance's bid. They apply from the start of the window in which they are seen: a bid change is
 * seen at once (bid_placed_at), an online change while its machine's clearing is pending
 * (clearing_requested_at, set by every event that changes who runs there), and in any case by the
 * full comparison of every open row with its instance that runs once a minute and at each period
 * start. (An outage also moves running instances out of RUNNING, which history cuts exactly.)
 * The lag (METERING_LAG_SECONDS) lets status changes stamped just before `now` commit first.
 */

export interface TickResult {
  /** The phase metered; null for all of them (meterUpTo without a phase). */
  phase: number | null;
  /** The window charged, epoch seconds; null when the clock was already there. */
  from: number | null;
  to: number | null;
  /** Accrual rows closed and opened, and ledger entries written, over all windows. */
  closed: number;
  opened: number;
  ledgerRows: number;
  /** The accounts whose balance moved: the phase's clients charged and their hosts credited. */
  accounts: number[];
  /** Accounts put on hold by this tick: a charge of theirs would have crossed the balance bounds. */
  held: number[];
}

/** Every this many seconds (and at each period start) a tick compares every open row with its instance. */
const FULL_CHECK_SECONDS = 60;
const STORAGE_MONTH = SECONDS_PER_STORAGE_MONTH.toString();
const HOUR = SECONDS_PER_HOUR.toString();

/** floor(price × units × seconds / unit) for a time_accrual row `a` over `secs` seconds, in SQL. */
function amountSql(a: string, secs: string): string {
  return `((${a}.unit_price_micros * ${a}.units * (${secs})) / CASE ${a}.category WHEN 'GPU' THEN ${HOUR} ELSE ${STORAGE_MONTH} END)`;
}

const epoch = (column: string) => `floor(extract(epoch FROM ${column}))::bigint`;

/**
 * The number of metering phases. Changing it moves accounts between clocks: only with every
 * metering worker stopped and every clock at the same second.
 */
export const METERING_PHASES = 8;

/** The metering phase of the account whose id is the SQL expression `clientId`. */
const phaseSql = (clientId: string) => `(${clientId} % ${METERING_PHASES})`;

/** Up to when (epoch seconds) the time accruals of the client `clientId` (SQL) are charged. */
export const meteredUntilSql = (clientId: string) =>
  `coalesce((SELECT ${epoch("metered_until")} FROM metering_clock WHERE id = 1 + ${phaseSql(clientId)}), 0)`;

/** Serializes ticks of every phase: they credit the same hosts. */
const TICK_LOCK = 0x6d65746572; // "meter"

/**
 * The instances of phase $4 a tick of the window from $1 in period $2 (epoch seconds) must look at
 * closely, as an array of ids; usually none.
 */
const CANDIDATES = `
SELECT coalesce(array_agg(instance_id), '{}') AS ids FROM (
  -- Every tick: instances whose status or bid changed in the window, and those on machines whose
  -- clearing is pending (one narrow scan of instance, no join).
  SELECT id AS instance_id FROM instance
   WHERE (status_changed_at >= to_timestamp($1) OR (kind = 'INTERRUPTIBLE' AND bid_placed_at >= to_timestamp($1)))
     AND ${phaseSql("client_id")} = $4
  UNION
  SELECT i.id FROM machine ma JOIN instance i ON i.machine_id = ma.id
   WHERE ma.clearing_requested_at IS NOT NULL AND i.status <> 'DESTROYED' AND ${phaseSql("i.client_id")} = $4
  UNION
  -- The full comparison ($3): at period starts and once a minute, as the safety net for changes of
  -- the online flag or bid that no clearing request or bid time points at. Every live instance
  -- unchanged in the window against its open rows.
  SELECT coalesce(s.instance_id, o.instance_id)
    FROM (SELECT * FROM (
            SELECT i.id AS instance_id, c.category,
                   NULLIF(CASE WHEN c.category = 'GPU'
                               THEN CASE WHEN i.status = 'RUNNING' AND ma.online
                                         THEN CASE WHEN i.kind = 'ON_DEMAND' THEN i.price_per_gpu_hour_micros ELSE i.bid_per_gpu_hour_micros END END
                               ELSE CASE WHEN ma.online THEN i.storage_price_per_gb_month_micros END END, 0) AS price,
                   CASE WHEN c.category = 'GPU' THEN i.num_gpus ELSE i.disk_gb END AS units
              FROM instance i JOIN machine ma ON ma.id = i.machine_id
             CROSS JOIN (VALUES ('GPU'::"ChargeCategory"), ('STORAGE'::"ChargeCategory")) AS c(category)
             WHERE $3::boolean AND i.status <> 'DESTROYED' AND i.status_changed_at < to_timestamp($1)
               AND ${phaseSql("i.client_id")} = $4) x
           WHERE price IS NOT NULL) s
    FULL JOIN (SELECT id, instance_id, category, unit_price_micros, units, period_start FROM time_accrual
                WHERE $3::boolean AND ended_at IS NULL AND ${phaseSql("client_id")} = $4) o
      ON o.instance_id = s.instance_id AND o.category = s.category
   WHERE s.instance_id IS NULL OR o.id IS NULL OR o.unit_price_micros <> s.price OR o.units <> s.units
      OR o.period_start <> to_timestamp($2)
) c`;

/**
 * Brings the accrual rows of the candidate instances $4 (from CANDIDATES) in line with the window
 * [$1, $2) of period $3 (epoch seconds). The candidates come as an array so that the planner knows
 * how many there are (none to all) and picks its joins accordingly. Pieces are the stretches of one
 * status; islands merge consecutive pieces of the same rate; the first island continues the open
 * row when its rate, units and period match, otherwise the open row ends at $1.
 */
const RECONCILE = `
WITH cat AS (
  SELECT * FROM (VALUES ('GPU'::"ChargeCategory"), ('STORAGE'::"ChargeCategory")) AS c(category)
), candidates AS (
  SELECT unnest($4::int[]) AS instance_id
), cinst AS (
  -- The instances looked at closely.
  SELECT i.id, i.client_id, i.machine_id, ma.host_id, i.status, i.status_changed_at >= to_timestamp($1) AS changed,
         ma.online, i.num_gpus, i.disk_gb,
         CASE WHEN i.kind = 'ON_DEMAND' THEN i.price_per_gpu_hour_micros ELSE i.bid_per_gpu_hour_micros END AS gpu_price,
         i.storage_price_per_gb_month_micros AS storage_price
    FROM candidates c JOIN instance i ON i.id = c.instance_id JOIN machine ma ON ma.id = i.machine_id
), ev AS (
  SELECT h.instance_id, ${epoch("h.at")} AS sec, h.from_status, h.to_status,
         row_number() OVER w AS n, lead(${epoch("h.at")}) OVER w AS next_sec
    FROM cinst JOIN instance_status_change h ON h.instance_id = cinst.id AND h.at >= to_timestamp($1)
   WHERE cinst.changed
  WINDOW w AS (PARTITION BY h.instance_id ORDER BY h.at, h.id)
), pieces AS (
  -- Unchanged, or (never from the services, which write both at once) a change without history: as it is now.
  SELECT c.id AS instance_id, $1::bigint AS p_from, $2::bigint AS p_to, c.status
    FROM cinst c LEFT JOIN (SELECT DISTINCT instance_id FROM ev) e ON e.instance_id = c.id
   WHERE NOT c.changed OR e.instance_id IS NULL
  UNION ALL
  -- Before the first change in the window (nothing when the instance was created in it).
  SELECT instance_id, $1::bigint, least(sec, $2::bigint), from_status FROM ev WHERE n = 1 AND from_status IS NOT NULL
  UNION ALL
  SELECT instance_id, sec, least(coalesce(next_sec, $2::bigint), $2::bigint), to_status FROM ev WHERE sec < $2::bigint
), rated AS (
  SELECT p.instance_id, c.category, p.p_from, p.p_to,
         NULLIF(CASE WHEN c.category = 'GPU' THEN CASE WHEN p.status = 'RUNNING' AND i.online THEN i.gpu_price END
                     ELSE CASE WHEN p.status <> 'DESTROYED' AND i.online THEN i.storage_price END END, 0) AS price,
         CASE WHEN c.category = 'GPU' THEN i.num_gpus ELSE i.disk_gb END AS units
    FROM pieces p JOIN cinst i ON i.id = p.instance_id CROSS JOIN cat c
   WHERE p.p_from < p.p_to
), marked AS (
  SELECT *, CASE WHEN lag(price) OVER w IS NOT DISTINCT FROM price THEN 0 ELSE 1 END AS brk
    FROM rated WINDOW w AS (PARTITION BY instance_id, category ORDER BY p_from)
), islands AS (
  SELECT instance_id, category, price, min(units) AS units, min(p_from) AS s, max(p_to) AS e
    FROM (SELECT *, sum(brk) OVER (PARTITION BY instance_id, category ORDER BY p_from) AS g FROM marked) x
   GROUP BY instance_id, category, g, price
), decision AS (
  SELECT o.id, o.instance_id, o.category, f.e,
         coalesce(f.price = o.unit_price_micros AND f.units = o.units AND o.period_start = to_timestamp($3), false) AS continues
    FROM candidates c JOIN time_accrual o ON o.instance_id = c.instance_id AND o.ended_at IS NULL
    LEFT JOIN islands f ON f.instance_id = o.instance_id AND f.category = o.category AND f.s = $1::bigint
), closed AS (
  UPDATE time_accrual a
     SET ended_at = to_timestamp(x.end_sec),
         seconds = x.end_sec - ${epoch("a.started_at")},
         amount_micros = ${amountSql("a", `x.end_sec - ${epoch("a.started_at")}`)}
    FROM (SELECT id, CASE WHEN continues THEN e ELSE $1::bigint END AS end_sec FROM decision
           WHERE NOT (continues AND e = $2::bigint)) x
   WHERE a.id = x.id
  RETURNING a.id
), unlisted AS (
  DELETE FROM open_time_accrual o USING closed c WHERE o.accrual_id = c.id
), opened AS (
  INSERT INTO time_accrual (instance_id, client_id, host_id, machine_id, category, period_start, unit_price_micros,
                            units, started_at, ended_at, seconds, amount_micros)
  SELECT s.instance_id, i.client_id, i.host_id, i.machine_id, s.category, to_timestamp($3), s.price, s.units, to_timestamp(s.s),
         CASE WHEN s.e < $2::bigint THEN to_timestamp(s.e) END,
         CASE WHEN s.e < $2::bigint THEN s.e - s.s END,
         CASE WHEN s.e < $2::bigint THEN (s.price * s.units * (s.e - s.s)) / CASE s.category WHEN 'GPU' THEN ${HOUR} ELSE ${STORAGE_MONTH} END END
    FROM islands s JOIN cinst i ON i.id = s.instance_id
   WHERE s.price IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM decision d
                      WHERE d.instance_id = s.instance_id AND d.category = s.category AND d.continues AND s.s = $1::bigint)
  RETURNING id, client_id, host_id, category, unit_price_micros * units AS rate, started_at, ended_at
), listed AS (
  INSERT INTO open_time_accrual (accrual_id, client_id, host_id, category, rate_micros, started_sec, phase)
  SELECT id, client_id, host_id, category, rate, ${epoch("started_at")}, ${phaseSql("client_id")} FROM opened WHERE ended_at IS NULL
)
SELECT (SELECT count(*) FROM closed)::int AS closed, (SELECT count(*) FROM opened)::int AS opened`;

/**
 * Charges every accrual row of phase $5 overlapping [$1, $2): floor(total at min(end, $2)) − floor(total at
 * max(start, $1)), for the client (CHARGE, negative) and the host (EARNING, its share after the
 * fee $4 in basis points), into the period $3's ledger entries and the balances, in one statement.
 * The rows are the open ones, read from the narrow open_time_accrual (integer columns only: one
 * sequential scan, no timestamp arithmetic), and the few closed since $1. One aggregation per
 * (client, host, category) yields both sides. Balances are locked in id order so that concurrent
 * writers of several accounts never deadlock.
 */
const MOVES = `
WITH seg AS (
  SELECT client_id, host_id, category, rate_micros AS rate, started_sec AS s, $2::bigint AS e FROM open_time_accrual
   WHERE phase = $5 AND client_id <> ALL($6::int[]) AND host_id <> ALL($6::int[])
  UNION ALL
  SELECT client_id, host_id, category, unit_price_micros * units, ${epoch("started_at")}, least(${epoch("ended_at")}, $2::bigint)
    FROM time_accrual WHERE ended_at > to_timestamp($1) AND ${phaseSql("client_id")} = $5
     AND client_id <> ALL($6::int[]) AND host_id <> ALL($6::int[])
), amounts AS (
  SELECT client_id, host_id, category,
         rate * (e - s) / CASE category WHEN 'GPU' THEN ${HOUR} ELSE ${STORAGE_MONTH} END AS upto,
         rate * (greatest(s, $1::bigint) - s) / CASE category WHEN 'GPU' THEN ${HOUR} ELSE ${STORAGE_MONTH} END AS before
    FROM seg
), pairs AS (
  SELECT client_id, host_id, category, sum(upto - before) AS charge,
         sum((upto - (upto * $4::bigint) / 10000) - (before - (before * $4::bigint) / 10000)) AS earning
    FROM amounts GROUP BY client_id, host_id, category
), moves AS (
  SELECT client_id AS user_id, 'CHARGE'::"LedgerEntryKind" AS kind, category, -sum(charge) AS amount
    FROM pairs GROUP BY client_id, category
  UNION ALL
  SELECT host_id, 'EARNING'::"LedgerEntryKind", category, sum(earning) FROM pairs GROUP BY host_id, category
), nonzero AS (
  SELECT * FROM moves WHERE amount <> 0
)`;

const CHARGE = `${MOVES}, locked AS (
  -- Before any write. NO KEY: the balance is no key, so inserts that reference the account go on.
  SELECT u.id FROM user_account u WHERE u.id IN (SELECT user_id FROM nonzero) ORDER BY u.id FOR NO KEY UPDATE
), grown AS (
  -- A plain UPDATE of the period's entries (cheaper than an upsert per row); only ticks, which the
  -- clock serializes, write CHARGE and EARNING entries of time categories.
  UPDATE ledger_entry l SET amount_micros = l.amount_micros + n.amount
    FROM nonzero n
   WHERE l.user_id = n.user_id AND l.kind = n.kind AND l.category = n.category AND l.period_start = to_timestamp($3)
     AND (SELECT count(*) FROM locked) >= 0
  RETURNING l.user_id, l.kind, l.category
), created AS (
  -- The period's first charge of an account and category.
  INSERT INTO ledger_entry (user_id, kind, category, period_start, amount_micros, description)
  SELECT n.user_id, n.kind, n.category, to_timestamp($3), n.amount,
         initcap(replace(n.category::text, '_', ' ')) || CASE n.kind WHEN 'CHARGE' THEN ' charges ' ELSE ' earnings ' END
           || to_char(to_timestamp($3) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    FROM nonzero n
   WHERE (SELECT count(*) FROM locked) >= 0
     AND NOT EXISTS (SELECT 1 FROM grown g WHERE g.user_id = n.user_id AND g.kind = n.kind AND g.category = n.category)
  RETURNING id
), balances AS (
  UPDATE user_account u SET balance_micros = u.balance_micros + t.amount
    FROM (SELECT user_id, sum(amount) AS amount FROM nonzero GROUP BY user_id) t
   WHERE u.id = t.user_id AND (SELECT count(*) FROM locked) >= 0
  RETURNING u.id
)
SELECT ((SELECT count(*) FROM grown) + (SELECT count(*) FROM created))::int AS "ledgerRows",
       (SELECT coalesce(array_agg(id), '{}') FROM balances) AS accounts`;

/** Balances and ledger amounts stay within ±MAX_MONEY_MICROS (CHECK constraints, migration money_bounds). */
export const MAX_MONEY_MICROS = 1_000_000_000_000_000n;

/** The accounts whose move in CHARGE (same parameters) would take a balance or a ledger entry past the bounds. */
const OUT_OF_BOUNDS = `${MOVES}
SELECT coalesce(array_agg(DISTINCT x.user_id), '{}') AS ids FROM (
  SELECT t.user_id FROM (SELECT user_id, sum(amount) AS amount FROM nonzero GROUP BY user_id) t
    JOIN user_account u ON u.id = t.user_id
   WHERE abs(u.balance_micros::numeric + t.amount) > ${MAX_MONEY_MICROS}
  UNION ALL
  SELECT n.user_id FROM nonzero n
    LEFT JOIN ledger_entry l ON l.user_id = n.user_id AND l.kind = n.kind AND l.category = n.category AND l.period_start = to_timestamp($3)
   WHERE abs(coalesce(l.amount_micros, 0)::numeric + n.amount) > ${MAX_MONEY_MICROS}
) x`;

/**
 * Charges the phase's window (CHARGE) without letting one account stall it: when a move would
 * cross a bound, the statement is undone (savepoint), the accounts it would take past the bounds
 * are put on hold (recorded with the reason, logged as an error), and the window is charged for
 * everyone else. Held accounts' rows are left out of every tick (their instances are stopped by
 * the metering job); the clock moves on.
 */
async function chargeIsolating(tx: Tx, from: number, to: number, period: number, phase: number, now: Date): Promise<{ ledgerRows: number; accounts: number[]; held: number[] }> {
  const heldNow: number[] = [];
  for (;;) {
    const [{ ids: held }] = await tx.$queryRaw<{ ids: number[] }[]>`
      SELECT coalesce(array_agg(id), '{}') AS ids FROM user_account WHERE metering_held_at IS NOT NULL`;
    await tx.$executeRaw`SAVEPOINT charge`;
    try {
      const [charged] = await tx.$queryRawUnsafe<{ ledgerRows: number; accounts: number[] }[]>(CHARGE, from, to, period, config().PLATFORM_FEE_BPS, phase, held);
      await tx.$executeRaw`RELEASE SAVEPOINT charge`;
      return { ...charged, held: heldNow };
    } catch (error) {
      if (!isBoundViolation(error)) throw error;
      await tx.$executeRaw`ROLLBACK TO SAVEPOINT charge`;
      const [{ ids }] = await tx.$queryRawUnsafe<{ ids: number[] }[]>(OUT_OF_BOUNDS, from, to, period, config().PLATFORM_FEE_BPS, phase, held);
      // Nothing found to isolate: not a bound this tick can get around.
      if (ids.length === 0) throw error;
      const reason = `metering charge of phase ${phase} at ${new Date(to * 1000).toISOString()} would cross the balance bounds (±$1,000,000,000)`;
      await tx.$executeRaw`UPDATE user_account SET metering_held_at = ${now}, metering_hold_reason = ${reason}
        WHERE id = ANY(${ids}::int[]) AND metering_held_at IS NULL`;
      logger.error({ accounts: ids, phase, to }, "metering hold: charges of these accounts would cross the balance bounds; they are left out and their instances stopped");
      heldNow.push(...ids);
    }
  }
}

/**
 * Creates the phases' clocks that do not exist, at the oldest existing clock (a database metered
 * before phases had one clock for everyone), else at the oldest live instance (a new database).
 */
async function createClocks(db: Pick<Tx, "$executeRaw">, fallback: number): Promise<void> {
  await db.$executeRaw`
    INSERT INTO metering_clock (id, metered_until)
    SELECT g, coalesce((SELECT min(metered_until) FROM metering_clock),
                       (SELECT min(date_trunc('second', created_at)) FROM instance WHERE status <> 'DESTROYED'),
                       to_timestamp(${fallback}))
      FROM generate_series(1, ${METERING_PHASES}::int) g
    ON CONFLICT (id) DO NOTHING`;
}

/** Locks the phase's clock and returns it (epoch seconds). */
async function lockClock(tx: Tx, phase: number, fallback: number): Promise<number> {
  const select = () =>
    tx.$queryRawUnsafe<{ sec: bigint }[]>(`SELECT ${epoch("metered_until")} AS sec FROM metering_clock WHERE id = $1 FOR UPDATE`, phase + 1);
  let [clock] = await select();
  if (!clock) {
    // Once per database.
    await createClocks(tx, fallback);
    [clock] = await select();
  }
  return Number(clock.sec);
}

/** Adds `part` (a window, or another phase's tick) to `total`: their span, counts and accounts. */
function accumulate(total: TickResult, part: Omit<TickResult, "phase">): void {
  if (part.from !== null) total.from = Math.min(total.from ?? part.from, part.from);
  if (part.to !== null) total.to = Math.max(total.to ?? part.to, part.to);
  total.closed += part.closed;
  total.opened += part.opened;
  total.ledgerRows += part.ledgerRows;
  total.accounts = [...new Set([...total.accounts, ...part.accounts])];
  total.held = [...new Set([...total.held, ...part.held])];
}

const targetSecond = (now: Date) => Math.floor(now.getTime() / 1000) - config().METERING_LAG_SECONDS;

/**
 * Charges the rows of `phase` (every phase, one after the other, when omitted) up to `now` − lag
 * (whole seconds), one transaction per window; returns what it did. Safe to run concurrently and
 * to retry: ticks are serialized, and each starts from its phase's clock.
 */
export async function meterUpTo(now = new Date(), phase?: number): Promise<TickResult> {
  if (phase === undefined) {
    const all: TickResult = { phase: null, from: null, to: null, closed: 0, opened: 0, ledgerRows: 0, accounts: [], held: [] };
    for (let each = 0; each < METERING_PHASES; each++) accumulate(all, await meterUpTo(now, each));
    return all;
  }
  const target = targetSecond(now);
  const result: TickResult = { phase, from: null, to: null, closed: 0, opened: 0, ledgerRows: 0, accounts: [], held: [] };
  for (;;) {
    const window = await meteringPrisma.$transaction(
      async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(${TICK_LOCK}::bigint)`;
        const from = await lockClock(tx, phase, target);
        if (from >= target) return null;
        // The tick's joins and sorts span every open row: in memory, not spilled to disk. JIT off: the
        // planner's estimates for the history path are huge, and compiling took ~0.9 s of a 1 s tick.
        await tx.$executeRaw`SET LOCAL work_mem = '64MB'`;
        await tx.$executeRaw`SET LOCAL jit = off`;
        const period = periodStart(from);
        const to = Math.min(target, period + PERIOD_SECONDS);
        // The full comparison when the window holds a period start or a whole minute.
        const full = from === period || Math.ceil(from / FULL_CHECK_SECONDS) * FULL_CHECK_SECONDS < to;
        const [{ ids }] = await tx.$queryRawUnsafe<{ ids: number[] }[]>(CANDIDATES, from, period, full, phase);
        const [changes] = ids.length
          ? await tx.$queryRawUnsafe<{ closed: number; opened: number }[]>(RECONCILE, from, to, period, ids)
          : [{ closed: 0, opened: 0 }];
        const charged = await chargeIsolating(tx, from, to, period, phase, now);
        await tx.$executeRaw`UPDATE metering_clock SET metered_until = to_timestamp(${to}) WHERE id = ${phase + 1}`;
        return { from, to, ...changes, ...charged };
      },
      { timeout: 120_000 },
    );
    if (!window) return result;
    accumulate(result, window);
    if (window.to >= target) return result;
  }
}

/**
 * The metering job's tick: the phase whose clock is oldest (ties: the lowest), up to `now` − lag.
 * Run every 1000 / METERING_PHASES ms, it meters each phase once a second at its own moment, and
 * a lost or late run is caught up by the next ones.
 */
export async function meterOldestPhase(now = new Date()): Promise<TickResult> {
  const oldest = () =>
    meteringPrisma.$queryRaw<{ phase: number; clocks: number }[]>`
      SELECT id - 1 AS phase, count(*) OVER ()::int AS clocks FROM metering_clock ORDER BY metered_until, id LIMIT 1`;
  let [clock] = await oldest();
  if (!clock || clock.clocks < METERING_PHASES) {
    await createClocks(meteringPrisma, targetSecond(now));
    [clock] = await oldest();
  }
  return meterUpTo(now, clock.phase);
}
