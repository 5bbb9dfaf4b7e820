import assert from "node:assert/strict";
import {
  admit,
  admitId,
  decodeRuns,
  EMPTY_DEDUPE,
  encodeRuns,
  factSource,
  insertOffset,
  persistDedupe,
  restoreDedupe,
} from "../../actors/dedupe.ts";
import { prng } from "../helpers/prng.ts";

const bounds = { window: 100, recentLimit: 3 };

Deno.test("factSource() reads the source partition and offset of a message output id, not of a timer output id", () => {
  assert.deepEqual(factSource("events-3-1234-p0"), { source: "events-3", offset: 1234 });
  assert.deepEqual(factSource("shop-events-11-7-a"), { source: "shop-events-11", offset: 7 });
  assert.equal(factSource("timer-user-alice-cart-1767261600000-a"), undefined);
  assert.equal(factSource("not an id"), undefined);
});

Deno.test("insertOffset() keeps seen offsets as merged runs and refuses repeats and offsets below the window", () => {
  let runs: number[] = [];
  for (const offset of [5, 7, 6, 1, 2, 10]) runs = insertOffset(runs, offset, 100)!;
  assert.deepEqual(runs, [1, 2, 5, 7, 10, 10]);
  for (const offset of [1, 2, 5, 6, 7, 10]) assert.equal(insertOffset(runs, offset, 100), null, `${offset}`);
  assert.deepEqual(insertOffset(runs, 3, 100), [1, 3, 5, 7, 10, 10]);
  assert.deepEqual(insertOffset(runs, 4, 100), [1, 2, 4, 7, 10, 10]);
  runs = insertOffset(runs, 150, 100)!;
  assert.deepEqual(runs, [150, 150], "runs wholly below the window are dropped");
  assert.equal(insertOffset(runs, 50, 100), null, "below the window: a replay");
  assert.deepEqual(insertOffset(runs, 51, 100), [51, 51, 150, 150]);
});

Deno.test("insertOffset() agrees with a set of the offsets seen within the window, for random insertion orders", () => {
  const expand = (runs: readonly number[]) => {
    const offsets: number[] = [];
    for (let k = 0; k < runs.length; k += 2) for (let o = runs[k]; o <= runs[k + 1]; o++) offsets.push(o);
    return offsets;
  };
  for (let seed = 1; seed <= 40; seed++) {
    const random = prng(seed);
    const window = [1, 2, 5, 16, 64][seed % 5];
    // Mostly rising offsets with gaps (a product's share of a source), sometimes late or repeated ones.
    let runs: number[] = [];
    const seen = new Set<number>();
    let cursor = 0;
    for (let step = 0; step < 400; step++) {
      cursor += Math.floor(random() * 4);
      const offset = random() < 0.25 ? Math.max(0, cursor - Math.floor(random() * (window + 8))) : cursor;
      const top = seen.size > 0 ? Math.max(...seen) : -Infinity;
      const expected = offset <= top - window || seen.has(offset) ? null : offset;
      const next = insertOffset(runs, offset, window);
      if (expected === null) {
        assert.equal(next, null, `seed ${seed} step ${step}: ${offset} refused`);
        continue;
      }
      assert.ok(next, `seed ${seed} step ${step}: ${offset} admitted`);
      seen.add(offset);
      const floor = Math.max(...seen) - window + 1;
      for (const o of [...seen]) if (o < floor) seen.delete(o);
      assert.deepEqual(expand(next), [...seen].sort((a, b) => a - b), `seed ${seed} step ${step}`);
      for (let k = 2; k < next.length; k += 2) assert.ok(next[k] > next[k - 1] + 1, "runs are merged");
      runs = next;
    }
  }
});

Deno.test("admit() dedupes facts per source partition and ids without a source in a bounded ring", () => {
  let state = EMPTY_DEDUPE;
  const seen: string[] = [];
  for (const id of ["events-0-1-p0", "events-1-1-p0", "events-0-2-a", "events-0-1-p0", "events-1-1-p1"]) {
    const next = admit(state, id, bounds);
    if (next) {
      state = next;
      seen.push(id);
    }
  }
  assert.deepEqual(seen, ["events-0-1-p0", "events-1-1-p0", "events-0-2-a"]);
  for (const id of ["timer-a-1", "timer-b-1", "timer-a-1", "e1", "e2", "timer-a-1"]) {
    const next = id.startsWith("e") ? admitId(state, id, bounds) : admit(state, id, bounds);
    if (next) state = next;
    else seen.push(`dup:${id}`);
  }
  assert.deepEqual(seen.slice(3), ["dup:timer-a-1"], "the third timer-a-1 came after the ring (3) forgot it");
  assert.equal(state.recent.length, 3);
});

Deno.test("persistDedupe() encodes runs compactly and restoreDedupe() gets them back", () => {
  const runs = [0, 0, 5, 9, 200, 200, 70_000, 70_100, 2 ** 40, 2 ** 40 + 3];
  assert.deepEqual(decodeRuns(encodeRuns(runs)), runs);
  let state = EMPTY_DEDUPE;
  for (let offset = 0; offset < 5000; offset += 7) {
    state = admit(state, `events-2-${offset}-p0`, { window: 32_768, recentLimit: 8 })!;
  }
  state = admit(state, "timer-user-u-cart-1-a", bounds)!;
  const persisted = JSON.parse(JSON.stringify(persistDedupe(state)));
  assert.ok(JSON.stringify(persisted).length < 2_000, "715 runs in under 2 kB");
  assert.deepEqual(restoreDedupe(persisted), state);
  const plain = restoreDedupe({ sources: { "events-0": [1, 3] }, recent: [] });
  assert.deepEqual([plain.sources, plain.runs], [["events-0"], [[1, 3]]]);

  assert.deepEqual(restoreDedupe(undefined), EMPTY_DEDUPE);
});

Deno.test("encodeRuns keeps numbers of any size, however many, past its first buffer", () => {
  const huge = Array.from({ length: 40 }, (_, i) => 2 ** 62 + i * 2 ** 20);
  assert.deepEqual(decodeRuns(encodeRuns(huge)), huge);
  const many = Array.from({ length: 5_000 }, (_, i) => i * 1_000_003);
  assert.deepEqual(decodeRuns(encodeRuns(many)), many);
});

Deno.test("admit(): the facts of a log started again (its generation in the id) are a source apart from the old log's", () => {
  assert.deepEqual(factSource("events~1-3-0-p0"), { source: "events~1-3", offset: 0 });
  let state = admit(EMPTY_DEDUPE, "events-3-0-p0", bounds)!;
  state = admit(state, "events-3-1-p0", bounds)!;
  assert.equal(admit(state, "events-3-0-p0", bounds), null, "the old log's offset 0 again: a replay");
  state = admit(state, "events~1-3-0-p0", bounds)!;
  assert.ok(state !== null, "the new log's offset 0 is new");
  assert.equal(admit(state, "events~1-3-0-p0", bounds), null, "and its replay is one");
});
