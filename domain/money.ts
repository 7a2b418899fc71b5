/**
 * Money is integer micro-dollars (1 USD = 1_000_000) held in bigint: never a float.
 * Rates below a micro-dollar (per-second GPU time) are computed from whole-hour prices with
 * integer division at the moment of charging, never stored as fractions.
 */
export const MICROS_PER_DOLLAR = 1_000_000n;

const MONEY_PATTERN = /^(-)?(\d{1,12})(?:\.(\d{1,6}))?$/;

/** "0.389" → 389000n; null when not a decimal with at most 6 fraction digits. */
export function parseMoney(text: string): bigint | null {
  const match = MONEY_PATTERN.exec(text.trim());
  if (!match) return null;
  const [, sign, whole, fraction = ""] = match;
  const micros = BigInt(whole) * MICROS_PER_DOLLAR + BigInt(fraction.padEnd(6, "0"));
  return sign ? -micros : micros;
}

const MAX_SAFE_MICROS = BigInt(Number.MAX_SAFE_INTEGER);

/** 0–999 as three digits ("007"), the same without trailing zeros ("5" for 500), and with at least two kept ("50"). */
const THREE_DIGITS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));
const THREE_DIGITS_TRIMMED = THREE_DIGITS.map((digits) => digits.replace(/0+$/, ""));
const TWO_OR_THREE_DIGITS = THREE_DIGITS_TRIMMED.map((digits) => digits.padEnd(2, "0"));

/**
 * 389000n → "0.389"; keeps at least two decimals ("12.50"). Also takes micro-dollars as a safe-integer
 * number, as SQL's JSON carries them (a price series); any other number is refused, never rounded.
 */
export function formatMoney(micros: bigint | number): string {
  if (typeof micros === "number" && !Number.isSafeInteger(micros)) throw new RangeError(`${micros} is not a whole number of micro-dollars`);
  const negative = micros < 0;
  const abs = negative ? -micros : micros;
  let whole: number | bigint;
  let fraction: number;
  if (typeof abs === "bigint" && abs > MAX_SAFE_MICROS) {
    whole = abs / MICROS_PER_DOLLAR;
    fraction = Number(abs % MICROS_PER_DOLLAR);
  } else {
    // Exact in a double below 2^53, and several times faster than bigint division and strings'
    // padding and regular expressions (a price series formats ~10^5 amounts).
    const value = Number(abs);
    whole = Math.floor(value / 1_000_000);
    fraction = value - whole * 1_000_000;
  }
  const high = Math.floor(fraction / 1000);
  const low = fraction - high * 1000;
  return `${negative ? "-" : ""}${whole}.${low === 0 ? TWO_OR_THREE_DIGITS[high] : THREE_DIGITS[high] + THREE_DIGITS_TRIMMED[low]}`;
}
