import { describe, expect, it } from "vitest";
import { formatMoney, parseMoney } from "../domain/money.ts";

/** The definition, by strings alone: whole dollars, a point, the six decimals without trailing zeros beyond the cents. */
function reference(micros: bigint): string {
  const digits = (micros < 0n ? -micros : micros).toString().padStart(7, "0");
  const fraction = digits.slice(-6).replace(/0+$/, "").padEnd(2, "0");
  return `${micros < 0n ? "-" : ""}${digits.slice(0, -6)}.${fraction}`;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const EDGES = [
  0n, 1n, 9n, 10n, 100n, 999n, 1_000n, 10_000n, 100_000n, 389_000n, 500_000n, 999_999n, 1_000_000n, 1_000_001n, 1_001_000n,
  12_500_000n, 1_000_000_000n, SAFE - 1n, SAFE, SAFE + 1n, 10n ** 18n + 7n, 9_223_372_036_854_775_807n, 10n ** 30n + 500_000n,
].flatMap((micros) => [micros, -micros]);

/** Amounts of every length up to 22 digits, a third of them whole thousands of micro-dollars, a fifth negative. */
function randomAmounts(count: number): bigint[] {
  let seed = 12_345; // mulberry32: the same amounts on every run
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return Array.from({ length: count }, () => {
    let micros = 0n;
    for (let digit = 0, length = 1 + Math.floor(next() * 22); digit < length; digit++) micros = micros * 10n + BigInt(Math.floor(next() * 10));
    if (next() < 0.3) micros *= 1_000n;
    return next() < 0.2 ? -micros : micros;
  });
}

describe("formatMoney", () => {
  it("writes whole dollars and at least two decimals, at most six", () => {
    expect(EDGES.slice(0, 24).map(formatMoney)).toEqual([
      "0.00", "0.00", "0.000001", "-0.000001", "0.000009", "-0.000009", "0.00001", "-0.00001", "0.0001", "-0.0001", "0.000999", "-0.000999",
      "0.001", "-0.001", "0.01", "-0.01", "0.10", "-0.10", "0.389", "-0.389", "0.50", "-0.50", "0.999999", "-0.999999",
    ]);
    expect(formatMoney(12_500_000n)).toBe("12.50");
    expect(formatMoney(1_001_000n)).toBe("1.001");
    expect(formatMoney(-(10n ** 30n + 500_000n))).toBe("-1000000000000000000000000.50");
  });

  it("matches the definition on bigints on both sides of 2^53 µ$, and parses back to the same amount", () => {
    const amounts = [...EDGES, ...randomAmounts(100_000)];
    expect(amounts.filter((micros) => formatMoney(micros) !== reference(micros))).toEqual([]);
    // parseMoney takes at most 12 digits of whole dollars.
    const parseable = amounts.filter((micros) => micros < 10n ** 18n && micros > -(10n ** 18n));
    expect(parseable.filter((micros) => parseMoney(formatMoney(micros)) !== micros)).toEqual([]);
  });

  it("writes a safe-integer number of micro-dollars as the same bigint, and refuses any other number", () => {
    const safe = [...EDGES, ...randomAmounts(100_000)].filter((micros) => micros <= SAFE && micros >= -SAFE);
    expect(safe.length).toBeGreaterThan(50_000);
    expect(safe.filter((micros) => formatMoney(Number(micros)) !== formatMoney(micros))).toEqual([]);
    expect(formatMoney(-0)).toBe("0.00");
    for (const number of [0.5, -1.5, 1e-7, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, -(2 ** 53)]) {
      expect(() => formatMoney(number)).toThrow(RangeError);
    }
  });
});
