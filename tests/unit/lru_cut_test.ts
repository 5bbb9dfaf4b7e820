import assert from "node:assert/strict";
import { lruCuts, NO_CUT } from "../../engine/lru_cut.ts";

Deno.test("lruCuts takes the least recently used across sequences, not a share of each", () => {
  // Partition 0 used a minute before partition 1: the four oldest are all partition 0's.
  const cuts = lruCuts([[1_000, 1_001, 1_002, 1_003], [61_000, 61_001, 61_002, 61_003]], 4);
  assert.deepEqual(cuts, [{ usedAt: 1_003, ties: 1 }, { usedAt: 1_003, ties: 0 }]);
});

Deno.test("lruCuts shares actors used at the cut out by count, so that the total is exact", () => {
  const cuts = lruCuts([[5, 7, 7, 7], [7, 7, 9], [6, 7]], 5);
  // Taken: 5, 6, then three of the six used at 7.
  assert.equal(cuts.every((cut) => cut.usedAt === 7), true);
  assert.equal(cuts.reduce((n, cut) => n + cut.ties, 0), 3);
  assert.equal(cuts[0].ties <= 3 && cuts[1].ties <= 2 && cuts[2].ties <= 1, true, "no sequence gives more than it has");
});

Deno.test("lruCuts takes every actor when there are fewer than asked, and nothing when none is asked", () => {
  assert.deepEqual(lruCuts([[1, 2], [], [3]], 10), [{ usedAt: 3, ties: 0 }, { usedAt: 3, ties: 0 }, {
    usedAt: 3,
    ties: 1,
  }]);
  assert.deepEqual(lruCuts([[1, 2], [3]], 0), [NO_CUT, NO_CUT]);
  assert.deepEqual(lruCuts([], 3), []);
});

Deno.test("lruCuts reads each sequence only as far as the actors it takes", () => {
  let read = 0;
  function* counted(from: number, length: number): Generator<number> {
    for (let i = 0; i < length; i++, read++) yield from + i;
  }
  lruCuts([counted(0, 100_000), counted(50, 100_000), counted(10_000_000, 100_000)], 100);
  assert.ok(read <= 103, `read ${read} use times for 100 actors`);
});
