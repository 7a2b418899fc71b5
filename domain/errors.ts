/**
 * Expected failures. Domain services throw these; the GraphQL layer returns them as members of the
 * mutation result unions (and as `extensions.code` elsewhere). Anything else is a bug and is masked.
 */
export class AppError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export interface FieldIssue {
  path: string[];
  message: string;
}

export class ValidationError extends AppError {
  constructor(readonly issues: FieldIssue[]) {
    super(issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; "), "VALIDATION");
  }
}

/** Also what a caller gets for another account's ids: existence is never revealed. */
export class NotFoundError extends AppError {
  constructor(readonly resource: string) {
    super(`${resource} not found`, "NOT_FOUND");
  }
}

export class NotAuthenticatedError extends AppError {
  constructor(message = "A valid API key is required") {
    super(message, "UNAUTHENTICATED");
  }
}

export class ForbiddenError extends AppError {
  constructor(message = "This API key may not do that") {
    super(message, "FORBIDDEN");
  }
}

export class InvalidCredentialsError extends AppError {
  constructor() {
    super("Email or password is wrong", "INVALID_CREDENTIALS");
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super(message, "CONFLICT");
  }
}

export class RateLimitedError extends AppError {
  constructor(readonly retryAfterSeconds: number) {
    super(`Too many attempts; retry in ${retryAfterSeconds}s`, "RATE_LIMITED");
  }
}

/** An instance was asked to do something its status does not allow (see domain/instances/lifecycle.ts). */
export class IllegalTransitionError extends AppError {
  constructor(
    readonly from: string,
    readonly event: string,
  ) {
    super(`An instance in status ${from} does not accept ${event}`, "ILLEGAL_TRANSITION");
  }
}

/**
 * A search query the filter language cannot read; `token` is the offending text as typed.
 * UNRECORDED_FIELD: a field of the reference's language that this marketplace does not record.
 */
export class SearchQueryError extends AppError {
  constructor(
    message: string,
    readonly token: string,
    readonly field: string | null = null,
    code: "INVALID_QUERY" | "UNRECORDED_FIELD" = "INVALID_QUERY",
  ) {
    super(message, code);
  }
}

/**
 * An emailed token that cannot be used: UNKNOWN (never issued, forged, or another account's),
 * USED (it worked once already) or EXPIRED.
 */
export class InvalidTokenError extends AppError {
  constructor(readonly reason: "UNKNOWN" | "USED" | "EXPIRED") {
    super(
      reason === "USED" ? "This link was used already" : reason === "EXPIRED" ? "This link has expired: ask for a new one" : "This link is not valid",
      "INVALID_TOKEN",
    );
  }
}
