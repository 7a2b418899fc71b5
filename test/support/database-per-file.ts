import { randomBytes } from "node:crypto";
import { afterAll, inject } from "vitest";
import { adminQuery, withDatabase } from "../../infra/pg-admin.ts";

// Runs before each test file's imports: the file gets its own database cloned from the migrated
// template and its own Redis key prefix, and modules that read the config see them.
const serverUrl = inject("serverUrl");
const database = `t_${inject("runId")}_${randomBytes(4).toString("hex")}`;
await adminQuery(serverUrl, `CREATE DATABASE ${database} TEMPLATE ${inject("templateDatabase")}`);
process.env.DATABASE_URL = withDatabase(serverUrl, database);
process.env.REDIS_URL = inject("redisUrl");
process.env.REDIS_PREFIX = database;

afterAll(async () => {
  const [{ prisma, meteringPrisma }, { redis }, { closeProducers }] = await Promise.all([
    import("../../infra/db.ts"),
    import("../../infra/redis.ts"),
    import("../../infra/queues.ts"),
  ]);
  await closeProducers();
  redis.disconnect();
  await Promise.all([prisma.$disconnect(), meteringPrisma.$disconnect()]);
});
