/** UUIDv7 (RFC 9562): time-ordered ids for events that arrive without one. */

/** Random bytes fetched per `crypto.getRandomValues` call, shared by the next ids (10 bytes each). */
const RANDOM_POOL_BYTES = 4096;
const RANDOM_BYTES_PER_ID = 10;
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
const pool = new Uint8Array(RANDOM_POOL_BYTES);
let poolAt = RANDOM_POOL_BYTES;

/** A new UUIDv7 for the given time (defaults to now); ids are generated on the ingestion hot path. */
export function uuidv7(nowMs: number = Date.now()): string {
  if (poolAt + RANDOM_BYTES_PER_ID > RANDOM_POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const r = poolAt;
  poolAt += RANDOM_BYTES_PER_ID;
  const high = Math.floor(nowMs / 0x10000); // the top 32 of the 48 timestamp bits
  const low = nowMs % 0x10000;
  return HEX[(high >>> 24) & 0xff] + HEX[(high >>> 16) & 0xff] + HEX[(high >>> 8) & 0xff] + HEX[high & 0xff] + "-" +
    HEX[low >>> 8] + HEX[low & 0xff] + "-" +
    HEX[0x70 | (pool[r] & 0x0f)] + HEX[pool[r + 1]] + "-" +
    HEX[0x80 | (pool[r + 2] & 0x3f)] + HEX[pool[r + 3]] + "-" +
    HEX[pool[r + 4]] + HEX[pool[r + 5]] + HEX[pool[r + 6]] + HEX[pool[r + 7]] + HEX[pool[r + 8]] + HEX[pool[r + 9]];
}
