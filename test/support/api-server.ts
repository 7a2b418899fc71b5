// One API process for the multi-process tests: the real server (buildApp) on a free port, with the
// test file's database and Redis prefix from the environment. Prints {"url": …} once listening.
import { buildApp } from "../../api/app.ts";
import { closePubSub } from "../../infra/pubsub.ts";

const app = buildApp();
const url = await app.start(0);
process.stdout.write(`${JSON.stringify({ url })}\n`);
process.once("SIGTERM", () => {
  void app
    .stop()
    .then(closePubSub)
    .finally(() => process.exit(0));
});
