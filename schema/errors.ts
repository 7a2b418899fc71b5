import {
  AppError,
  ConflictError,
  ForbiddenError,
  InvalidCredentialsError,
  NotAuthenticatedError,
  NotFoundError,
  RateLimitedError,
  ValidationError,
} from "../domain/errors.ts";
import { builder } from "./builder.ts";

export const ErrorInterface = builder.interfaceRef<AppError>("Error").implement({
  description: "An expected failure. `code` is stable and machine-readable; `message` is for people.",
  fields: (t) => ({
    message: t.exposeString("message"),
    code: t.exposeString("code"),
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

