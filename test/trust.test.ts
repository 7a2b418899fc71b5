import { deliver, fakeStripe, signedEvent } from "./support/fake-stripe.ts";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccount } from "../domain/accounts.ts";
import { ledgerMismatches } from "../domain/billing/ledger.ts";
import { issueDemoKeys, loadDemoData } from "../domain/demo.ts";
import { attemptAutoBill } from "../domain/payments/autoBilling.ts";
import { watchBalances } from "../domain/payments/balanceWatch.ts";
import { mailboxOf } from "../domain/trust.ts";
import { prisma } from "../infra/db.ts";
import { useTestApp } from "./support/app.ts";
import { CREATE_INSTANCE, instanceInput } from "./support/rentals.ts";
import { sendMailNow, startSmtpServer } from "./support/smtp.ts";

/*
 * Trust and limits: email verification by a mailed token (through a real SMTP server), cards
 * verified through Stripe (the local stand-in), the free test credit once per account, card and
 * mailbox, the spend tiers, password change and reset, and debit settlement.
 */

const app = useTestApp();
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;

beforeAll(async () => {
  // The demo loads only into an empty database: before this file creates any account.
  expect(await loadDemoData()).toBe(true);
  smtp = await startSmtpServer();
});
afterAll(async () => {
  await smtp.close();
});

const REQUEST = `mutation { requestEmailVerification { __typename ... on MutationRequestEmailVerificationSuccess { data { email } } ... on Error { code } } }`;
const VERIFY = `mutation ($token: String!) { verifyEmail(token: $token) {
  __typename ... on MutationVerifyEmailSuccess { data { email testCredit } } ... on InvalidTokenError { code reason } ... on Error { code } } }`;
const ME = "{ me { emailVerified cardVerified balance } }";
const SPEND_LIMIT = "{ spendLimit { tier limitPerHour currentPerHour next { tier limitPerHour requirements } } }";

async function account(email = `trust-${randomBytes(5).toString("hex")}@example.com`): Promise<{ userId: number; key: string; email: string }> {
  const session = await createAccount({ email, password: "the old password" });
  return { userId: session.userId, key: session.key.token, email };
}

/** The token in the last verification or reset email the address received. */
async function mailedToken(email: string): Promise<string> {
  expect(await sendMailNow(smtp.url)).toBeGreaterThanOrEqual(1);
  const mail = smtp.received.filter((m) => m.to.includes(email)).at(-1);
  const token = /gmt_[A-Za-z0-9_-]+/.exec(mail?.text ?? "")?.[0];
  expect(token, mail?.text).toBeDefined();
  return token!;
}

async function verifiedEmail(who: { key: string; email: string }): Promise<void> {
  expect((await app.gql(REQUEST, {}, who.key)).data.requestEmailVerification.__typename).toBe("MutationRequestEmailVerificationSuccess");
  const verified = await app.gql(VERIFY, { token: await mailedToken(who.email) }, who.key);
  expect(verified.data.verifyEmail.__typename).toBe("MutationVerifyEmailSuccess");
}

/** The user completes addCard's setup-mode Checkout with a card: Stripe's event for it. */
async function cardSetUp(userId: number, fingerprint: string): Promise<Response> {
  const setupIntent = fakeStripe.setUpCard({ paymentMethod: `pm_${randomBytes(4).toString("hex")}`, fingerprint });
  const event = signedEvent("checkout.session.completed", {
    id: `cs_setup_${setupIntent}`,
    object: "checkout.session",
    mode: "setup",
    status: "complete",
    setup_intent: setupIntent,
    metadata: { userId: String(userId) },
  });
  const response = await deliver(app.baseUrl, event);
  expect(response.status).toBe(200);
  return response;
}

const user = (userId: number) => prisma.user.findUniqueOrThrow({ where: { id: userId } });
const databaseRows = async () =>
  JSON.stringify(
    await Promise.all([prisma.user.findMany({ orderBy: { id: "asc" } }), prisma.accountToken.findMany({ orderBy: { id: "asc" } }), prisma.testCredit.findMany()]),
    (_key, value) => (typeof value === "bigint" ? value.toString() : value),
  );

