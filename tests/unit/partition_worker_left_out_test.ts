/**
 * Batches that say which offsets they cover (Kafka, read_committed: `from` and `end` include transaction markers and
 * aborted records the consumer is not handed). The worker passes those offsets, but never a record it has not handled.
 */
import assert from "node:assert/strict";
import { MemoryCheckpointStore } from "../../engine/checkpoint.ts";
import { topicNames } from "../../engine/config.ts";
import type { LogConsumer, LogRecord, RecordBatch, TopicPartition } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { PartitionWorker } from "../../engine/partition_worker.ts";
import { type Recorded, recorderLogic } from "../helpers/runtime.ts";

const T0 = Date.UTC(2026, 0, 1);
const topics = topicNames({ TOPIC_PREFIX: "" });
const tp = { topic: topics.events, partition: 0 };
const noHeartbeat = () => Promise.resolve();

/** A consumer that delivers nothing by itself (the test hands the batches) and records the seeks asked of it. */
class InertConsumer implements LogConsumer {
  readonly seeks: number[] = [];
  /** The log's start offset (records before it deleted). */
  earliest = 0;
  start(): Promise<void> {
    return Promise.resolve();
  }
  seek(_tp: TopicPartition, offset: number): void {
    this.seeks.push(offset);
  }
  commit(): Promise<void> {
    return Promise.resolve();
  }
  earliestOffset(): Promise<number> {
    return Promise.resolve(this.earliest);
  }
  endOffset(): Promise<number> {
    return Promise.resolve(0);
  }
  endOffsets(): Promise<ReadonlyMap<number, number>> {
    return Promise.resolve(new Map());
  }
  pause(): void {}
  resume(): void {}
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

/** Record `offset` of partition 0, for key `u`, carrying `n = offset`. */
function record(offset: number): LogRecord {
  return {
    ...tp,
    offset,
    key: "u",
    value: new TextEncoder().encode(JSON.stringify({ n: offset, at: T0 })),
    headers: {},
    timestamp: T0,
  };
}

/** A batch of the records `[first, last]` that covers `[from, end)`. */
function batch(first: number, last: number, from: number, end: number): RecordBatch {
  const records = Array.from({ length: last - first + 1 }, (_, i) => record(first + i));
  return { ...tp, records, highWatermark: end, from, end };
}

/** A worker on `consumer` and a fresh store, its wall clock at `wall()`. */
function claim(consumer: LogConsumer, wall: () => number, store = new MemoryCheckpointStore(wall)) {
  return PartitionWorker.claim(tp, {
    store,
    producer: new MemoryLog(wall).producer(),
    consumer,
    logic: recorderLogic(),
    topics,
    groupId: "group",
    owner: "me",
    logger: silentLogger,
    checkpointMaxMessages: 1_000,
    idleClockMs: 1_000,
    retryBackoffMs: { initial: 1, max: 1 },
    wallClock: wall,
  });
}

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
