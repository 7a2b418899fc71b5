import { type Deliver, defaultDeliver, sendPendingNotifications } from "../domain/notifications.ts";
import type { JobDefinition } from "./index.ts";

let deliver: Deliver | undefined;

/** Every 5 seconds: sends what the outbox holds (domain/notifications.ts). */
export const notificationsJob: JobDefinition = {
  name: "notifications",
  everyMs: 5_000,
  process: () => sendPendingNotifications((deliver ??= defaultDeliver())),
};
