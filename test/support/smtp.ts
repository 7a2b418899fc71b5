import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { defaultDeliver, sendPendingNotifications } from "../../domain/notifications.ts";

export interface ReceivedMail {
  to: string[];
  /** The raw message, headers and body, as the server received it. */
  data: string;
  /** The body's text with quoted-printable soft breaks and escapes undone. */
  text: string;
}

/** A real SMTP server on a free local port, recording what it receives. */
export async function startSmtpServer(): Promise<{ url: string; received: ReceivedMail[]; close(): Promise<void> }> {
  const received: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, session, callback) {
      let data = "";
      stream.on("data", (chunk: Buffer) => (data += chunk.toString()));
      stream.on("end", () => {
        const text = data.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), data, text });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What the notifications worker does on its next run, through the given SMTP server. */
export function sendMailNow(smtpUrl: string): Promise<number> {
  return sendPendingNotifications(defaultDeliver(smtpUrl));
}
