/** Unsigned LEB128 varints of safe non-negative integers, for the engine's compact binary forms. */

/** Bytes the varint of `n` takes. */
export function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    length++;
  }
  return length;
}

/** Writes the varint of `n` into `out` at `at` (room for `varintLength(n)` bytes); returns the position after it. */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}
