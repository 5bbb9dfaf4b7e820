/** settledWithin: a stop's bounded wait for a step (engine/settled_within.ts). */
import assert from "node:assert/strict";
import { settledWithin } from "../../engine/settled_within.ts";

Deno.test("settledWithin: true for a step that settles in time, a failed one included; false for one that never does", async () => {
  assert.equal(await settledWithin(Promise.resolve(1), 1_000), true);
  assert.equal(await settledWithin(Promise.reject(new Error("database down")), 1_000), true, "no rejection escapes");
  // A database that stops answering: the step never settles, and the stop goes on without it.
  assert.equal(await settledWithin(new Promise(() => {}), 10), false);
});
