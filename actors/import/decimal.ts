/**
 * Numbers of a dataset's CSV fields, read as the HTTP API reads a query's numbers (http/query_params.ts): plain decimal
 * digits only. `Number()` read `0x10` as 16, `1e3` as 1000 and `.5` as 0.5, so that a corrupt field was imported as an
 * order of another amount instead of being skipped and counted.
 */

/** A number in decimal digits with at most one ".", digits on both sides, optionally negative. */
const DECIMAL = /^-?[0-9]+(\.[0-9]+)?$/;
/** An integer in decimal digits, optionally negative. */
const INTEGER = /^-?[0-9]+$/;

/** The field's number (spaces around it trimmed, as every field of a row), or NaN when it is not plain decimal. */
export function decimalField(text: string): number {
  const trimmed = text.trim();
  return DECIMAL.test(trimmed) ? Number(trimmed) : NaN;
}

/** The field's integer (spaces around it trimmed), or NaN when it is not written in decimal digits alone. */
export function integerField(text: string): number {
  const trimmed = text.trim();
  return INTEGER.test(trimmed) ? Number(trimmed) : NaN;
}
