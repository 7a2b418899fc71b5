import { builder } from "./builder.ts";

builder.queryType({});
builder.mutationType({});
