import {
  AppError,
  ConflictError,
  ForbiddenError,
  IllegalTransitionError,
  InvalidCredentialsError,
  InvalidTokenError,
  NotAuthenticatedError,
  NotFoundError,
  RateLimitedError,
  SearchQueryError,
  ValidationError,
} from "../domain/errors.ts";
import { SpendRateLimitError } from "../domain/billing/spendLimit.ts";
import { builder } from "./builder.ts";

export const ErrorInterface = builder.interfaceRef<AppError>("Error").implement({
  description: "An expected failure. `code` is stable and machine-readable; `message` is for people.",
  fields: (t) => ({
    message: t.exposeString("message", { description: "What went wrong, in words for people." }),
    code: t.exposeString("code", { description: "What went wrong, stable and machine-readable, such as NOT_FOUND or VALIDATION." }),
  }),
});

builder.objectType(AppError, { name: "BaseError", interfaces: [ErrorInterface] });

const FieldIssue = builder.objectRef<{ path: string[]; message: string }>("FieldIssue").implement({
  fields: (t) => ({
    path: t.exposeStringList("path", { description: "The input field, as a path from the argument." }),
    message: t.exposeString("message"),
  }),
});

builder.objectType(ValidationError, {
  name: "ValidationError",
  interfaces: [ErrorInterface],
  fields: (t) => ({ issues: t.field({ type: [FieldIssue], resolve: (error) => error.issues }) }),
});

builder.objectType(NotFoundError, {
  name: "NotFoundError",
  interfaces: [ErrorInterface],
  fields: (t) => ({ resource: t.exposeString("resource") }),
});

builder.objectType(NotAuthenticatedError, { name: "NotAuthenticatedError", interfaces: [ErrorInterface] });
builder.objectType(ForbiddenError, { name: "ForbiddenError", interfaces: [ErrorInterface] });
builder.objectType(InvalidCredentialsError, { name: "InvalidCredentialsError", interfaces: [ErrorInterface] });
builder.objectType(ConflictError, { name: "ConflictError", interfaces: [ErrorInterface] });

builder.objectType(RateLimitedError, {
  name: "RateLimitedError",
  interfaces: [ErrorInterface],
  fields: (t) => ({ retryAfterSeconds: t.exposeInt("retryAfterSeconds") }),
});

builder.objectType(SearchQueryError, {
  name: "SearchQueryError",
  interfaces: [ErrorInterface],
  fields: (t) => ({
    token: t.exposeString("token", { description: "The offending text, as typed." }),
    field: t.exposeString("field", { nullable: true }),
  }),
});

builder.objectType(IllegalTransitionError, {
  name: "IllegalTransitionError",
  interfaces: [ErrorInterface],
  description: "The instance's status does not allow the request (for example starting a destroyed instance).",
  fields: (t) => ({
    from: t.exposeString("from", { description: "The instance's status." }),
    event: t.exposeString("event", { description: "What was asked." }),
  }),
});

builder.objectType(SpendRateLimitError, {
  name: "SpendRateLimitError",
  interfaces: [ErrorInterface],
  description: "The rental would take the account's rentals over its spend rate limit (new or unverified accounts).",
  fields: (t) => ({
    limitPerHour: t.field({ type: "Money", resolve: (error) => error.limitMicrosPerHour }),
    currentPerHour: t.field({ type: "Money", description: "What the account's rentals cost now.", resolve: (error) => error.currentMicrosPerHour }),
    requestedPerHour: t.field({ type: "Money", resolve: (error) => error.requestedMicrosPerHour }),
  }),
});

builder.objectType(InvalidTokenError, {
  name: "InvalidTokenError",
  interfaces: [ErrorInterface],
  description: "An emailed link's token that cannot be used; nothing was changed.",
  fields: (t) => ({
    reason: t.exposeString("reason", { description: "UNKNOWN (never issued, mistyped, or another account's), USED or EXPIRED." }),
  }),
});
