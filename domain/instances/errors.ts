import { AppError } from "../errors.ts";
import { formatMoney } from "../money.ts";

/** The offer no longer exists or its machine cannot be rented now (unlisted, offline, ended). */
export class OfferUnavailableError extends AppError {
  constructor(
    readonly offerId: string,
    reason: string,
  ) {
    super(`Offer ${offerId} cannot be rented: ${reason}`, "OFFER_UNAVAILABLE");
  }
}

/** On-demand rentals need GPUs that no other on-demand contract holds. */
export class InsufficientGpusError extends AppError {
  constructor(
    readonly requested: number,
    readonly available: number,
  ) {
    super(`${requested} GPUs requested but only ${available} are free of other on-demand rentals`, "INSUFFICIENT_GPUS");
  }
}

/** The disks of a machine's instances (every one not destroyed) never add up to more than its disk. */
export class InsufficientDiskError extends AppError {
  constructor(
    readonly requestedGb: number,
    readonly availableGb: number,
  ) {
    super(`${requestedGb} GB of disk requested but only ${availableGb} GB are free on the machine`, "INSUFFICIENT_DISK");
  }
}

/** A bid under the machine's minimum bid (its reserve price). */
export class BidTooLowError extends AppError {
  constructor(readonly minBidMicros: bigint) {
    super("The bid is below the machine's minimum bid per GPU-hour", "BID_TOO_LOW");
  }
}

/** Renting or starting needs credit: a balance at or below zero runs nothing (debit-mode accounts excepted). */
export class InsufficientBalanceError extends AppError {
  constructor(readonly balanceMicros: bigint) {
    super(`The account's balance is $${formatMoney(balanceMicros)}: add credit before renting or starting an instance`, "INSUFFICIENT_BALANCE");
  }
}
