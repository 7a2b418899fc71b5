import { builder } from "./builder.ts";
import "./root.ts";
import "./scalars.ts";
import "./errors.ts";
import "./account.ts";

export const schema = builder.toSchema();
