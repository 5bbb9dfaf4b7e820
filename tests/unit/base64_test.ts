import assert from "node:assert/strict";
import { fromBase64, toBase64 } from "../../actors/base64.ts";
import { prng } from "../helpers/prng.ts";

/** The platform's encoding, the reference. */
const viaBtoa = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

Deno.test("toBase64 encodes as btoa does and fromBase64 gives the bytes back, at every length and byte value", () => {
  const random = prng(11);
  const lengths = [...Array.from({ length: 300 }, (_, n) => n), 4_095, 16_384];
  for (const length of lengths) {
    const bytes = Uint8Array.from({ length }, () => Math.floor(random() * 256));
    const text = toBase64(bytes);
    assert.equal(text, viaBtoa(bytes), `length ${length}`);
    assert.deepEqual(fromBase64(text), bytes, `length ${length}`);
  }
  const every = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.equal(toBase64(every), viaBtoa(every));
  assert.deepEqual(fromBase64(viaBtoa(every)), every);
});

Deno.test("fromBase64 refuses what is not standard padded base64", () => {
  for (const bad of ["A", "AB", "ABC", "AB=C", "A===", "====", "AB C", "ABC\u00e9", "AB-_", "ABCD=", "=ABC"]) {
    assert.throws(() => fromBase64(bad), SyntaxError, JSON.stringify(bad));
  }
  assert.deepEqual(fromBase64(""), new Uint8Array(0));
  assert.deepEqual(fromBase64("AA=="), new Uint8Array([0]));
  assert.deepEqual(fromBase64("//8="), new Uint8Array([255, 255]));
});
