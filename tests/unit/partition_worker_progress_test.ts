/**
 * How a lone partition worker moves through its partition: the offsets a batch covers beyond its records (Kafka
 * transaction markers), and when the partition counts as idle, so that its clock follows the wall.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { createLogger } from "../../engine/logger.ts";
import { lruCuts } from "../../engine/lru_cut.ts";
import { emitTestAlert, type Recorded } from "../helpers/runtime.ts";

import {
  alarmLogic,
  type Alarms,
  batch,
  bundledRecord,
  claim,
  InertConsumer,
  noHeartbeat,
  record,
  T0,
  tp,
} from "../helpers/partition_worker.ts";

const MIN = 60_000;

Deno.test("a batch whose first offset is a transaction marker at the position is handled, not sought back to for ever", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => T0, store);
  await worker.handleBatch(batch(0, 4, 0, 5), noHeartbeat);
  // Offset 5 is the marker that committed the transaction of 6-9: a read_committed consumer is handed 6-9 only.
  await worker.handleBatch(batch(6, 9, 5, 10), noHeartbeat);
  assert.deepEqual(consumer.seeks, [], "nothing to read again: offset 5 holds nothing to handle");
  assert.equal(worker.position, 10);
  await worker.checkpoint();
  assert.equal(worker.checkpointedOffset, 10);
  const state = (await store.read("recorder", "u"))?.state as Recorded;
  assert.deepEqual(state.values, [0, 1, 2, 3, 4, 6, 7, 8, 9]);
});

Deno.test("records followed by their transaction's marker: the checkpoint passes the marker and reaches the log's end", async () => {
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => T0);
  // Records 0-4, then the marker at 5 that committed them: the batch covers [0, 6).
  await worker.handleBatch(batch(0, 4, 0, 6), noHeartbeat);
  assert.equal(worker.position, 6);
  await worker.checkpoint();
  assert.equal(worker.checkpointedOffset, 6, "no lag is left behind a transaction");
});

Deno.test("time spent handling earlier batches does not delay the idle clock after the latest record", async () => {
  let wall = T0;
  let handleTakes = 0;
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => wall, undefined, {
    logic: alarmLogic(() => wall += handleTakes),
    idleClockMs: 1_000,
  });
  // The first record's handler takes an hour of wall time (a slow lookup); it arms an alarm 80 minutes in.
  handleTakes = 60 * MIN;
  await worker.handleBatch(
    { ...tp, records: [record(0, { at: T0, alarm: T0 + 80 * MIN })], highWatermark: 1 },
    noHeartbeat,
  );
  assert.equal(wall, T0 + 60 * MIN);
  // The next record is handled at once; then nothing comes for 30 minutes.
  handleTakes = 0;
  await worker.handleBatch({ ...tp, records: [record(1, { at: T0 })], highWatermark: 2 }, noHeartbeat);
  consumer.end = 2;
  wall = T0 + 90 * MIN;
  await worker.tick();
  assert.equal(worker.clock, wall - 1_000, "idle for 30 minutes since the latest record: the clock follows the wall");
  assert.deepEqual((worker.peek("u") as Alarms).fired, [T0 + 80 * MIN], "the alarm fired without a further event");
});

Deno.test("a partition busy in one long step is not idle when it ends: a record may be waiting behind it", async () => {
  let wall = T0;
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => wall, undefined, {
    logic: alarmLogic(() => wall += 30 * MIN),
    idleClockMs: 1_000,
  });
  // The handler arms an alarm 10 minutes in and takes 30 minutes of wall time: no record could be delivered meanwhile.
  await worker.handleBatch(
    { ...tp, records: [record(0, { at: T0, alarm: T0 + 10 * MIN })], highWatermark: 1 },
    noHeartbeat,
  );
  consumer.end = 1;
  await worker.tick();
  assert.equal(worker.clock, T0, "the partition has not waited for records at all yet");
  assert.deepEqual((worker.peek("u") as Alarms).fired, []);
});

Deno.test("an idle partition's clock stops at the consumer's last read of the log: a broker outage fires no timer", async () => {
  let wall = T0;
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => wall, undefined, { logic: alarmLogic(), idleClockMs: 1_000 });
  await worker.handleBatch(
    { ...tp, records: [record(0, { at: T0, alarm: T0 + 10 * MIN })], highWatermark: 1 },
    noHeartbeat,
  );
  consumer.end = 1;
  // The broker became unreachable at T0 + 1 min: a record appended since (a cancel, say) may be waiting there.
  consumer.lastRead = T0 + MIN;
  wall = T0 + 30 * MIN;
  await worker.tick();
  assert.equal(worker.clock, T0 + MIN, "the clock follows the wall only up to the last read");
  assert.deepEqual((worker.peek("u") as Alarms).fired, []);
  // Reading again: the clock follows the wall less the grace, and the alarm fires.
  consumer.lastRead = wall;
  await worker.tick();
  assert.equal(worker.clock, wall - 1_000);
  assert.deepEqual((worker.peek("u") as Alarms).fired, [T0 + 10 * MIN]);
});

Deno.test("a rewind after a transient failure drops the product minutes counted since the checkpoint: the replay counts them once", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const consumer = new InertConsumer();
  let failOnce = true;
  const logic: ActorLogic<number, { at: number; fails?: boolean }> = {
    kind: "viewer",
    initial: () => 0,
    decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
    eventTime: (m) => m.at,
    handle: (views, m, ctx) => {
      if (m.fails && failOnce) {
        failOnce = false;
        throw new Error("enrichment lookup timed out"); // transient: the batch is handled again from the checkpoint
      }
      const minute = m.at - (m.at % MIN);
      ctx.emit("productMinutes", "p", {
        productId: "p",
        minute,
        category: null,
        brand: null,
        views: 1,
        cartAdds: 0,
        orders: 0,
        units: 0,
        revenueMillis: 0,
        keepFrom: 0,
      });
      return views + 1;
    },
    persist: (s) => s,
    restore: (d) => d as number,
  };
  const worker = await claim(consumer, () => T0, store, { logic });
  // Three viewers of product p in one minute; the record of the third fails once, after the others were handled.
  const views = [record(0, { at: T0 }, "a"), record(1, { at: T0 }, "b"), record(2, { at: T0, fails: true }, "c")];
  await worker.handleBatch({ ...tp, records: views, highWatermark: 3 }, noHeartbeat);
  assert.deepEqual(consumer.seeks, [0], "rewound to the checkpoint");
  await worker.handleBatch({ ...tp, records: views, highWatermark: 3 }, noHeartbeat);
  await worker.checkpoint();
  assert.equal(worker.checkpointedOffset, 3);
  assert.equal(store.productMinutes.get(`p/${T0}`)?.views, 3, "each view counted once");
});

Deno.test("a passivated actor whose first record of a batch comes within the TTL keeps its state, however late the next", async () => {
  const DAY = 86_400_000;
  let wall = T0;
  const store = new MemoryCheckpointStore(() => wall);
  const worker = await claim(new InertConsumer(), () => wall, store, { stateTtlMs: DAY });
  await worker.handleBatch(batch(0, 0, 0, 1), noHeartbeat);
  await worker.checkpoint();
  assert.equal(await worker.passivate(Number.MAX_SAFE_INTEGER), 1);
  // Both records come in one batch: the first a minute within the TTL of the actor's last one, the second a day later.
  wall = T0 + 3 * DAY;
  const within = { ...record(1), timestamp: T0 + DAY - MIN };
  const later = { ...record(2), timestamp: T0 + 2 * DAY };
  await worker.handleBatch({ ...tp, records: [within, later], highWatermark: 3 }, noHeartbeat);
  await worker.checkpoint();
  const state = (await store.read("recorder", "u"))?.state as Recorded;
  assert.deepEqual(state.values, [0, 1, 2], "the actor was active again within the TTL: nothing expired");
});

Deno.test("the partition is idle once it has waited exactly the grace for records", async () => {
  let wall = T0;
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => wall, undefined, { idleClockMs: 1_000 });
  await worker.handleBatch({ ...tp, records: [record(0, { n: 0, at: T0 - MIN })], highWatermark: 1 }, noHeartbeat);
  consumer.end = 1;
  wall = T0 + 999;
  await worker.tick();
  assert.equal(worker.clock, T0 - MIN, "not idle yet");
  wall = T0 + 1_000;
  await worker.tick();
  assert.equal(worker.clock, T0, "idle: the clock is the wall less the grace");
});

Deno.test("the retry delay starts over once a checkpoint that kept failing succeeds", async () => {
  const delays: unknown[] = [];
  const logger = createLogger("error", (line) => {
    const entry = JSON.parse(line);
    if (entry.msg === "handling failed; rewinding to the last checkpoint") delays.push(entry.delay);
  });
  const store = new MemoryCheckpointStore(() => T0);
  let failOnce = false;
  const logic: ActorLogic<number, { at: number; outage?: boolean }> = {
    kind: "alerter",
    initial: () => 0,
    decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
    eventTime: (m) => m.at,
    handle: (n, m, ctx) => {
      if (m.outage) store.failWith = new Error("connection refused"); // the database goes down after this record
      if (failOnce) {
        failOnce = false;
        throw new Error("enrichment lookup timed out");
      }
      emitTestAlert(ctx, "seen", "u");
      return n + 1;
    },
    persist: (s) => s,
    restore: (d) => d as number,
  };
  const worker = await claim(new InertConsumer(), () => T0, store, {
    logic,
    logger,
    checkpointMaxMessages: 1,
    retryBackoffMs: { initial: 1, max: 64 },
  });
  // The database is down when the first record's checkpoint is due: it is retried (1, 2, 4 ms) until it comes back.
  let beats = 0;
  const heartbeat = () => {
    if (++beats === 3) store.failWith = null;
    return Promise.resolve();
  };
  await worker.handleBatch({ ...tp, records: [record(0, { at: T0, outage: true })], highWatermark: 1 }, heartbeat);
  assert.equal(worker.checkpointedOffset, 1);
  // Then one transient failure: its retry waits the initial delay, not the one the outage had reached.
  failOnce = true;
  await worker.handleBatch({ ...tp, records: [record(1)], highWatermark: 2 }, noHeartbeat);
  assert.deepEqual(delays, [1]);
});

Deno.test("a checkpoint is due after CHECKPOINT_MAX_MESSAGES messages, the entries of a bundle each counting", async () => {
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => T0, undefined, { checkpointMaxMessages: 5 });
  // One record of the log: a bundle of five facts (engine/fact_bundle.ts), as the internal topics carry them.
  const read = bundledRecord(Array.from({ length: 5 }, (_, n) => ({ n, at: T0 })), "u");
  await worker.handleBatch({ ...tp, records: [read], highWatermark: 1 }, noHeartbeat);
  assert.equal(worker.checkpointedOffset, 1, "five messages handled: checkpointed without waiting for the interval");
});

Deno.test("an idle partition sweeps its stored actors past the TTL at most once a minute: no write per round", async () => {
  let wall = T0;
  const store = new MemoryCheckpointStore(() => wall);
  const worker = await claim(new InertConsumer(), () => wall, store, { stateTtlMs: 3_600_000 });
  await worker.handleBatch(batch(0, 0, 0, 1), noHeartbeat);
  await worker.checkpoint(); // the record's checkpoint, which sweeps too
  const commits = store.commits;
  for (let round = 1; round < 6; round++) {
    wall = T0 + round * 10_000;
    await worker.checkpoint();
  }
  assert.equal(store.commits, commits, "nothing new within the minute: nothing written");
  wall = T0 + MIN;
  await worker.checkpoint();
  assert.equal(store.commits, commits + 1, "a minute later: the sweep");
});

Deno.test("an actor expired in memory does not come back from the store for a record that comes before its delete is written", async () => {
  const TTL = 3_600_000;
  let wall = T0;
  const store = new MemoryCheckpointStore(() => wall);
  const consumer = new InertConsumer();
  const worker = await claim(consumer, () => wall, store, { stateTtlMs: TTL });
  await worker.handleBatch(batch(0, 0, 0, 1), noHeartbeat);
  await worker.checkpoint();
  consumer.end = 1;
  wall = T0 + TTL + 2 * MIN; // idle past the TTL: the round expires the actor from memory
  await worker.tick();
  assert.equal(worker.size, 0);
  // A record its producer stamped within the TTL, delivered late (it waited behind an open transaction, say). The
  // checkpoint that would delete the actor's row fails first (it carries the idle advance, written before the record).
  let refuse = true;
  store.failCommitWhen = (write) => write.deletes.length > 0 && refuse && !(refuse = false);
  const late = { ...record(1), timestamp: T0 + TTL - MIN };
  await worker.handleBatch({ ...tp, records: [late], highWatermark: 2 }, noHeartbeat);
  assert.equal(refuse, false);
  await worker.handleBatch({ ...tp, records: [late], highWatermark: 2 }, noHeartbeat); // read again after the rewind
  await worker.checkpoint();
  const state = (await store.read("recorder", "u"))?.state as Recorded;
  assert.deepEqual(state.values, [1], "expired is expired, whether its delete was written before the record or not");
});

Deno.test("a checkpoint starts the message count over: the next batch waits for its own CHECKPOINT_MAX_MESSAGES", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const worker = await claim(new InertConsumer(), () => T0, store, { checkpointMaxMessages: 5 });
  await worker.handleBatch(batch(0, 4, 0, 5), noHeartbeat);
  assert.equal(worker.checkpointedOffset, 5, "five messages: checkpointed");
  const commits = store.commits;
  await worker.handleBatch(batch(5, 5, 5, 6), noHeartbeat);
  assert.equal(store.commits, commits, "one message since: no checkpoint yet");
  assert.equal(worker.checkpointedOffset, 5);
});

Deno.test("a rewind to a later checkpoint resumes that checkpoint's clock: a replayed late record sees the ctx.now() it first saw", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  let failOnce = false;
  const logic: ActorLogic<number[], { at: number }> = {
    kind: "clocked",
    initial: () => [],
    decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
    eventTime: (m) => m.at,
    handle: (nows, _m, ctx) => {
      if (failOnce) {
        failOnce = false;
        throw new Error("enrichment lookup timed out");
      }
      return [...nows, ctx.now()];
    },
    persist: (s) => s,
    restore: (d) => d as number[],
  };
  const worker = await claim(new InertConsumer(), () => T0, store, { logic });
  await worker.handleBatch({ ...tp, records: [record(0, { at: T0 + 10 * MIN })], highWatermark: 1 }, noHeartbeat);
  await worker.checkpoint(); // at offset 1, clock T0 + 10 min
  const late = record(1, { at: T0 }); // a late event: the partition clock stays where it was
  failOnce = true;
  await worker.handleBatch({ ...tp, records: [late], highWatermark: 2 }, noHeartbeat); // fails: rewound to offset 1
  await worker.handleBatch({ ...tp, records: [late], highWatermark: 2 }, noHeartbeat);
  await worker.checkpoint();
  assert.deepEqual((await store.read("clocked", "u"))?.state, [T0 + 10 * MIN, T0 + 10 * MIN]);
});

Deno.test("passivation beyond MAX_ACTORS spares an actor used since its cut was found", async () => {
  let wall = T0;
  const worker = await claim(new InertConsumer(), () => wall);
  const handle = (offset: number, key: string) =>
    worker.handleBatch(
      { ...tp, records: [record(offset, { n: offset, at: T0 }, key)], highWatermark: offset + 1 },
      noHeartbeat,
    );
  for (const [offset, key] of ["a", "b", "c", "d"].entries()) {
    await handle(offset, key);
    wall += 1_000;
  }
  await worker.checkpoint();
  // The runtime found the cut (a, b and c, the instance's least recently used); then a is used again, and checkpointed.
  const cut = lruCuts([worker.cleanUseTimes()], 3)[0];
  await handle(4, "a");
  await worker.checkpoint();
  assert.equal(await worker.passivate(0, cut), 2, "b and c: a was used since, and is past the cut");
  assert.notEqual(worker.peek("a"), undefined);
  assert.notEqual(worker.peek("d"), undefined);
  assert.equal(worker.size, 2);
});

Deno.test("a partition whose log ends before its checkpoint (its topic deleted and created again) reads the new log from its start", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  // Checkpointed at offset 100 of a log that is gone: the broker's data was lost, or the topic deleted and created again.
  store.partitions.set(`group/${tp.topic}:0`, { epoch: 1, nextOffset: 100, clock: T0, owner: "old" });
  const consumer = new InertConsumer();
  consumer.end = 3; // and the group has no committed offset on the new log
  const worker = await claim(consumer, () => T0, store);
  // kafkajs finds offset 100 out of range and reads the new log from its start: three events accepted since.
  await worker.handleBatch(batch(0, 2, 0, 3), noHeartbeat);
  await worker.checkpoint();
  const state = (await store.read("recorder", "u"))?.state as Recorded | undefined;
  // They were ignored as if handled already, with a lag of 0, until the new log reached offset 100.
  assert.deepEqual(state?.values, [0, 1, 2]);
  assert.equal(worker.checkpointedOffset, 3);
});

Deno.test("a partition whose log lost its tail below its checkpoint (the group committed on it) resumes at the log's end", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  store.partitions.set(`group/${tp.topic}:0`, { epoch: 1, nextOffset: 100, clock: T0, owner: "old" });
  const consumer = new InertConsumer();
  // A single broker lost its unflushed records past offset 3 (a power cut); offsets 0-2 were handled before.
  consumer.end = 3;
  consumer.committed = 100;
  const worker = await claim(consumer, () => T0, store);
  await worker.handleBatch(batch(0, 2, 0, 3), noHeartbeat);
  assert.equal(worker.position, 3, "offsets 0-2 are not handled a second time");
  // Offset 3 onwards is appended after the loss: handled, where it was taken for handled up to offset 100.
  consumer.end = 5;
  await worker.handleBatch(batch(3, 4, 3, 5), noHeartbeat);
  await worker.checkpoint();
  const state = (await store.read("recorder", "u"))?.state as Recorded | undefined;
  assert.deepEqual(state?.values, [3, 4]);
  assert.equal(worker.checkpointedOffset, 5);
});

/** An actor that keeps the output id each of its messages was given, as facts and alerts carry them. */
function idLogic(): ActorLogic<{ key: string; ids: string[] }, { n: number; at: number }> {
  return {
    kind: "ids",
    initial: (key) => ({ key, ids: [] }),
    decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
    eventTime: (m) => m.at,
    handle: (state, _message, ctx) => ({ ...state, ids: [...state.ids, ctx.outputId("x")] }),
    persist: (state) => state,
    restore: (data) => data as { key: string; ids: string[] },
  };
}

