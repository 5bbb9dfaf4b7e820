/**
 * The global actor's settled minutes in chunks (actors/settled_minutes.ts) hold what one ascending array would, through
 * any sequence of minutes dropped at the front, settled at the end and changed or added in between; no chunk is empty
 * or past twice its size, and an item nothing changed keeps its identity.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  changedAt,
  chunked,
  type Chunks,
  flattened,
  lastMinute,
  leadingCount,
  SETTLED_CHUNK,
  shifted,
} from "../../actors/settled_minutes.ts";

interface Item {
  readonly minute: number;
  readonly n: number;
}

/** `items` with `item` in its place: replacing the one of its minute, or inserted in order. */
function put(items: readonly Item[], item: Item): Item[] {
  const at = items.findIndex((i) => i.minute >= item.minute);
  if (at < 0) return [...items, item];
  return [...items.slice(0, at), item, ...items.slice(items[at].minute === item.minute ? at + 1 : at)];
}

type Op = { drop: number; add: number } | { change: number };

Deno.test("settled chunks hold what one ascending array would, through drops, settlings and changes in between", () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ drop: fc.nat(60), add: fc.nat(90) }),
    fc.record({ change: fc.nat(4_000) }),
  );
  fc.assert(fc.property(fc.nat(200), fc.array(op, { maxLength: 60 }), (initial, ops) => {
    let next = 0;
    let model: Item[] = Array.from({ length: initial }, () => ({ minute: 2 * next, n: next++ }));
    let chunks: Chunks<Item> = chunked(model);
    for (const o of ops) {
      const before = new Set<Item>(flattened(chunks, []));
      const fresh = next;
      if ("drop" in o) {
        const from = (model.at(-1)?.minute ?? 0) + 2;
        const added = Array.from({ length: o.add }, (_, i) => ({ minute: from + 2 * i, n: next++ }));
        const dropped = leadingCount(chunks, (item) => item.minute < (model[o.drop]?.minute ?? Infinity));
        assert.equal(dropped, Math.min(o.drop, model.length));
        chunks = shifted(chunks, dropped, added);
        model = [...model.slice(dropped), ...added];
      } else if (model.length > 0) {
        const item = { minute: o.change % (lastMinute(chunks) + 1), n: next++ };
        chunks = changedAt(chunks, item.minute, (chunk) => put(chunk, item));
        model = put(model, item);
      }
      assert.deepEqual(flattened(chunks, []), model);
      assert.equal(lastMinute(chunks), model.at(-1)?.minute ?? -Infinity);
      for (const chunk of chunks) assert.ok(chunk.length > 0 && chunk.length < 2 * SETTLED_CHUNK, `${chunk.length}`);
      for (const item of flattened(chunks, [])) {
        assert.ok(before.has(item) || item.n >= fresh, `item ${item.n}: one not changed is the same object`);
      }
    }
  }));
});
