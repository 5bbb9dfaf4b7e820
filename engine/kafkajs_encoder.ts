/**
 * A faster varint writer for kafkajs's protocol encoder. kafkajs 2.2.4 (its last release) writes
 * each varint of each record by building a JS array and copying it through `Buffer.from(array)`,
 * which under Deno's Node compatibility layer is a slow path: about 6% of the engine's CPU and more
 * of the ingestion edge's. The replacement writes the same bytes straight into the encoder's
 * buffer. tests/unit/kafkajs_encoder_test.ts checks it byte for byte against the original.
 */
// @ts-types="./kafkajs_encoder.d.ts"
import Encoder from "kafkajs/src/protocol/encoder.js";

const MOST_SIGNIFICANT_BIT = 0x80;
const OTHER_BITS = 0x7f;
const UNSIGNED_INT32_MAX_NUMBER = 0xffffff80;
const UNSIGNED_INT64_MAX_NUMBER = 0xffffffffffffff80n;
const LOW_BITS_64 = 0x7fn;
const MAX_VARINT_BYTES = 5;
const MAX_VARLONG_BYTES = 10;

/** The encoder's fields and methods the replacement relies on (kafkajs/src/protocol/encoder.js). */
interface EncoderInternals {
  buf: Uint8Array;
  offset: number;
  ensureAvailable(length: number): void;
}

/** kafkajs's 64-bit integer (kafkajs/src/utils/long.js wraps a BigInt). */
interface LongLike {
  readonly value: bigint;
}

/** The original methods, kept for the equivalence test. */
export const originalEncoder = {
  writeUVarInt: Encoder.prototype.writeUVarInt,
  writeVarLong: Encoder.prototype.writeVarLong,
};

function writeUVarInt(this: EncoderInternals, value: number): EncoderInternals {
  this.ensureAvailable(MAX_VARINT_BYTES);
  const buf = this.buf;
  let offset = this.offset;
  while ((value & UNSIGNED_INT32_MAX_NUMBER) !== 0) {
    buf[offset++] = (value & OTHER_BITS) | MOST_SIGNIFICANT_BIT;
    value >>>= 7;
  }
  buf[offset++] = value & OTHER_BITS;
  this.offset = offset;
  return this;
}

function writeVarLong(this: EncoderInternals, value: unknown): EncoderInternals {
  let v = (Encoder as unknown as { encodeZigZag64(v: unknown): LongLike }).encodeZigZag64(value).value;
  this.ensureAvailable(MAX_VARLONG_BYTES);
  const buf = this.buf;
  let offset = this.offset;
  while ((v & UNSIGNED_INT64_MAX_NUMBER) !== 0n) {
    buf[offset++] = Number(v & LOW_BITS_64) | MOST_SIGNIFICANT_BIT;
    v >>= 7n;
  }
  buf[offset++] = Number(v & LOW_BITS_64);
  this.offset = offset;
  return this;
}

let installed = false;

/** Replaces kafkajs's varint writers (idempotent); the Kafka adapter calls it before creating clients. */
export function installFastEncoder(): void {
  if (installed) return;
  installed = true;
  Encoder.prototype.writeUVarInt = writeUVarInt as unknown as typeof Encoder.prototype.writeUVarInt;
  Encoder.prototype.writeVarLong = writeVarLong as unknown as typeof Encoder.prototype.writeVarLong;
}