Deno.test("the records of a log started again below the checkpoint give outputs other ids than the old log's same offsets, the same on a replay", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const consumer = new InertConsumer();
  consumer.end = 3;
  const first = await claim(consumer, () => T0, store, { logic: idLogic() });
  await first.handleBatch(batch(0, 2, 0, 3), noHeartbeat);
  await first.checkpoint();
  const ids = async () => ((await store.read("ids", "u"))?.state as { ids: string[] }).ids;
  const old = await ids();
  assert.deepEqual(old, [0, 1, 2].map((n) => `${tp.topic}-0-${n}-x`));
  // The topic is deleted and created again: two records in the new log, the group never committed on it.
  consumer.end = 2;
  await first.handleBatch(batch(0, 1, 0, 2), noHeartbeat);
  const handled = (first.peek("u") as { ids: string[] }).ids.slice(3);
  // Their ids were the old log's: a product or the global actor dropped their facts, the alerts table their alerts.
  assert.equal(handled.length, 2);
  for (const id of handled) assert.ok(!old.includes(id), `${id} is new`);
  // A restart before the next checkpoint replays the new log under the same ids.
  const second = await claim(consumer, () => T0, store, { logic: idLogic() });
  assert.equal(second.checkpointedOffset, 0, "the checkpoint moved back with the generation");
  await second.handleBatch(batch(0, 1, 0, 2), noHeartbeat);
  await second.checkpoint();
  assert.deepEqual((await ids()).slice(3), handled);
});
