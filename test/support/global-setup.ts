import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { type LocalService, startEmbeddedPostgres, startPrivateRedis } from "../../infra/local-services.ts";
import { migrate } from "../../infra/migrate.ts";
import { adminQuery, withDatabase } from "../../infra/pg-admin.ts";

declare module "vitest" {
  export interface ProvidedContext {
    serverUrl: string;
    templateDatabase: string;
    redisUrl: string;
    runId: string;
  }
}

/**
 * Real PostgreSQL and Redis for the whole run: the ones in DATABASE_URL and REDIS_URL when set,
 * otherwise embedded ones. Migrations are applied once to a template database that every test
 * file clones (see database-per-file.ts), so files run in parallel without meeting.
 */
export default async function setup(project: TestProject) {
  const started: LocalService[] = [];
  const dataDir = fileURLToPath(new URL("../../.data/test", import.meta.url));
  const serverUrl = process.env.DATABASE_URL ?? (started[started.push(await startEmbeddedPostgres(dataDir)) - 1].url);
  const redisUrl = process.env.REDIS_URL ?? (started[started.push(await startPrivateRedis()) - 1].url);

  const runId = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
  const templateDatabase = `t_${runId}_template`;
  await adminQuery(serverUrl, `CREATE DATABASE ${templateDatabase}`);
  await migrate(withDatabase(serverUrl, templateDatabase));

  project.provide("serverUrl", serverUrl);
  project.provide("templateDatabase", templateDatabase);
  project.provide("redisUrl", redisUrl);
  project.provide("runId", runId);

  return async () => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE $1",
      [`t\\_${runId}\\_%`],
    );
    for (const { datname } of rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    await client.end();
    for (const service of started.reverse()) await service.stop();
  };
}
