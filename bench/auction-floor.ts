import pg from "pg";
import type { PlannedBid } from "./auction-load.ts";

/**
 * The auction's floor: the same database work as a bid and its clearing, written by hand and sent
 * from this one process through bare `pg` clients (no API, no queue, no ORM), at the product's
 * concurrency: each client admits its next bid in one transaction (machine lock, account lock with
 * its credit check, the instance and its history row) and then clears that machine in another
 * (machine lock, live contracts, on-demand first then bids by price and age, status changes and their
 * history rows in one statement each). Bid-to-cleared latency is from BEGIN of the admission to
 * COMMIT of the clearing. Left out, as small beside these: the instance's API key row and the paused
 * bids' "outbid" messages.
 */

const ADMIT_MACHINE = `SELECT num_gpus, min_bid_per_gpu_hour_micros AS "minBid", storage_price_per_gb_month_micros AS storage,
                              inet_up_price_per_gb_micros AS up, inet_down_price_per_gb_micros AS down, end_date AS "endDate"
                         FROM machine WHERE id = $1 AND listed FOR UPDATE`;
const ADMIT_ACCOUNT = `SELECT balance_micros > 0 AS funded FROM user_account WHERE id = $1 FOR UPDATE`;
const ADMIT_INSERT = `
  WITH created AS (
    INSERT INTO instance (client_id, machine_id, kind, num_gpus, price_per_gpu_hour_micros, storage_price_per_gb_month_micros,
                          inet_up_price_per_gb_micros, inet_down_price_per_gb_micros, end_date, bid_per_gpu_hour_micros, bid_placed_at,
                          image, disk_gb, launch_mode, onstart, env, ports, status, intended_status, status_changed_at)
    VALUES ($1, $2, 'INTERRUPTIBLE', $3, $4, $5, $6, $7, $8, $4, now(), 'ubuntu:22.04', 10, 'SSH', '', '[]', '{}', 'SCHEDULING', 'RUNNING', now())
    RETURNING id)
  INSERT INTO instance_status_change (instance_id, from_status, to_status, event, at)
  SELECT id, NULL, 'SCHEDULING', 'CREATED', now() FROM created RETURNING instance_id AS id`;
const CLEAR_LOCK = `SELECT num_gpus FROM machine WHERE id = $1 FOR UPDATE`;
const CLEAR_CONTRACTS = `
  SELECT id, num_gpus, kind, bid_per_gpu_hour_micros AS bid, status
    FROM instance WHERE machine_id = $1 AND intended_status = 'RUNNING' AND status IN ('SCHEDULING', 'LOADING', 'RUNNING', 'PAUSED')
   ORDER BY kind = 'ON_DEMAND' DESC, bid_per_gpu_hour_micros DESC, bid_placed_at, id`;
const CLEAR_APPLY = `
  WITH moved AS (
    UPDATE instance SET status = v.status::"InstanceStatus", status_changed_at = now()
      FROM unnest($1::int[], $2::text[]) AS v(id, status)
     WHERE instance.id = v.id
    RETURNING instance.id, v.status)
  INSERT INTO instance_status_change (instance_id, from_status, to_status, event, at)
  SELECT moved.id, NULL, moved.status::"InstanceStatus", 'CLEARED', now() FROM moved`;

interface Contract {
  id: number;
  num_gpus: number;
  kind: string;
  status: string;
}

/** Which contracts change status: GPUs go to on-demand rentals first, then to bids in order; the rest pause. */
function clearing(gpus: number, contracts: Contract[]): { ids: number[]; statuses: string[] } {
  let free = gpus;
  const ids: number[] = [];
  const statuses: string[] = [];
  for (const contract of contracts) {
    const runs = contract.kind === "ON_DEMAND" || contract.num_gpus <= free;
    if (runs) free -= contract.num_gpus;
    const next = runs ? (contract.status === "SCHEDULING" || contract.status === "PAUSED" ? "LOADING" : contract.status) : "PAUSED";
    if (next !== contract.status) {
      ids.push(contract.id);
      statuses.push(next);
    }
  }
  return { ids, statuses };
}

export interface FloorResult {
  admitted: number;
  refused: number;
  elapsedMs: number;
  /** Admission BEGIN to clearing COMMIT, ascending. */
  latencies: number[];
}

/** Runs `plan` against `databaseUrl` (seeded like the product's) from `clientIds.length` connections, one account each. */
export async function runAuctionFloor(databaseUrl: string, clientIds: readonly number[], plan: readonly PlannedBid[]): Promise<FloorResult> {
  const clients = await Promise.all(
    clientIds.map(async () => {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      return client;
    }),
  );
  let next = 0;
  let refused = 0;
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    clients.map(async (client, i) => {
      for (let index = next++; index < plan.length; index = next++) {
        const bid = plan[index];
        const t0 = performance.now();
        const micros = BigInt(Math.round(Number(bid.price) * 1_000_000));
        await client.query("BEGIN");
        const [machine] = (await client.query(ADMIT_MACHINE, [bid.machineId])).rows;
        const [account] = (await client.query(ADMIT_ACCOUNT, [clientIds[i]])).rows;
        if (!machine || !account?.funded || micros < BigInt(machine.minBid ?? 0) || bid.numGpus > machine.num_gpus) {
          await client.query("ROLLBACK");
          refused++;
          continue;
        }
        await client.query(ADMIT_INSERT, [clientIds[i], bid.machineId, bid.numGpus, micros, machine.storage, machine.up, machine.down, machine.endDate]);
        await client.query("COMMIT");
        await client.query("BEGIN");
        const [{ num_gpus: gpus }] = (await client.query(CLEAR_LOCK, [bid.machineId])).rows;
        const { ids, statuses } = clearing(gpus, (await client.query<Contract>(CLEAR_CONTRACTS, [bid.machineId])).rows);
        if (ids.length) await client.query(CLEAR_APPLY, [ids, statuses]);
        await client.query("COMMIT");
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  await Promise.all(clients.map((client) => client.end()));
  return { admitted: latencies.length, refused, elapsedMs, latencies: latencies.sort((a, b) => a - b) };
}
