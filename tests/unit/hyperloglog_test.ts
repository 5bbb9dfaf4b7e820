import assert from "node:assert/strict";
import { HyperLogLog, VIEWER_PRECISION } from "../../actors/hyperloglog.ts";

function sketch(ids: Iterable<string>, p = VIEWER_PRECISION): HyperLogLog {
  let h = HyperLogLog.empty(p);
  for (const id of ids) h = h.add(id);
  return h;
}

function* range(prefix: string, from: number, to: number): Generator<string> {
  for (let i = from; i < to; i++) yield `${prefix}${i}`;
}

Deno.test("HyperLogLog estimates 100,000 distinct viewers within 2% (and repeats change nothing)", () => {
  for (const prefix of ["user-", "viewer:", "5413"]) {
    let h = sketch(range(prefix, 0, 100_000));
    const estimate = h.estimate();
    assert.ok(Math.abs(estimate - 100_000) / 100_000 <= 0.02, `${prefix}: ${estimate}`);
    for (const id of range(prefix, 0, 1000)) h = h.add(id);
    assert.equal(h.estimate(), estimate);
  }
});

Deno.test("HyperLogLog is exact-ish for small counts and within 2% across the range", () => {
  assert.equal(HyperLogLog.empty().estimate(), 0);
  assert.equal(sketch(["a"]).estimate(), 1);
  assert.equal(sketch(["a", "b", "a", "c"]).estimate(), 3);
  for (const n of [10, 100, 1_000, 5_000, 20_000]) {
    const estimate = sketch(range("u", 0, n)).estimate();
    assert.ok(Math.abs(estimate - n) / n <= 0.02, `${n}: ${estimate}`);
  }
});

Deno.test("HyperLogLog.merge() gives the union, whatever the forms and order", () => {
  const a = sketch(range("u", 0, 30_000)); // dense
  const b = sketch(range("u", 20_000, 50_000)); // dense, overlapping
  const c = sketch(range("u", 49_000, 49_500)); // sparse
  const all = sketch(range("u", 0, 50_000));
  assert.equal(a.merge(b).merge(c).estimate(), all.estimate());
  assert.equal(c.merge(b).merge(a).estimate(), all.estimate());
  assert.deepEqual(a.merge(b).toJSON(), all.toJSON(), "the same registers as one sketch of the union");
  const small = sketch(range("v", 0, 100)).merge(sketch(range("v", 50, 150)));
  assert.ok(small.isSparse);
  assert.deepEqual(small.toJSON(), sketch(range("v", 0, 150)).toJSON());
  assert.ok(Math.abs(small.estimate() - 150) <= 3);
  assert.throws(() => a.merge(HyperLogLog.empty(12)), RangeError);
});

Deno.test("HyperLogLog serialises compactly and round-trips, sparse and dense", () => {
  for (const n of [0, 1, 37, 3_000, 60_000]) {
    const h = sketch(range("id-", 0, n));
    const json = JSON.parse(JSON.stringify(h.toJSON()));
    const back = HyperLogLog.fromJSON(json);
    assert.equal(back.estimate(), h.estimate(), `${n}`);
    assert.deepEqual(back.toJSON(), h.toJSON());
    assert.equal(back.add("new").estimate(), h.add("new").estimate());
  }
  const sparse = sketch(range("id-", 0, 100)).toJSON();
  assert.ok(
    sparse.sparse !== undefined && sparse.sparse.length <= 4 * 100 * 4 / 3 + 4,
    "≈ 4 bytes per register in use",
  );
  const dense = sketch(range("id-", 0, 60_000)).toJSON();
  assert.equal(dense.dense?.length, Math.ceil((1 << VIEWER_PRECISION) / 3) * 4, "one byte per register, base64");
  assert.throws(() => HyperLogLog.fromJSON({ p: 14, dense: "AAAA" }), RangeError);
  assert.throws(() => HyperLogLog.empty(3), RangeError);
});

Deno.test("HyperLogLog values are immutable: add() returns a new sketch and leaves the old one alone", () => {
  const a = sketch(range("x", 0, 10));
  const before = a.toJSON();
  const b = a.add("y");
  assert.notEqual(a, b);
  assert.deepEqual(a.toJSON(), before);
  assert.equal(b.add("y"), b, "an add that changes nothing returns the same sketch");
});
