import { builder } from "./builder.ts";
import "./root.ts";
import "./scalars.ts";
import "./errors.ts";
import "./account.ts";
import "./apiKey.ts";
import "./sshKey.ts";
import "./machine.ts";
import "./offer.ts";
import "./instance.ts";
import "./bid.ts";
import "./orderBook.ts";
import "./template.ts";
import "./instanceLogs.ts";
import "./agent.ts";
import "./billing.ts";
import "./market.ts";

export const schema = builder.toSchema();