describe("email verification", () => {
  it("mails a one-time link through SMTP; the token verifies the address once", async () => {
    const ann = await account();
    const requested = await app.gql(REQUEST, {}, ann.key);
    expect(requested.data.requestEmailVerification).toEqual({ __typename: "MutationRequestEmailVerificationSuccess", data: { email: ann.email } });
    const token = await mailedToken(ann.email);
    const mail = smtp.received.filter((m) => m.to.includes(ann.email)).at(-1)!;
    expect(mail.data).toContain("Subject: Verify your email address");
    expect(mail.text).toContain(`/verify-email?token=${token}`);
    // Only the token's hash is stored.
    expect(JSON.stringify(await prisma.accountToken.findMany({ where: { userId: ann.userId } }))).not.toContain(token);

    const verified = await app.gql(VERIFY, { token }, ann.key);
    expect(verified.data.verifyEmail).toEqual({ __typename: "MutationVerifyEmailSuccess", data: { email: ann.email, testCredit: null } });
    expect((await user(ann.userId)).emailVerified).toBe(true);

    expect((await app.gql(VERIFY, { token }, ann.key)).data.verifyEmail).toEqual({ __typename: "InvalidTokenError", code: "INVALID_TOKEN", reason: "USED" });
    expect((await app.gql(REQUEST, {}, ann.key)).data.requestEmailVerification).toMatchObject({ __typename: "ConflictError", code: "CONFLICT" });
  });

  it("lets one of concurrent uses of a token through", async () => {
    const hal = await account();
    await app.gql(REQUEST, {}, hal.key);
    const token = await mailedToken(hal.email);
    const results = await Promise.all(Array.from({ length: 6 }, () => app.gql(VERIFY, { token })));
    const outcomes = results.map((result) => result.data.verifyEmail.reason ?? result.data.verifyEmail.__typename).sort();
    expect(outcomes).toEqual(["MutationVerifyEmailSuccess", "USED", "USED", "USED", "USED", "USED"]);
  });

  it("refuses forged, expired and another account's tokens with typed errors, writing nothing", async () => {
    const bob = await account();
    const eve = await account();
    await app.gql(REQUEST, {}, bob.key);
    const token = await mailedToken(bob.email);
    const before = await databaseRows();

    const forged = await app.gql(VERIFY, { token: `gmt_${randomBytes(32).toString("base64url")}` }, bob.key);
    expect(forged.data.verifyEmail).toEqual({ __typename: "InvalidTokenError", code: "INVALID_TOKEN", reason: "UNKNOWN" });
    expect((await app.gql(VERIFY, { token: "not a token" })).data.verifyEmail.reason).toBe("UNKNOWN");
    // Eve cannot verify Bob's address with his token, nor her own account with it.
    const stolen = await app.gql(VERIFY, { token }, eve.key);
    expect(stolen.data.verifyEmail).toEqual({ __typename: "InvalidTokenError", code: "INVALID_TOKEN", reason: "UNKNOWN" });
    expect(await databaseRows()).toBe(before);

    // The token proves the mailbox on its own (a link opened without a key).
    const anonymous = await app.gql(VERIFY, { token });
    expect(anonymous.data.verifyEmail.data.email).toBe(bob.email);
    expect((await user(bob.userId)).emailVerified).toBe(true);
    expect((await user(eve.userId)).emailVerified).toBe(false);

    await app.gql(REQUEST, {}, eve.key);
    const late = await mailedToken(eve.email);
    await prisma.accountToken.updateMany({ where: { userId: eve.userId }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const unchanged = await databaseRows();
    expect((await app.gql(VERIFY, { token: late }, eve.key)).data.verifyEmail).toEqual({ __typename: "InvalidTokenError", code: "INVALID_TOKEN", reason: "EXPIRED" });
    expect(await databaseRows()).toBe(unchanged);
  });
});

describe("test credit and spend tiers", () => {
  it("an account that verifies its email and card gets the test credit once and can rent the 8-GPU demo offer", async () => {
    const carol = await account();
    // The demo's dearest 8-GPU offer: over the limit of a new account.
    const offer = await prisma.offer.findFirstOrThrow({ where: { numGpus: 8, rentable: true }, orderBy: { dphTotalMicros: "desc" } });
    expect(offer.dphTotalMicros).toBeGreaterThan(5_000_000n);
    const rent = () => app.gql(CREATE_INSTANCE, { input: instanceInput(offer.machineId, 8) }, carol.key);

    expect((await app.gql(SPEND_LIMIT, {}, carol.key)).data.spendLimit).toEqual({
      tier: "NEW",
      limitPerHour: "5.00",
      currentPerHour: "0.00",
      next: { tier: "EMAIL_VERIFIED", limitPerHour: "20.00", requirements: ["verify the email address (requestEmailVerification, then verifyEmail)"] },
    });
    // Refused: no credit yet, and over the new account's spend limit.
    expect(["INSUFFICIENT_BALANCE", "SPEND_RATE_LIMIT"]).toContain((await rent()).data.createInstance.code);

    await verifiedEmail(carol);
    expect((await app.gql(SPEND_LIMIT, {}, carol.key)).data.spendLimit).toMatchObject({ tier: "EMAIL_VERIFIED", next: { tier: "CARD_VERIFIED", limitPerHour: "100.00" } });
    expect(await prisma.instance.count({ where: { clientId: carol.userId } })).toBe(0);

    const addCard = await app.gql(`mutation { addCard { __typename ... on MutationAddCardSuccess { data { sessionId url } } } }`, {}, carol.key);
    expect(addCard.data.addCard.data.url).toMatch(/^https:\/\/checkout\.stripe\.test\//);
    expect(fakeStripe.requestsTo("POST", "/v1/checkout/sessions").at(-1)?.body).toMatchObject({ mode: "setup", "metadata[userId]": String(carol.userId) });
    const fingerprint = `fp_${randomBytes(6).toString("hex")}`;
    await cardSetUp(carol.userId, fingerprint);
    expect((await app.gql(ME, {}, carol.key)).data.me).toEqual({ emailVerified: true, cardVerified: true, balance: "1.00" });
    // Stripe delivering again, and the same card set up again, credit nothing more.
    await cardSetUp(carol.userId, fingerprint);
    expect((await user(carol.userId)).balanceMicros).toBe(1_000_000n);
    expect(await prisma.ledgerEntry.count({ where: { userId: carol.userId, description: { startsWith: "Free test credit" } } })).toBe(1);

    const spend = (await app.gql(SPEND_LIMIT, {}, carol.key)).data.spendLimit;
    expect(spend).toMatchObject({ tier: "CARD_VERIFIED", limitPerHour: "100.00", next: { tier: "ESTABLISHED", limitPerHour: null } });
    expect(spend.next.requirements).toEqual(["an account 30 days old (30 to go)", "$50.00 paid in total ($50.00 to go)"]);
    expect((await rent()).data.createInstance.__typename).toBe("MutationCreateInstanceSuccess");
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("never gives the test credit twice for one card or one mailbox; the order of verifications does not matter", async () => {
    const fingerprint = `fp_${randomBytes(6).toString("hex")}`;
    const first = await account();
    await cardSetUp(first.userId, fingerprint);
    expect((await user(first.userId)).balanceMicros).toBe(0n); // the email is not verified yet
    await app.gql(REQUEST, {}, first.key);
    const credited = await app.gql(VERIFY, { token: await mailedToken(first.email) }, first.key);
    expect(credited.data.verifyEmail.data.testCredit).toBe("1.00");

    const sameCard = await account();
    await verifiedEmail(sameCard);
    await cardSetUp(sameCard.userId, fingerprint);
    expect(await user(sameCard.userId)).toMatchObject({ emailVerified: true, balanceMicros: 0n });
    expect((await app.gql(ME, {}, sameCard.key)).data.me.cardVerified).toBe(true);
    const TEST_CREDIT = "{ me { testCredit { status amount message } } }";
    expect((await app.gql(TEST_CREDIT, {}, sameCard.key)).data.me.testCredit).toEqual({
      status: "REFUSED",
      amount: null,
      message: "The card or the email address received a test credit already",
    });
    expect((await app.gql(TEST_CREDIT, {}, first.key)).data.me.testCredit).toMatchObject({ status: "GRANTED", amount: "1.00" });

    const local = `dana${randomBytes(3).toString("hex")}`;
    const dana = await account(`${local}+gpu@example.com`);
    const danaAgain = await account(`${local}+more@example.com`);
    expect((await app.gql(TEST_CREDIT, {}, dana.key)).data.me.testCredit).toEqual({
      status: "WAITING",
      amount: "1.00",
      message: "Verify the email and a card to receive it",
    });
    expect(mailboxOf(dana.email)).toBe(mailboxOf(danaAgain.email));
    await verifiedEmail(dana);
    await cardSetUp(dana.userId, `fp_${randomBytes(6).toString("hex")}`);
    await verifiedEmail(danaAgain);
    await cardSetUp(danaAgain.userId, `fp_${randomBytes(6).toString("hex")}`);
    expect((await user(dana.userId)).balanceMicros).toBe(1_000_000n);
    expect((await user(danaAgain.userId)).balanceMicros).toBe(0n);
    expect(await prisma.testCredit.count({ where: { userId: { in: [first.userId, sameCard.userId, dana.userId, danaAgain.userId] } } })).toBe(2);
  });

  it("grants one test credit when accounts with one card verify it at the same time, however often Stripe delivers", async () => {
    const fingerprint = `fp_${randomBytes(6).toString("hex")}`;
    const racers = [await account(), await account(), await account()];
    for (const racer of racers) await verifiedEmail(racer);
    await Promise.all(racers.flatMap((racer) => [cardSetUp(racer.userId, fingerprint), cardSetUp(racer.userId, fingerprint)]));
    const balances = await Promise.all(racers.map(async (racer) => (await user(racer.userId)).balanceMicros));
    expect(balances.reduce((sum, balance) => sum + balance, 0n)).toBe(1_000_000n);
    expect(await prisma.testCredit.count({ where: { cardFingerprint: fingerprint } })).toBe(1);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });

  it("the demo client can rent the 8-GPU demo offer", async () => {
    const client = (await issueDemoKeys()).find((key) => key.role === "client")!;
    // The second dearest: the dearest went to the account above.
    const offer = await prisma.offer.findFirstOrThrow({ where: { numGpus: 8, rentable: true }, orderBy: { dphTotalMicros: "desc" }, skip: 1 });
    expect(offer.dphTotalMicros).toBeGreaterThan(5_000_000n);
    const rented = await app.gql(CREATE_INSTANCE, { input: instanceInput(offer.machineId, 8) }, client.token);
    expect(rented.data.createInstance.__typename, JSON.stringify(rented)).toBe("MutationCreateInstanceSuccess");
    expect((await app.gql(SPEND_LIMIT, {}, client.token)).data.spendLimit.tier).toBe("CARD_VERIFIED");
  });
});

describe("passwords", () => {
  const LOGIN = `mutation ($email: String!, $password: String!) { login(email: $email, password: $password) {
    __typename ... on MutationLoginSuccess { data { apiKey { token } } } ... on Error { code } } }`;
  const CHANGE = `mutation ($current: String!, $next: String!) { changePassword(currentPassword: $current, newPassword: $next) {
    __typename ... on MutationChangePasswordSuccess { data { apiKey { token apiKey { scope } } } } ... on Error { code } } }`;
  const RESET = `mutation ($token: String!, $next: String!) { resetPassword(token: $token, newPassword: $next) {
    __typename ... on MutationResetPasswordSuccess { data { apiKey { token } } } ... on InvalidTokenError { reason } ... on Error { code } } }`;
  const login = async (email: string, password: string) => (await app.gql(LOGIN, { email, password })).data.login;
  const works = async (key: string) => (await app.gql("{ me { id } }", {}, key)).data?.me != null;

  it("changing the password checks the current one and revokes every session key", async () => {
    const erin = await account();
    const sessions = [(await login(erin.email, "the old password")).data.apiKey.token, (await login(erin.email, "the old password")).data.apiKey.token];
    const before = await databaseRows();
    expect((await app.gql(CHANGE, { current: "wrong", next: "a brand new password" }, sessions[0])).data.changePassword.code).toBe("INVALID_CREDENTIALS");
    expect((await app.gql(CHANGE, { current: "the old password", next: "short" }, sessions[0])).data.changePassword.__typename).toBe("ValidationError");
    expect(await databaseRows()).toBe(before);

    const changed = (await app.gql(CHANGE, { current: "the old password", next: "a brand new password" }, sessions[0])).data.changePassword;
    expect(changed.data.apiKey.apiKey.scope).toBe("SESSION");
    for (const session of sessions) expect(await works(session)).toBe(false);
    expect(await works(changed.data.apiKey.token)).toBe(true);
    expect(await works(erin.key)).toBe(true); // the signup key is an account key, revoked on its own
    expect((await login(erin.email, "the old password")).code).toBe("INVALID_CREDENTIALS");
    expect((await login(erin.email, "a brand new password")).__typename).toBe("MutationLoginSuccess");
  });

  it("a reset token mailed to the address sets a new password once and revokes every session key", async () => {
    const fred = await account();
    const session = (await login(fred.email, "the old password")).data.apiKey.token;
    const mailed = smtp.received.length;
    const unknown = await app.gql(`mutation { requestPasswordReset(email: "nobody-${randomBytes(4).toString("hex")}@example.com") { __typename ... on MutationRequestPasswordResetSuccess { data } } }`);
    expect(unknown.data.requestPasswordReset.data).toBe(true);
    const asked = await app.gql(`mutation ($email: String!) { requestPasswordReset(email: $email) { ... on MutationRequestPasswordResetSuccess { data } } }`, { email: fred.email.toUpperCase() });
    expect(asked.data.requestPasswordReset.data).toBe(true);
    const token = await mailedToken(fred.email);
    expect(smtp.received.length).toBe(mailed + 1); // nothing went to the unknown address

    const before = await databaseRows();
    expect((await app.gql(RESET, { token: `gmt_${randomBytes(32).toString("base64url")}`, next: "a reset password" })).data.resetPassword.reason).toBe("UNKNOWN");
    expect((await app.gql(RESET, { token, next: "short" })).data.resetPassword.__typename).toBe("ValidationError");
    expect(await databaseRows()).toBe(before);

    const reset = (await app.gql(RESET, { token, next: "a reset password" })).data.resetPassword;
    expect(reset.__typename).toBe("MutationResetPasswordSuccess");
    expect(await works(session)).toBe(false);
    expect(await works(reset.data.apiKey.token)).toBe(true);
    expect((await app.gql(RESET, { token, next: "another password" })).data.resetPassword.reason).toBe("USED");
    expect((await login(fred.email, "a reset password")).__typename).toBe("MutationLoginSuccess");
  });
});

describe("debit settlement", () => {
  it("charges a negative balance to the saved card, recorded once per period", async () => {
    const gus = await account();
    await prisma.$transaction(async (tx) => {
      await tx.user.update({ where: { id: gus.userId }, data: { stripeCustomerId: `cus_${gus.userId}`, stripePaymentMethodId: "pm_card_visa", debitMode: true } });
      await tx.ledgerEntry.create({ data: { userId: gus.userId, kind: "ADJUSTMENT", amountMicros: -12_345_678n, description: "usage" } });
      await tx.user.update({ where: { id: gus.userId }, data: { balanceMicros: { increment: -12_345_678n } } });
    });
    const settlements = () => prisma.payment.findMany({ where: { userId: gus.userId, kind: "DEBIT_SETTLEMENT" } });

    const [first, second] = await Promise.all([watchBalances(), watchBalances()]);
    const [payment] = await settlements();
    expect(await settlements()).toHaveLength(1);
    expect(payment).toMatchObject({ status: "PENDING", amountMicros: 12_350_000n });
    expect([...first.autoBills, ...second.autoBills]).toContain(payment.id);

    expect(await attemptAutoBill(payment.id, false)).toBe("SUCCEEDED");
    expect(fakeStripe.requestsTo("POST", "/v1/payment_intents").at(-1)?.body).toMatchObject({
      amount: "1235",
      customer: `cus_${gus.userId}`,
      "metadata[kind]": "DEBIT_SETTLEMENT",
    });
    expect(await attemptAutoBill(payment.id, false)).toBe("DONE");
    expect((await user(gus.userId)).balanceMicros).toBe(4_322n);

    // In debt again within the period: nothing more until it has passed.
    await prisma.$transaction(async (tx) => {
      await tx.ledgerEntry.create({ data: { userId: gus.userId, kind: "ADJUSTMENT", amountMicros: -5_000_000n, description: "usage" } });
      await tx.user.update({ where: { id: gus.userId }, data: { balanceMicros: { increment: -5_000_000n } } });
    });
    await watchBalances();
    expect(await settlements()).toHaveLength(1);
    await prisma.user.update({ where: { id: gus.userId }, data: { debitSettledAt: new Date(Date.now() - 25 * 3_600_000) } });
    await watchBalances();
    expect((await settlements()).map((p) => p.amountMicros)).toEqual([12_350_000n, 5_000_000n]);
    expect(await ledgerMismatches(prisma)).toEqual([]);
  });
});
