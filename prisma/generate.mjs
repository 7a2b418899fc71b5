// Runs `prisma generate` offline: the CLI insists on a schema-engine binary path even though
// generating the client never executes it, so point it at any existing file.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
execFileSync(process.execPath, ["node_modules/prisma/build/index.js", "generate"], {
  cwd: root,
  stdio: "inherit",
  env: {
    ...process.env,
    PATH: `${root}node_modules/.bin:${process.env.PATH}`,
    PRISMA_SCHEMA_ENGINE_BINARY: process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: "1" },
});
