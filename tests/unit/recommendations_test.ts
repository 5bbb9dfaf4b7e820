import assert from "node:assert/strict";
import {
  bump,
  type CoCounts,
  coCountsFromJSON,
  coCountsToJSON,
  compare,
  rankRelated,
} from "../../actors/recommendations.ts";
import { prng } from "../helpers/prng.ts";
import { parseJson } from "../../engine/json_parse.ts";

/**
 * The specification of `bump` (Space-Saving): each id in turn counts one more; a new id on a full
 * product replaces the lowest count (ties: the larger id) and inherits it, plus one.
 */
function reference(counts: CoCounts, related: readonly string[], self: string, limit: number): [string, number][] {
  const all = new Map(counts);
  const lowestFirst = ([a, x]: [string, number], [b, y]: [string, number]) => x - y || compare(b, a);
  while (all.size > limit) all.delete([...all].sort(lowestFirst)[0][0]);
  for (const id of new Set(related)) {
    if (id === self) continue;
    if (all.has(id) || all.size < limit) {
      all.set(id, (all.get(id) ?? 0) + 1);
      continue;
    }
    if (all.size === 0) continue;
    const [worst, lowest] = [...all].sort(lowestFirst)[0];
    all.delete(worst);
    all.set(id, lowest + 1);
  }
  return [...all];
}

const byId = ([a]: [string, unknown], [b]: [string, unknown]) => compare(a, b);

Deno.test("bump() keeps at most the limit's counts, as Space-Saving does, ties by product id", () => {
  const names = ["__proto__", "constructor", "toString", ...Array.from({ length: 40 }, (_, i) => `p${i}`)];
  for (let seed = 1; seed <= 30; seed++) {
    const random = prng(seed);
    const limit = [1, 3, 8, 20][seed % 4];
    let counts: CoCounts = new Map();
    for (let step = 0; step < 300; step++) {
      // Skewed: a few products gather most co-occurrences, so counts tie and the full set keeps changing.
      const related = Array.from({ length: Math.floor(random() * 4) }, () => names[Math.floor(random() ** 2 * 43)]);
      const self = names[Math.floor(random() * names.length)];
      const expected = reference(counts, related, self, limit).sort(byId);
      const before = [...counts];
      const next = bump(counts, related, self, limit);
      assert.deepEqual([...counts], before, "the counts given are left alone");
      assert.deepEqual([...next].sort(byId), expected, `seed ${seed} step ${step}`);
      // Persisted as a plain object with own keys (also `__proto__`), and restored to the same counts.
      const json = parseJson(JSON.stringify(coCountsToJSON(next))) as Record<string, number>;
      assert.deepEqual(Object.entries(json).sort(byId), expected);
      assert.deepEqual(coCountsFromJSON(json), next);
      counts = next;
    }
  }
});

Deno.test("bump(): a product seen often after the counts filled up gets in and stays (it was evicted on arrival)", () => {
  let counts: CoCounts = new Map(Array.from({ length: 50 }, (_, i) => [`old${i}`, 2]));
  for (let i = 0; i < 20; i++) counts = bump(counts, ["new"], "hot", 50);
  assert.equal(counts.size, 50);
  assert.equal(counts.get("new"), 22, "it inherited an evicted count of 2 and was counted 20 times");
  const best = [...counts].sort(([a, x], [b, y]) => y - x || compare(a, b))[0];
  assert.deepEqual(best, ["new", 22]);
});

Deno.test("bump(): counts kept under a higher limit (a checkpoint before RELATED_CANDIDATES was lowered) are trimmed", () => {
  const restored: CoCounts = new Map([["a", 5], ["b", 1], ["c", 3], ["d", 1], ["e", 4]]);
  // Space-Saving alone never shrinks a full map: five stayed with a limit of three.
  assert.deepEqual([...bump(restored, ["c"], "self", 3)].sort(byId), [["a", 5], ["c", 4], ["e", 4]]);
});

Deno.test("rankRelated() ranks by co-views + weight × co-buys, ties by product id, and leaves out a zero score", () => {
  const viewed = new Map([["z", 2], ["b", 2], ["m", 1]]);
  const bought = new Map([["m", 1], ["q", 4]]);
  assert.deepEqual(rankRelated(viewed, bought, 0, 10), [
    { productId: "b", score: 2 },
    { productId: "z", score: 2 },
    { productId: "m", score: 1 },
  ]);
  assert.deepEqual(rankRelated(viewed, bought, 0.5, 3, new Set(["q"])), [
    { productId: "b", score: 2 },
    { productId: "z", score: 2 },
    { productId: "m", score: 1.5 },
  ]);
});
