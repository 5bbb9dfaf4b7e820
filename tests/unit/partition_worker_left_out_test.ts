/**
 * Batches that say which offsets they cover (Kafka, read_committed: `from` and `end` include transaction markers and
 * aborted records the consumer is not handed). The worker passes those offsets, but never a record it has not handled.
 */
import assert from "node:assert/strict";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { Recorded } from "../helpers/runtime.ts";
import { batch, claim, InertConsumer, noHeartbeat, T0, tp } from "../helpers/partition_worker.ts";

Deno.test("records deleted before they were handled, then only offsets with nothing to handle: the end is reached", async () => {
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => T0);
  // Retention (or DeleteRecords) removed offsets 0-4 unhandled; what is left, 5-7, is a transaction that was aborted
  // and its marker: a read_committed consumer, sent to the log's start, is handed only a batch that covers them.
  consumer.earliest = 5;
  await worker.handleBatch({ ...tp, records: [], highWatermark: 8, from: 5, end: 8 }, noHeartbeat);
  assert.equal(worker.position, 8, "the position passes the deleted records and what is left");
  await worker.checkpoint();
  assert.equal(worker.checkpointedOffset, 8);
});

Deno.test("an empty batch past the position with records before it still in the log seeks back to them", async () => {
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => T0);
  await worker.handleBatch({ ...tp, records: [], highWatermark: 8, from: 5, end: 8 }, noHeartbeat);
  assert.equal(worker.position, 0, "offsets 0-4 are still to be read");
  assert.deepEqual(consumer.seeks, [0]);
  await worker.handleBatch(batch(0, 4, 0, 5), noHeartbeat);
  await worker.handleBatch({ ...tp, records: [], highWatermark: 8, from: 5, end: 8 }, noHeartbeat);
  assert.equal(worker.position, 8);
});

Deno.test("a rewind while a batch is handled (the store had an earlier commit) re-reads the records it undid", async () => {
  let wall = T0;
  const store = new MemoryCheckpointStore(() => wall);
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => wall, store);
  await worker.handleBatch(batch(0, 4, 0, 5), noHeartbeat);
  await worker.checkpoint();
  assert.equal(worker.checkpointedOffset, 5);
  await worker.handleBatch(batch(5, 9, 5, 10), noHeartbeat);
  assert.equal(worker.position, 10);
  // An earlier attempt of this owner's checkpoint landed at 7 unbeknown to it (its reply was lost).
  const stored = store.partitions.get(`group/${tp.topic}:${tp.partition}`)!;
  const landed = await store.commit({
    tp,
    groupId: "group",
    epoch: stored.epoch,
    previousOffset: 5,
    nextOffset: 7,
    clock: T0,
    kind: "recorder",
    upserts: [{ key: "u", state: { key: "u", values: [0, 1, 2, 3, 4, 5, 6] }, timers: {}, lastActiveAt: T0 }],
    deletes: [],
    projections: { alerts: [], recommendations: [], analyticsHistory: [], productMinutes: [] },
  });
  assert.equal(landed.committed, true);
  // Idle: the clock follows the wall, to be checkpointed before the next record is handled.
  wall += 60_000;
  await worker.tick();
  // The log is read again from before the position (kafkajs restarted from the group's committed offset, say): that
  // checkpoint finds the store at 7 and rewinds there, undoing 7, 8 and 9.
  await worker.handleBatch(batch(5, 14, 5, 15), noHeartbeat);
  assert.ok(consumer.seeks.includes(7), `the rewind seeks to the stored offset (seeks: ${consumer.seeks})`);
  // What the seek reads again.
  await worker.handleBatch(batch(7, 14, 7, 15), noHeartbeat);
  await worker.checkpoint();
  assert.equal(worker.checkpointedOffset, 15);
  const state = (await store.read("recorder", "u"))?.state as Recorded;
  assert.deepEqual(state.values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], "every record handled once");
});
