/**
 * Money as integer thousandths of the currency unit ("millis"), so that sums are exact and do not
 * depend on the order in which amounts arrive (floating-point addition is not associative). Amounts
 * are converted once, at the edge of a handler; a line's value (quantity × price) is rounded as a
 * whole, so that 1,000 units at 0.0004 are worth 0.4, not 1,000 × a price rounded to 0.
 */

/** Thousandths per currency unit. */
export const MILLIS_PER_UNIT = 1000;

/** An amount in currency units as integer millis. */
export function toMillis(amount: number): number {
  return Math.round(amount * MILLIS_PER_UNIT);
}

/** Integer millis as currency units. */
export function fromMillis(millis: number): number {
  return millis / MILLIS_PER_UNIT;
}

/** A ratio rounded to six decimals for display (0 when the denominator is 0). */
export function ratioOf(numerator: number, denominator: number): number {
  return denominator > 0 ? Math.round((numerator / denominator) * 1e6) / 1e6 : 0;
}

/**
 * Whether the integer `a` is at least `times` × the integer `b`, exactly for a multiplier written in decimal (a
 * setting such as 1.1, whose binary value times 3,000 is 3,300.0000000000005): compared as integers.
 */
export function atLeastTimes(a: number | bigint, times: number, b: number): boolean {
  const [digits, exponent] = decimalDigits(times);
  const scale = 10n ** BigInt(Math.max(0, -exponent));
  const scaled = BigInt(digits) * 10n ** BigInt(Math.max(0, exponent));
  return BigInt(a) * scale >= scaled * BigInt(b);
}

/** A finite non-negative number's shortest decimal form as integer digits × 10^exponent. */
function decimalDigits(x: number): [string, number] {
  const match = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(x));
  if (!match) throw new RangeError(`not a finite non-negative number: ${x}`);
  const [, whole, fraction = "", exponent = "0"] = match;
  return [whole + fraction, Number(exponent) - fraction.length];
}
