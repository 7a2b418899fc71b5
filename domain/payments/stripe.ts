import Stripe from "stripe";
import { config } from "../../infra/config.ts";
import { AppError } from "../errors.ts";

/** Payments need a Stripe secret key (STRIPE_SECRET_KEY); without one they are refused, nothing else is. */
export class PaymentsUnavailableError extends AppError {
  constructor() {
    super("Payments are not configured on this server", "PAYMENTS_UNAVAILABLE");
  }
}

let client: Stripe | undefined;

/** The Stripe client, made on first use; STRIPE_API_BASE points it elsewhere (tests: a local fake). */
export function stripe(): Stripe {
  if (client) return client;
  const { STRIPE_SECRET_KEY, STRIPE_API_BASE } = config();
  if (!STRIPE_SECRET_KEY) throw new PaymentsUnavailableError();
  const base = STRIPE_API_BASE ? new URL(STRIPE_API_BASE) : null;
  client = new Stripe(
    STRIPE_SECRET_KEY,
    base ? { host: base.hostname, port: base.port, protocol: base.protocol === "http:" ? "http" : "https" } : {},
  );
  return client;
}

/** Stripe amounts are integer cents. */
export const MICROS_PER_CENT = 10_000n;

export function toCents(micros: bigint): number {
  return Number(micros / MICROS_PER_CENT);
}

export function fromCents(cents: number): bigint {
  return BigInt(cents) * MICROS_PER_CENT;
}

/** Stripe's answer was definite (a decline, a refused request): retrying the same request cannot succeed. */
export function isDefiniteRefusal(err: unknown): boolean {
  return (
    err instanceof Stripe.errors.StripeCardError ||
    err instanceof Stripe.errors.StripeInvalidRequestError ||
    err instanceof Stripe.errors.StripePermissionError
  );
}
