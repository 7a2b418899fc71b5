import nodemailer from "nodemailer";
import { config } from "../infra/config.ts";
import { prisma, type Tx } from "../infra/db.ts";
import { logger } from "../infra/logger.ts";
import type { NotificationKind } from "../prisma/generated/client/client.ts";

/*
 * The notification outbox: a notification is a row written in the transaction of the event that
 * causes it (a balance crossing its alert threshold, an auto-billing charge that failed), so it is
 * neither lost when the process dies after the event nor sent for an event that rolled back. The
 * notifications worker sends unsent rows and marks them sent.
 */

export interface Notification {
  userId: number;
  kind: NotificationKind;
  subject: string;
  body: string;
}

/** Queues an email to the account's address, in the caller's transaction. */
export async function queueNotification(db: Tx, notification: Notification): Promise<void> {
  const { email } = await db.user.findUniqueOrThrow({ where: { id: notification.userId }, select: { email: true } });
  await queueEmailTo(db, email, notification);
}

/** Queues an email to `recipient`, an account's address or (a signup link) one without an account yet, in the caller's transaction. */
export async function queueEmailTo(db: Tx, recipient: string, notification: Omit<Notification, "userId"> & { userId?: number }): Promise<void> {
  await db.notificationOutbox.create({ data: { ...notification, recipient }, select: { id: true } });
}

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
}

/** Sends one email; throws when it could not. */
export type Deliver = (email: OutgoingEmail) => Promise<void>;

/** Where emails go: through SMTP when `smtpUrl` (SMTP_URL) is set, otherwise to the log only. */
export function defaultDeliver(smtpUrl = config().SMTP_URL): Deliver {
  if (!smtpUrl) {
    return async (email) => {
      logger.info({ to: email.to, subject: email.subject, text: email.text }, "notification (no SMTP_URL: logged, not mailed)");
    };
  }
  const transport = nodemailer.createTransport(smtpUrl);
  return async (email) => {
    await transport.sendMail({ from: config().MAIL_FROM, ...email });
  };
}

const BATCH = 100;
const MAX_ATTEMPTS = 10;

/**
 * Sends up to a batch of unsent notifications, oldest first; returns how many went out. Rows are
 * locked while being sent (SKIP LOCKED: several workers share the outbox, never a row); a failed
 * send counts an attempt and is retried on later runs, up to MAX_ATTEMPTS.
 */
export async function sendPendingNotifications(deliver: Deliver, now = new Date()): Promise<number> {
  return prisma.$transaction(
    async (tx) => {
      const rows = await tx.$queryRaw<{ id: bigint; recipient: string; subject: string; body: string }[]>`
        SELECT id, recipient, subject, body FROM notification_outbox
         WHERE sent_at IS NULL AND attempts < ${MAX_ATTEMPTS}
         ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`;
      let sent = 0;
      for (const row of rows) {
        try {
          await deliver({ to: row.recipient, subject: row.subject, text: row.body });
          await tx.notificationOutbox.update({ where: { id: row.id }, data: { sentAt: now, attempts: { increment: 1 } } });
          sent++;
        } catch (err) {
          await tx.notificationOutbox.update({
            where: { id: row.id },
            data: { attempts: { increment: 1 }, lastError: (err as Error).message },
          });
        }
      }
      return sent;
    },
    { timeout: 60_000 },
  );
}
