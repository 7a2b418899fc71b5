import { prisma } from "../infra/db.ts";
import { builder } from "./builder.ts";

export const UserRef = builder.prismaNode("User", {
  id: { field: "id" },
  fields: (t) => ({
    email: t.exposeString("email"),
    emailVerified: t.exposeBoolean("emailVerified"),
    balance: t.field({ type: "Money", resolve: (user) => user.balanceMicros }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

builder.queryField("me", (t) =>
  t.prismaField({
    type: "User",
    nullable: true,
    description: "The account behind the API key; null for anonymous callers.",
    resolve: (query, _root, _args, ctx) =>
      ctx.viewer ? prisma.user.findUnique({ ...query, where: { id: ctx.viewer.userId } }) : null,
  }),
);
