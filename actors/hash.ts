/**
 * Deterministic, seedable string hashes for sketches, dedupe memories and derived ids. No
 * randomness: the same input gives the same value in every process, so replays agree.
 */

const encoder = new TextEncoder();
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Longest text copied into the scratch buffer; longer text is encoded. */
const SCRATCH_BYTES = 256;
const scratch = new Uint8Array(SCRATCH_BYTES);

/** MurmurHash3 (x86, 32-bit) of the UTF-8 bytes of `text`, as an unsigned 32-bit integer. */
export function murmur3(text: string, seed = 0): number {
  // ASCII (ids, keys) is its own UTF-8: copy the code units instead of encoding (a call into Deno
  // and an allocation). One byte-reading loop for both keeps the hash's hot loop monomorphic.
  if (asciiInto(text, scratch)) return murmur3Bytes(scratch, seed, text.length);
  return murmur3Bytes(encoder.encode(text), seed);
}

/**
 * Copies `text` into `out` when it is ASCII (its own UTF-8) and fits: hashing a key then needs no
 * `TextEncoder` call or allocation. Returns whether it did.
 */
export function asciiInto(text: string, out: Uint8Array): boolean {
  const length = text.length;
  if (length > out.length) return false;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return false;
    out[i] = c;
  }
  return true;
}

/** MurmurHash3 (x86, 32-bit) of `data`'s first `length` bytes. */
export function murmur3Bytes(data: Uint8Array, seed = 0, length = data.length): number {
  let h = seed >>> 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = length & 3;
  if (tail === 3) k ^= data[whole + 2] << 16;
  if (tail >= 2) k ^= data[whole + 1] << 8;
  if (tail >= 1) {
    k ^= data[whole];
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 52-bit hash (exact in a double), for compact dedupe memories where 32 bits collide too often. */
export function hash52(text: string): number {
  return (murmur3(text, 0x2f1b) & 0xfffff) * 2 ** 32 + murmur3(text, 0x9e37);
}

/** A name-derived UUID (RFC 9562 version 8, hash-based): the same name always gives the same id. */
export function nameUuid(name: string): string {
  const words = [murmur3(name, 1), murmur3(name, 2), murmur3(name, 3), murmur3(name, 4)];
  const hex = words.map((w) => w.toString(16).padStart(8, "0")).join("").split("");
  hex[12] = "8";
  hex[16] = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  const s = hex.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}
