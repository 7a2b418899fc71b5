import { defineConfig } from "vitest/config";

export default defineConfig({
  // graphql 16 ships CJS (main) and ESM (module) builds; Node loads the CJS one for dependencies,
  // so our own files must too, or its instanceof checks see two realms.
  resolve: { alias: [{ find: /^graphql$/, replacement: "graphql/index.js" }] },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    setupFiles: ["test/support/database-per-file.ts"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // A fixed test key for saved registry credentials (32 bytes).
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? "warn", REGISTRY_CREDENTIALS_KEY: "dGVzdC1vbmx5IHJlZ2lzdHJ5IGNyZWRlbnRpYWxzIGs=" },
  },
});
