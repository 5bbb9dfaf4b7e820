/**
 * The state TTL as the runtime applies it (README, "State expiry"): an expired actor never comes back with its old
 * state, whether the checkpoint carrying its delete failed, or its record came first; and the alerts' retention.
 */
import assert from "node:assert/strict";
import { ALERT_PRUNE_BATCH } from "../../engine/checkpoint.ts";
import type { Alert } from "../../engine/outputs.ts";
import { Harness, recorderLogic } from "../helpers/runtime.ts";

const SECOND = 1_000;
const DAY = 86_400_000;

/** One partition, checkpointed after every record, housekeeping only when the test asks (`housekeep()`). */
const harness = (options: { stateTtlMs?: number; alertRetentionMs?: number } = {}) =>
  new Harness(recorderLogic(), 1, 1, { idleClockMs: SECOND, checkpointIntervalMs: 1e9, ...options });

Deno.test("an actor expired in memory whose delete's checkpoint failed starts afresh, also after a rewind before its next record", async () => {
  const h = harness({ stateTtlMs: SECOND });
  await h.start();
  h.send("k", { n: 1 });
  await h.drained();
  await h.runtime.housekeep();
  h.wall += 120 * SECOND; // idle, far past the TTL: the next round expires k in memory
  h.store.failCommitWhen = () => true; // and the checkpoint that would delete its row fails (a rewind)
  await h.runtime.housekeep();
  assert.deepEqual((await h.stored("k"))?.values, [1], "the stored row is still there");
  // The record's own checkpoint fails too, once: another rewind, and the record is handled again.
  let failures = 1;
  h.store.failCommitWhen = (write) => write.upserts.length > 0 && failures-- > 0;
  h.send("k", { n: 2 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [2]);
});

Deno.test("an actor expired in memory is deleted by the next checkpoint that commits, when the one carrying its delete failed", async () => {
  const h = harness({ stateTtlMs: SECOND });
  await h.start();
  h.send("k", { n: 1 }); // its checkpoint sweeps the store (the first does): the next sweep is a minute away
  await h.drained();
  h.wall += 10 * SECOND; // idle, past the TTL
  h.store.failCommitWhen = () => true;
  await h.runtime.housekeep(); // expired in memory; the checkpoint fails and rewinds
  h.store.failCommitWhen = null;
  h.wall += SECOND;
  await h.runtime.housekeep();
  assert.equal(await h.stored("k"), undefined, "not left to the sweep");
  await h.stop();
});

Deno.test("a passivated actor past its TTL starts afresh when its record comes before the store's expiry sweep; one within it reloads", async () => {
  const h = harness({ stateTtlMs: 60 * SECOND });
  await h.start();
  h.send("old", { n: 1 }); // its checkpoint sweeps the store (the first does), the next sweep is due in 60 s
  await h.drained();
  h.wall += 50 * SECOND;
  h.send("recent", { n: 1 });
  await h.drained();
  await h.runtime.passivateAll();
  assert.equal(h.runtime.actorCount, 0);
  h.wall += 20 * SECOND;
  h.send("old", { n: 2 }); // 70 s after its last record, before any sweep has deleted its row
  h.send("recent", { n: 2 }); // 20 s after its last record
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("old"))?.values, [2]);
  assert.deepEqual((await h.stored("recent"))?.values, [1, 2]);
});

Deno.test("a backlog appended while the engine was down is judged by its records' times when its actors are loaded", async () => {
  const h = harness({ stateTtlMs: DAY });
  await h.start();
  h.send("a", { n: 1 });
  await h.drained();
  await h.stop();
  // Down for two days, while records were still appended a minute apart: no actor went a day without one.
  const downAt = h.wall;
  h.wall = downAt + 60 * SECOND;
  h.send("a", { n: 2 });
  h.wall = downAt + 2 * DAY;
  await h.start();
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [1, 2]);
});

const alert = (id: string, occurredAt: number): Alert => ({
  alertId: id,
  type: "cart_abandoned",
  severity: "warning",
  subject: { kind: "user", id },
  occurredAt: new Date(occurredAt).toISOString(),
  details: {},
});

Deno.test("alerts older than the retention (by the partition clock) are pruned in bounded batches until none is left", async () => {
  const h = harness({ alertRetentionMs: DAY });
  const T0 = h.wall;
  for (let i = 0; i < ALERT_PRUNE_BATCH + 3; i++) h.store.alerts.set(`old-${i}`, alert(`old-${i}`, T0 - 3 * DAY + i));
  h.store.alerts.set("kept", alert("kept", T0 - DAY / 2));
  await h.start();
  await h.runtime.housekeep();
  assert.equal(h.store.alerts.size, ALERT_PRUNE_BATCH + 4, "a partition without a record has no clock to judge by");
  h.send("k", { n: 1, at: T0 });
  await h.drained(); // the record's checkpoint prunes
  assert.deepEqual([...h.store.alerts.keys()].sort(), ["kept", "old-5000", "old-5001", "old-5002"], "oldest first");
  h.wall += SECOND; // long before the next sweep: a full batch has the next checkpoint prune again
  await h.runtime.housekeep();
  assert.deepEqual([...h.store.alerts.keys()], ["kept"]);
  await h.stop();
});
