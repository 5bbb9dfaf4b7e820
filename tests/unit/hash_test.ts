import assert from "node:assert/strict";
import fc from "fast-check";
import { hash52, murmur3, murmur3Bytes } from "../../actors/hash.ts";

Deno.test("murmur3() gives MurmurHash3 x86_32's published values", () => {
  assert.equal(murmur3(""), 0);
  assert.equal(murmur3("", 1), 0x514e28b7);
  assert.equal(murmur3("hello"), 0x248bfa47);
  assert.equal(murmur3("The quick brown fox jumps over the lazy dog"), 0x2e4ff723);
  // Computed with Python's mmh3 5.x: text of 256 ASCII bytes (the longest copied), longer, and not ASCII.
  assert.equal(murmur3(`user-${"x".repeat(251)}`, 7), 0x7ceffa37);
  assert.equal(murmur3("a".repeat(300)), 0x430c10f3);
  assert.equal(murmur3("produit-é"), 0x289ba1b8);
  assert.equal(murmur3("ü".repeat(200), 3), 0xd714b199);
});

Deno.test("murmur3() of a string is murmur3 of its UTF-8 bytes, ASCII fast path or not", () => {
  const encoder = new TextEncoder();
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" })), fc.nat(), (text, seed) => {
      assert.equal(murmur3(text, seed), murmur3Bytes(encoder.encode(text), seed));
    }),
    { numRuns: 2_000 },
  );
  assert.equal(
    hash52("events-3-1234-p0"),
    (murmur3("events-3-1234-p0", 0x2f1b) & 0xfffff) * 2 ** 32 + murmur3("events-3-1234-p0", 0x9e37),
  );
});
