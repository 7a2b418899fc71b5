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
    message: t.exposeString("message", { description: "What went wrong, for people; its wording may change." }),
    code: t.exposeString("code", { description: "What went wrong, for programs: stable, such as VALIDATION, NOT_FOUND or FORBIDDEN." }),
  }),
});

builder.objectType(AppError, { name: "BaseError", interfaces: [ErrorInterface], description: "An expected failure with no fields beyond its code and message." });

const FieldIssue = builder.objectRef<{ path: string[]; message: string }>("FieldIssue").implement({
  description: "One input value that was refused, and why.",
  fields: (t) => ({
    path: t.exposeStringList("path", { description: "The input field, as a path from the argument." }),
    message: t.exposeString("message", { description: "What the value must be, such as \"must be at most 64 characters\"." }),
  }),
});

builder.objectType(ValidationError, {
  name: "ValidationError",
  interfaces: [ErrorInterface],
  description: "Input that cannot be accepted (code VALIDATION); nothing was changed.",
  fields: (t) => ({ issues: t.field({ type: [FieldIssue], description: "Each refused input value.", resolve: (error) => error.issues }) }),
});

builder.objectType(NotFoundError, {
  name: "NotFoundError",
  interfaces: [ErrorInterface],
  description: "No such object, or one of another account's (code NOT_FOUND): the two are not told apart.",
  fields: (t) => ({ resource: t.exposeString("resource", { description: "The kind of object looked for, such as Machine or Instance." }) }),
});

builder.objectType(NotAuthenticatedError, {
  name: "NotAuthenticatedError",
  interfaces: [ErrorInterface],
  description: "No valid API key was sent (code UNAUTHENTICATED): send one as `Authorization: Bearer <token>`.",
});
builder.objectType(ForbiddenError, {
  name: "ForbiddenError",
  interfaces: [ErrorInterface],
  description: "The key may not do this (code FORBIDDEN): it lacks the permission, or it is a machine's or instance's key.",
});
builder.objectType(InvalidCredentialsError, {
  name: "InvalidCredentialsError",
  interfaces: [ErrorInterface],
  description: "The email and password do not match an account (code INVALID_CREDENTIALS).",
});
builder.objectType(ConflictError, {
  name: "ConflictError",
  interfaces: [ErrorInterface],
  description: "The request clashes with what exists, such as a key or name already there or a limit reached (code CONFLICT); nothing was changed.",
});

builder.objectType(RateLimitedError, {
  name: "RateLimitedError",
  interfaces: [ErrorInterface],
  description: "Too many attempts from this address or for this account (code RATE_LIMITED); try again later.",
  fields: (t) => ({ retryAfterSeconds: t.exposeInt("retryAfterSeconds", { description: "Seconds to wait before the next attempt." }) }),
});

builder.objectType(SearchQueryError, {
  name: "SearchQueryError",
  interfaces: [ErrorInterface],
  description: "An offer search query that cannot be read (INVALID_QUERY) or names a field this marketplace does not record (UNRECORDED_FIELD).",
  fields: (t) => ({
    token: t.exposeString("token", { description: "The offending text, as typed." }),
    field: t.exposeString("field", { nullable: true, description: "The search field concerned, when there is one." }),
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
    limitPerHour: t.field({ type: "Money", description: "The account's limit, dollars per hour.", resolve: (error) => error.limitMicrosPerHour }),
    currentPerHour: t.field({ type: "Money", description: "What the account's rentals cost now, dollars per hour.", resolve: (error) => error.currentMicrosPerHour }),
    requestedPerHour: t.field({ type: "Money", description: "What the refused rental would add, dollars per hour.", resolve: (error) => error.requestedMicrosPerHour }),
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
