import { builder } from "./builder.ts";

builder.queryType({ description: "What can be read: the market (open to anyone), and the caller's account, rentals and machines." });
builder.mutationType({
  description: "What can be changed. Each returns a result union: its success type with `data`, or a typed error with a code.",
});
builder.subscriptionType({ description: "Live updates over WebSocket (graphql-ws on the same endpoint)." });
