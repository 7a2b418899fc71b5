import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Stripe from "stripe";

/*
 * A local stand-in for the few Stripe endpoints the payments code calls (customers, checkout
 * sessions, payment and setup intents, transfers, Connect accounts and their onboarding links), for the REAL
 * Stripe SDK pointed at it (STRIPE_API_BASE).
 * It records every request, replays the stored answer of a repeated Idempotency-Key as Stripe does
 * (except 5xx, which Stripe does not store), and answers payment intents and transfers with the
 * outcomes a test queues. Importing it starts it and sets the Stripe environment: import it before
 * anything that reads the config.
 */

export const WEBHOOK_SECRET = "whsec_test_secret";

export interface RecordedRequest {
  method: string;
  path: string;
  /** The form body, flattened as sent ("metadata[userId]"). */
  body: Record<string, string>;
  idempotencyKey: string | undefined;
}

export type IntentOutcome = "succeeded" | "processing" | "declined";
export type TransferOutcome = "ok" | "unavailable" | "refused";

interface Answer {
  status: number;
  body: unknown;
}

class FakeStripe {
  requests: RecordedRequest[] = [];
  /** Consumed one per PaymentIntent creation; "succeeded" when empty. */
  intentOutcomes: IntentOutcome[] = [];
  /** Consumed one per transfer request; "ok" when empty. */
  transferOutcomes: TransferOutcome[] = [];
  private counter = 0;
  private stored = new Map<string, Answer>();
  private intents = new Map<string, Record<string, unknown>>();
  /** Cards by payment method id; one not registered is a visa 4242 with fingerprint "fp_<id>". */
  cards = new Map<string, { fingerprint: string; brand: string; last4: string }>();
  /** Setup intents (Checkout in setup mode) by id: the payment method each set up. */
  setupIntents = new Map<string, string>();
  url = "";

  /** A card set up at Stripe (the user completed a setup-mode Checkout): its setup intent's id. */
  setUpCard(card: { paymentMethod: string; fingerprint: string; last4?: string }): string {
    this.cards.set(card.paymentMethod, { fingerprint: card.fingerprint, brand: "visa", last4: card.last4 ?? "4242" });
    const id = this.id("seti");
    this.setupIntents.set(id, card.paymentMethod);
    return id;
  }

  private paymentMethod(id: string): Record<string, unknown> {
    const card = this.cards.get(id) ?? { fingerprint: `fp_${id}`, brand: "visa", last4: "4242" };
    return { id, object: "payment_method", type: "card", card };
  }

