import assert from "node:assert/strict";
import fc from "fast-check";
import { TimerTable } from "../../engine/timer_table.ts";

Deno.test("TimerTable counts timers and finds the due ones (deadline passed) like a scan of every deadline would", () => {
  const op = fc.oneof(
    fc.record({
      op: fc.constant("set" as const),
      key: fc.integer({ min: 0, max: 5 }),
      name: fc.constantFrom("a", "b"),
      at: fc.integer({ min: 0, max: 100 }),
    }),
    fc.record({
      op: fc.constant("delete" as const),
      key: fc.integer({ min: 0, max: 5 }),
      name: fc.constantFrom("a", "b"),
    }),
    fc.record({ op: fc.constant("fire" as const), clock: fc.integer({ min: 0, max: 100 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const table = new TimerTable();
      const model = new Map<string, number>(); // "key/name" → deadline
      for (const step of ops) {
        if (step.op === "set") {
          table.set(`k${step.key}`, step.name, step.at);
          model.set(`k${step.key}/${step.name}`, step.at);
        } else if (step.op === "delete") {
          assert.equal(table.delete(`k${step.key}`, step.name), model.delete(`k${step.key}/${step.name}`));
        } else {
          const expected = [
            ...new Set([...model].filter(([, at]) => at < step.clock).map(([id]) => id.split("/")[0])),
          ];
          assert.deepEqual(table.keysDue(step.clock).sort(), expected.sort());
          for (const key of expected) {
            // Fire the due timers of each key, earliest first, as the worker does.
            for (let next = table.nextDue(key, step.clock); next; next = table.nextDue(key, step.clock)) {
              const due: [string, number][] = [...model].filter(([id, at]) =>
                id.startsWith(`${key}/`) && at < step.clock
              );
              assert.equal(next[1], Math.min(...due.map(([, at]) => at)));
              table.delete(key, next[0]);
              model.delete(`${key}/${next[0]}`);
            }
          }
        }
        assert.equal(table.count, model.size);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("TimerTable.load replaces everything and keeps the checkpoint form", () => {
  const table = new TimerTable();
  table.set("old", "x", 1);
  table.load(new Map<string, Record<string, number>>([["u1", { cart: 50, checkout: 70 }], ["u2", { cart: 10 }]]));
  assert.equal(table.count, 3);
  assert.equal(table.has("old"), false);
  assert.deepEqual(table.of("u1"), { cart: 50, checkout: 70 });
  assert.deepEqual(table.keysDue(10), [], "a timer is not due while the clock is at its deadline");
  assert.deepEqual(table.keysDue(11), ["u2"]);
  assert.deepEqual(table.keysDue(51).sort(), ["u1", "u2"]);
  table.clear();
  assert.equal(table.count, 0);
  assert.deepEqual(table.keysDue(Infinity), []);
});

Deno.test("TimerTable: a timer is not due at its deadline, also behind an earlier one; a key without timers is gone", () => {
  const table = new TimerTable();
  table.set("early", "x", 5); // keeps the earliest-deadline bound below the clocks below
  table.set("k", "a", 10);
  table.set("k", "b", 20);
  assert.deepEqual(table.keysDue(10), ["early"], "k's timer at 10 is not due at clock 10");
  assert.equal(table.nextDue("k", 10), undefined);
  assert.deepEqual(table.nextDue("k", 11), ["a", 10]);
  assert.deepEqual(table.nextDue("k", 20), ["a", 10], "b, at 20, is not due at clock 20");
  table.delete("k", "a");
  assert.equal(table.nextDue("k", 20), undefined);
  table.delete("k", "b");
  assert.equal(table.has("k"), false, "a key whose last timer went has none (its actor may expire)");
  assert.deepEqual(table.of("k"), {});
  assert.equal(table.count, 1);
});
