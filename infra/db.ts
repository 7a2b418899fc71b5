import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../prisma/generated/client/client.ts";
import { config } from "./config.ts";

export const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: config().DATABASE_URL, max: 20 }),
});

/**
 * Metering's own small pool: its ticks never wait behind request traffic (or a flood of it) for one
 * of the 20 connections above. Connects on first use, so processes that do not meter open none.
 */
export const meteringPrisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: config().DATABASE_URL, max: 2 }),
});

export type Db = typeof prisma;
/** A client or an interactive transaction: domain services accept either. */
export type Tx = Omit<Db, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;
