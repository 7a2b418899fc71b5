/*
 * A machine's reliability score: an exponentially decayed average of how well it served, from its
 * history of outages, disconnects and failed assignments.
 *
 *   reliability = G / W
 *
 * Both sums decay continuously with a half-life H (7 days), λ = ln 2 / H. Over Δ seconds in which
 * the machine stayed in one state (online = s ∈ {0, 1}), with d = e^(−λΔ):
 *
 *   G ← G·d + s·(1 − d)/λ        (decayed seconds online)
 *   W ← W·d + (1 − d)/λ          (decayed seconds observed)
 *
 * which is the exact integral of the decayed time, so updating at any instants gives the same result.
 * Events add weight without credit, as if the machine had been down that long:
 *
 *   a disconnect (heartbeats stop: the machine goes offline)   W += 1 hour
 *   a failed assignment (the agent reports FAILED)             W += 30 minutes
 *
 * Outages count through s = 0 for their whole length. Time inside a maintenance window the host
 * announced (in_maintenance) is left out: both sums only decay, so the score stays as it was, and
 * neither a disconnect nor a failure then adds weight. The record starts at the agent's first
 * heartbeat from the machine's stored score (0.9 for a new machine) with one day of weight, so its
 * first hours move it moderately. A machine whose agent never connected keeps its stored score.
 *
 * The sums live on the machine row with the instant they were decayed to (reliability_at). They are
 * advanced at each state change (offline, back online, failure) and by the liveness job whenever
 * the score moved by at least REFRESH_STEP, which then brings the machine's offers up to date
 * (syncOffers), where the default ranking uses it.
 */

const HALF_LIFE_SECONDS = 7 * 86_400;
const LAMBDA = Math.LN2 / HALF_LIFE_SECONDS;
export const DISCONNECT_PENALTY_SECONDS = 3_600;
export const FAILED_ASSIGNMENT_PENALTY_SECONDS = 1_800;
/** The smallest change of the score worth writing to the machine's offers. */
export const REFRESH_STEP = 0.001;

/** e^(−λΔ) for the seconds between the row's reliability_at and `now` (a SQL timestamptz expression). */
function decay(now: string): string {
  return `exp(${-LAMBDA} * greatest(0, extract(epoch FROM (${now} - reliability_at))))`;
}

/** The row's decayed sums and score at `now`, the machine having been in its current online state since reliability_at. */
export function advancedReliability(now: string, penaltySeconds = 0): { good: string; weight: string; score: string } {
  const d = decay(now);
  const good = `(reliability_good * ${d} + CASE WHEN in_maintenance THEN 0 WHEN online THEN (1 - ${d}) / ${LAMBDA} ELSE 0 END)`;
  const weight = `(reliability_weight * ${d} + CASE WHEN in_maintenance THEN 0 ELSE (1 - ${d}) / ${LAMBDA} + ${Number(penaltySeconds)} END)`;
  return { good, weight, score: `(${good} / ${weight})` };
}

/**
 * SET clauses that advance the sums to `now` and store the score, adding `penaltySeconds` of
 * weight. In an UPDATE every expression reads the row as it was, so `online` is the state during the
 * elapsed time even when the same statement changes it.
 */
export function advanceReliabilitySql(now: string, penaltySeconds = 0): string {
  const { good, weight, score } = advancedReliability(now, penaltySeconds);
  return `reliability_good = ${good}, reliability_weight = ${weight}, reliability = ${score}, reliability_at = ${now}`;
}
