import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../prisma/generated/client/client.ts";
import { config } from "./config.ts";

export const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: config().DATABASE_URL, max: 20 }),
});

export type Db = typeof prisma;
/** A client or an interactive transaction: domain services accept either. */
export type Tx = Omit<Db, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;
