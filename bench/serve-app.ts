// The real app alone in its own process and event loop, as in production; prints its URL when ready.
import { buildApp } from "../api/app.ts";

const app = buildApp();
process.stdout.write(`${await app.start(0)}\n`);
process.on("SIGTERM", async () => {
  await app.stop();
  process.exit(0);
});
