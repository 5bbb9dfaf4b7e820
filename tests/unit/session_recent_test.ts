import assert from "node:assert/strict";
import fc from "fast-check";
import { pushRecent } from "../../actors/session.ts";

/** pushRecent as specified: the ids (each once) in front of the list's others, bounded to `limit`. */
function reference(list: readonly string[], ids: readonly string[], limit: number): string[] {
  const fresh = [...new Set(ids)];
  return [...fresh, ...list.filter((p) => !fresh.includes(p))].slice(0, limit);
}

Deno.test("pushRecent with one id (its one-pass path) gives what the general definition gives", () => {
  const id = fc.constantFrom("a", "b", "c", "d", "e", "f");
  fc.assert(
    fc.property(fc.array(id, { maxLength: 12 }), id, fc.integer({ min: 0, max: 14 }), (list, one, limit) => {
      assert.deepEqual(pushRecent(list, [one], limit), reference(list, [one], limit));
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("pushRecent with several ids keeps the first of each, in front", () => {
  assert.deepEqual(pushRecent(["x", "a", "y"], ["a", "b", "a"], 4), ["a", "b", "x", "y"]);
  assert.deepEqual(pushRecent(["x", "a", "y"], ["a", "b", "a"], 2), ["a", "b"]);
});
