/**
 * Kafka's default partitioner for keyed records: murmur2 of the key's UTF-8 bytes, made positive,
 * modulo the partition count. Computing it ourselves lets queries find a key's owner and lets
 * the embedded log place records exactly where Kafka would.
 */

import { asciiInto } from "../actors/hash.ts";

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const encoder = new TextEncoder();

/** Kafka's 32-bit murmur2 hash (signed, as Java computes it) of `data`'s first `length` bytes. */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail === 3) h ^= data[whole + 2] << 16;
  if (tail >= 2) h ^= data[whole + 1] << 8;
  if (tail >= 1) {
    h ^= data[whole];
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Longest key copied into the scratch buffer; longer ones are encoded. */
const SCRATCH_BYTES = 256;
const scratch = new Uint8Array(SCRATCH_BYTES);

/** The partition Kafka's default partitioner picks for `key`. */
export function partitionForKey(key: string, partitionCount: number): number {
  return (keyHash(key) & 0x7fffffff) % partitionCount;
}

/** murmur2 of the key's UTF-8 bytes. An ASCII key (ids) is its own UTF-8: copied, not encoded (a call into Deno). */
function keyHash(key: string): number {
  if (asciiInto(key, scratch)) return murmur2(scratch, key.length);
  return murmur2(encoder.encode(key));
}
