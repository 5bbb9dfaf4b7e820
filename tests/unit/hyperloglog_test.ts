import assert from "node:assert/strict";
import { fromBase64, toBase64 } from "../../actors/base64.ts";
import { HyperLogLog, type HyperLogLogData, VIEWER_PRECISION } from "../../actors/hyperloglog.ts";

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

/** The persisted form a sketch with these register ranks must have (dense once over a quarter of the registers). */
function expectedJSON(p: number, ranks: Map<number, number>): HyperLogLogData {
  const m = 1 << p;
  if (ranks.size * 4 > m) {
    const dense = new Uint8Array(m);
    for (const [index, rank] of ranks) dense[index] = rank;
    return { p, dense: toBase64(dense) };
  }
  const indexes = [...ranks.keys()].sort((a, b) => a - b);
  const bytes = new Uint8Array(indexes.length * 4);
  const view = new DataView(bytes.buffer);
  indexes.forEach((index, i) => view.setUint32(i * 4, (index << 5) | ranks.get(index)!, true));
  return { p, sparse: toBase64(bytes) };
}

Deno.test("HyperLogLog versions share registers yet each stays exact, read or added to in any order", () => {
  // Adds mostly extend the newest version (changing the shared registers in place) but also branch from and
  // read older ones, which must rebuild their own registers; every version is checked against a plain model.
  let seed = 0x9e3779b9;
  const random = () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  // Small precisions branch a lot; at p = 10 the newest version is extended far more often, so the
  // sparse words grow through several capacities (up to 256) before turning dense.
  for (const [p, steps, newest] of [[4, 4000, 0.8], [6, 4000, 0.8], [7, 4000, 0.8], [10, 6000, 0.97]]) {
    const q = 32 - p;
    const versions = [{ sketch: HyperLogLog.empty(p), ranks: new Map<number, number>() }];
    const pick = () => versions[random() < newest ? versions.length - 1 : Math.floor(random() * versions.length)];
    const check = (version: (typeof versions)[number], label: string) => {
      const expected = expectedJSON(p, version.ranks);
      assert.deepEqual(version.sketch.toJSON(), expected, label);
      assert.equal(version.sketch.isSparse, expected.sparse !== undefined, label);
      assert.equal(version.sketch.estimate(), HyperLogLog.fromJSON(expected).estimate(), label);
    };
    for (let step = 0; step < steps; step++) {
      const from = pick();
      const roll = random();
      if (roll < 0.2) {
        check(from, `p=${p}, step ${step}: read`);
        continue;
      }
      if (roll < 0.23) {
        // Branch from a restored copy, and from a union with another version.
        versions.push({ sketch: HyperLogLog.fromJSON(from.sketch.toJSON()), ranks: from.ranks });
        const other = versions[Math.floor(random() * versions.length)];
        const union = new Map(from.ranks);
        for (const [index, rank] of other.ranks) union.set(index, Math.max(rank, union.get(index) ?? 0));
        versions.push({ sketch: from.sketch.merge(other.sketch), ranks: union });
        continue;
      }
      // Few distinct hashes, so that many adds change nothing or raise a register already set.
      const hash = random() < 0.5 ? Math.floor(random() * 2 ** 32) : [0x12345678, 0xfedcba98, 0x0000ffff][step % 3];
      const index = hash >>> q;
      const rank = Math.min(Math.clz32((hash << p) >>> 0) + 1, q + 1);
      const ranks = new Map(from.ranks);
      if ((ranks.get(index) ?? 0) < rank) ranks.set(index, rank);
      const sketch = from.sketch.addHash(hash);
      if (ranks.size === from.ranks.size && ranks.get(index) === from.ranks.get(index)) {
        assert.equal(sketch, from.sketch, `p=${p}, step ${step}: an add that changes nothing returns the same sketch`);
      } else {
        versions.push({ sketch, ranks });
      }
    }
    assert.ok(versions.length > 500, `p=${p}: ${versions.length} versions`);
    assert.ok(versions.some((v) => !v.sketch.isSparse), `p=${p}: some versions dense`);
    const largestSparse = Math.max(...versions.filter((v) => v.sketch.isSparse).map((v) => v.ranks.size));
    assert.ok(largestSparse * 8 > 1 << p, `p=${p}: sparse versions up to ${largestSparse} words, near the switch`);
    for (const [n, version] of [...versions.entries()].reverse()) check(version, `p=${p}, version ${n}`);
    // Merging old versions reads their own registers too.
    const [a, b] = [versions[1], versions[Math.floor(versions.length / 2)]];
    const union = new Map(a.ranks);
    for (const [index, rank] of b.ranks) union.set(index, Math.max(rank, union.get(index) ?? 0));
    assert.deepEqual(a.sketch.merge(b.sketch).toJSON(), expectedJSON(p, union));
  }
});

Deno.test("HyperLogLog never reserves more for sparse words than its dense form takes", () => {
  // A restored sketch holds exactly its words; growing from any size must stop at the m/4 words
  // where the sketch turns dense (m bytes), not double past it.
  const words = (h: HyperLogLog) => h.isSparse ? fromBase64(h.toJSON().sparse ?? "").length / 4 : Infinity;
  for (const p of [4, 10, VIEWER_PRECISION]) {
    const m = 1 << p;
    for (const start of [1, 3, m / 8 + 1, m / 4 - 1]) {
      let h = HyperLogLog.empty(p);
      for (let i = 0; words(h) < start; i++) h = h.add(`x${i}`);
      assert.equal(words(h), start);
      h = HyperLogLog.fromJSON(h.toJSON());
      assert.equal(h.registerBytes, 4 * start, "restored: exactly its words");
      for (let n = 0; h.isSparse; n++) {
        assert.ok(h.registerBytes <= m, `p=${p} from ${start} words: ${h.registerBytes} bytes reserved, dense is ${m}`);
        h = h.add(`y${n}`);
      }
      assert.equal(h.registerBytes, m);
    }
  }
});
