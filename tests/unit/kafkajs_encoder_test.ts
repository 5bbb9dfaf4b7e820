/** The faster kafkajs varint writers produce exactly the bytes of kafkajs's own. */
import assert from "node:assert/strict";
// @ts-types="../../engine/kafkajs_encoder.d.ts"
import Encoder from "kafkajs/src/protocol/encoder.js";
import { installFastEncoder, originalEncoder } from "../../engine/kafkajs_encoder.ts";
import { prng } from "../helpers/prng.ts";

/** Encodes `values` with the given writer into one fresh encoder (tiny, so it must grow). */
function encode(values: readonly number[], write: (e: Encoder, v: number) => void): Uint8Array {
  const encoder = new Encoder(1);
  for (const v of values) write(encoder, v);
  return new Uint8Array(encoder.buffer);
}

Deno.test("patched writeVarInt and writeVarLong write kafkajs's bytes for every kind of value", () => {
  const random = prng(7);
  const edges = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, -8193, 2 ** 31 - 1, -(2 ** 31)];
  const ints = [...edges, ...Array.from({ length: 5_000 }, () => Math.floor((random() - 0.5) * 2 ** 32) | 0)];
  const longs = [
    ...edges,
    Date.now(),
    -Date.now(),
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    ...Array.from({ length: 5_000 }, () => Math.floor((random() - 0.5) * 2 ** 53)),
  ];
  const before = {
    varInt: encode(ints, (e, v) => originalEncoder.writeUVarInt.call(e, Encoder.encodeZigZag(v))),
    varLong: encode(longs, (e, v) => originalEncoder.writeVarLong.call(e, v)),
  };
  installFastEncoder();
  assert.notEqual(Encoder.prototype.writeUVarInt, originalEncoder.writeUVarInt, "the patch is installed");
  const after = {
    varInt: encode(ints, (e, v) => e.writeVarInt(v)),
    varLong: encode(longs, (e, v) => e.writeVarLong(v)),
  };
  assert.ok(before.varInt.length > ints.length && before.varLong.length > longs.length);
  assert.deepEqual(after.varInt, before.varInt);
  assert.deepEqual(after.varLong, before.varLong);
});