  requestsTo(method: string, path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  reset(): void {
    this.requests = [];
    this.intentOutcomes = [];
    this.transferOutcomes = [];
  }

  private id(prefix: string): string {
    return `${prefix}_test${++this.counter}`;
  }

  handle(method: string, path: string, body: Record<string, string>): Answer {
    if (method === "POST" && path === "/v1/customers") {
      return { status: 200, body: { id: this.id("cus"), object: "customer", email: body.email, metadata: {} } };
    }
    if (method === "POST" && path === "/v1/checkout/sessions") {
      const id = this.id("cs");
      const amount = Number(body["line_items[0][price_data][unit_amount]"]);
      return {
        status: 200,
        body: {
          id,
          object: "checkout.session",
          mode: body.mode,
          customer: body.customer,
          amount_total: amount,
          currency: "usd",
          payment_status: "unpaid",
          status: "open",
          payment_intent: null,
          metadata: metadataOf(body),
          url: `https://checkout.stripe.test/c/pay/${id}`,
        },
      };
    }
    const intent = /^\/v1\/payment_intents\/([^/]+)$/.exec(path);
    if (method === "GET" && intent) {
      const found = this.intents.get(intent[1]) ?? { id: intent[1], object: "payment_intent", status: "succeeded", payment_method: "pm_card_visa" };
      return { status: 200, body: { ...found, payment_method: this.paymentMethod(String(found.payment_method)) } };
    }
    const setupIntent = /^\/v1\/setup_intents\/([^/]+)$/.exec(path);
    if (method === "GET" && setupIntent) {
      const paymentMethod = this.setupIntents.get(setupIntent[1]);
      if (!paymentMethod) return { status: 404, body: { error: { type: "invalid_request_error", message: `No such setupintent: '${setupIntent[1]}'` } } };
      return { status: 200, body: { id: setupIntent[1], object: "setup_intent", status: "succeeded", payment_method: this.paymentMethod(paymentMethod) } };
    }
    if (method === "POST" && path === "/v1/payment_intents") {
      const outcome = this.intentOutcomes.shift() ?? "succeeded";
      const id = this.id("pi");
      if (outcome === "declined") {
        return {
          status: 402,
          body: { error: { type: "card_error", code: "card_declined", decline_code: "insufficient_funds", message: "Your card has insufficient funds.", payment_intent: { id, object: "payment_intent", status: "requires_payment_method" } } },
        };
      }
      const created = {
        id,
        object: "payment_intent",
        amount: Number(body.amount),
        currency: body.currency,
        customer: body.customer,
        payment_method: body.payment_method,
        status: outcome,
        metadata: metadataOf(body),
      };
      this.intents.set(id, created);
      return { status: 200, body: created };
    }
    if (method === "POST" && path === "/v1/accounts") {
      return {
        status: 200,
        body: { id: this.id("acct"), object: "account", type: body.type, email: body.email, payouts_enabled: false, charges_enabled: false, details_submitted: false, metadata: metadataOf(body) },
      };
    }
    if (method === "POST" && path === "/v1/account_links") {
      const created = Math.floor(Date.now() / 1000);
      return {
        status: 200,
        body: { object: "account_link", created, expires_at: created + 300, url: `https://connect.stripe.test/setup/e/${body.account}/${this.id("link")}` },
      };
    }
    if (method === "POST" && path === "/v1/transfers") {
      const outcome = this.transferOutcomes.shift() ?? "ok";
      if (outcome === "unavailable") return { status: 500, body: { error: { type: "api_error", message: "Stripe is unavailable (fake)" } } };
      if (outcome === "refused") {
        return { status: 400, body: { error: { type: "invalid_request_error", code: "account_invalid", message: `No such destination: '${body.destination}'` } } };
      }
      return {
        status: 200,
        body: { id: this.id("tr"), object: "transfer", amount: Number(body.amount), currency: body.currency, destination: body.destination, metadata: metadataOf(body) },
      };
    }
    return { status: 404, body: { error: { type: "invalid_request_error", message: `Unrecognized request URL (${method}: ${path})` } } };
  }

  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const url = new URL(req.url ?? "/", "http://fake");
    const body = Object.fromEntries(new URLSearchParams(req.method === "GET" ? url.search : raw));
    const idempotencyKey = req.headers["idempotency-key"] as string | undefined;
    this.requests.push({ method: req.method ?? "", path: url.pathname, body, idempotencyKey });
    const storeKey = idempotencyKey && `${url.pathname}:${idempotencyKey}`;
    let answer = storeKey ? this.stored.get(storeKey) : undefined;
    if (!answer) {
      answer = this.handle(req.method ?? "", url.pathname, body);
      if (storeKey && answer.status < 500) this.stored.set(storeKey, answer);
    }
    // The SDK would retry a 5xx by itself; the tests retry at the job level instead.
    res.writeHead(answer.status, { "content-type": "application/json", "stripe-should-retry": "false" }).end(JSON.stringify(answer.body));
  }
}

function metadataOf(body: Record<string, string>): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) {
    const match = /^metadata\[(.+)\]$/.exec(key);
    if (match) metadata[match[1]] = value;
  }
  return metadata;
}

export const fakeStripe = new FakeStripe();
const server = createServer((req, res) => void fakeStripe.serve(req, res));
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
server.unref();
fakeStripe.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
process.env.STRIPE_SECRET_KEY = "sk_test_fake";
process.env.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET;
process.env.STRIPE_API_BASE = fakeStripe.url;

/** A Stripe event as Stripe would POST it to the webhook: JSON body and its Stripe-Signature header. */
export function signedEvent(type: string, object: Record<string, unknown>, id = `evt_${Math.random().toString(36).slice(2)}`): { payload: string; signature: string } {
  const payload = JSON.stringify({ id, object: "event", type, api_version: Stripe.API_VERSION, created: Math.floor(Date.now() / 1000), data: { object } });
  return { payload, signature: Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }) };
}

/** POSTs an event to the app's webhook endpoint. */
export async function deliver(baseUrl: string, event: { payload: string; signature: string }): Promise<Response> {
  return fetch(`${baseUrl}/webhooks/stripe`, {
    method: "POST",
    headers: { "content-type": "application/json", "stripe-signature": event.signature },
    body: event.payload,
  });
}
