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

/** 389000n → "0.389"; keeps at least two decimals ("12.50"). */
export function formatMoney(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const sign = negative ? "-" : "";
  if (abs > MAX_SAFE_MICROS) {
    let fraction = (abs % MICROS_PER_DOLLAR).toString().padStart(6, "0").replace(/0+$/, "");
    if (fraction.length < 2) fraction = fraction.padEnd(2, "0");
    return `${sign}${abs / MICROS_PER_DOLLAR}.${fraction}`;
  }
  // Exact in a double below 2^53, and several times faster than bigint division and regular
  // expressions (a price series formats ~10^5 amounts).
  const value = Number(abs);
  const whole = Math.floor(value / 1_000_000);
  let fraction = value - whole * 1_000_000;
  if (fraction === 0) return `${sign}${whole}.00`;
  let digits = 6;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${sign}${whole}.${String(fraction).padStart(digits, "0")}${digits < 2 ? "0" : ""}`;
}
