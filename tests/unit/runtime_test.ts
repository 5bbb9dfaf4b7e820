import assert from "node:assert/strict";
import type { ActorLogic, AnyActorLogic } from "../../engine/actor.ts";
import { topicNames } from "../../engine/config.ts";
import { createLogger, silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { ActorRuntime } from "../../engine/runtime.ts";
import type { CheckpointWrite, Claim, CommitResult } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { type LogRecord, type TopicPartition, tpKey } from "../../engine/log.ts";
import { DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { LogUnavailableError, TerminalError } from "../../engine/errors.ts";
import {
  emitTestAlert,
  Harness,
  OutageStore,
  type Recorded,
  recorderLogic,
  type RecorderMessage,
  totalsLogic as totals,
  until,
} from "../helpers/runtime.ts";

Deno.test("ActorRuntime handles each key's messages in partition order and checkpoints them", async () => {
  const h = new Harness(recorderLogic());
  await h.start();
  for (let n = 0; n < 300; n++) h.send(`k${n % 7}`, { n });
  await h.drained();
  await h.stop();
  for (let k = 0; k < 7; k++) {
    const expected = Array.from({ length: 300 }, (_, n) => n).filter((n) => n % 7 === k);
    assert.deepEqual((await h.stored(`k${k}`))?.values, expected);
  }
});

Deno.test("ActorRuntime handles one key's messages in offset order, not in event-time order", async () => {
  const h = new Harness(recorderLogic(), 1);
  await h.start();
  const t0 = Date.UTC(2026, 0, 1);
  // Each message is dated a minute before the previous one (late events, a producer's clock going back).
  for (let n = 0; n < 20; n++) h.send("k", { n, at: t0 - n * 60_000 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, Array.from({ length: 20 }, (_, n) => n));
});

Deno.test("ActorRuntime lets other keys go on while one key's handler awaits, and no checkpoint passes it", async () => {
  const gate = Promise.withResolvers<void>();
  const order: string[] = [];
  const h = new Harness(
    recorderLogic({
      handle: async (key) => {
        if (key === "slow") await gate.promise;
        order.push(key);
      },
    }),
    1,
    1_000,
    { checkpointIntervalMs: 3_600_000 }, // checkpoints only when the test asks
  );
  await h.start();
  h.send("slow", { n: 1 });
  h.send("fast", { n: 2 });
  // 'fast' finishes while 'slow' is still waiting.
  await until(() => order.includes("fast"), "'fast' was handled while 'slow' waits");
  assert.deepEqual(order, ["fast"]);
  // A checkpoint asked for now must wait for the batch: 'fast' is done, but 'slow' (offset 0) is not.
  const passivated = h.runtime.passivateAll();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(await h.stored("fast"), undefined, "no checkpoint passes a message still being handled");
  assert.equal(h.store.partitions.get(`group/${h.topics.events}:0`)?.nextOffset, 0);
  gate.resolve();
  assert.equal(await passivated, 2, "checkpointed once the batch was done, then passivated");
  assert.deepEqual(order, ["fast", "slow"]);
  assert.equal(h.store.partitions.get(`group/${h.topics.events}:0`)?.nextOffset, 2);
  assert.deepEqual((await h.stored("slow"))?.values, [1]);
  assert.deepEqual((await h.stored("fast"))?.values, [2]);
  await h.stop();
});

Deno.test("beyond MAX_ACTORS the least recently used checkpointed actors are passivated first", async () => {
  const h = new Harness(recorderLogic(), 1, 1_000, { maxActors: 3, checkpointIntervalMs: 3_600_000 });
  const keys = ["a", "b", "c", "d", "e"];
  const live = () => keys.filter((key) => h.runtime.lookup("recorder", key) !== undefined);
  await h.start();
  keys.forEach((key, n) => h.send(key, { n }));
  await until(() => live().length === 5, "a to e are handled");
  h.send("a", { n: 5 }); // a is the most recently used now
  await until(
    () => (h.runtime.lookup("recorder", "a")?.state as Recorded | undefined)?.values.length === 2,
    "a is handled again",
  );
  await h.runtime.housekeep(); // checkpoints all five, then passivates two: b and c were used least recently
  assert.deepEqual(live(), ["a", "d", "e"]);
  await h.stop();
});

Deno.test("beyond MAX_ACTORS the least recently used across the instance go, not each partition's share", async () => {
  const h = new Harness(recorderLogic(), 2, 1_000, { maxActors: 4, checkpointIntervalMs: 3_600_000 });
  const keysOf = (p: number) =>
    Array.from({ length: 40 }, (_, n) => `u${n}`).filter((k) => partitionForKey(k, 2) === p);
  const [older, newer] = [keysOf(0).slice(0, 4), keysOf(1).slice(0, 4)];
  const live = (keys: string[]) => keys.filter((key) => h.runtime.lookup("recorder", key) !== undefined);
  await h.start();
  older.forEach((key, n) => h.send(key, { n }));
  await until(() => live(older).length === 4, "partition 0's actors are handled");
  h.wall += 60_000; // partition 1's actors are used a minute later
  newer.forEach((key, n) => h.send(key, { n }));
  await until(() => live(newer).length === 4, "partition 1's actors are handled");
  await h.runtime.housekeep(); // checkpoints all eight, then passivates the four used least recently
  assert.deepEqual(live(older), [], "partition 0's older actors are passivated");
  assert.deepEqual(live(newer), newer, "partition 1's newer actors stay");
  await h.stop();
});

Deno.test("beyond MAX_ACTORS actors used at the same time share the passivations out exactly", async () => {
  const h = new Harness(recorderLogic(), 2, 1_000, { maxActors: 5, checkpointIntervalMs: 3_600_000 });
  const keysOf = (p: number) =>
    Array.from({ length: 40 }, (_, n) => `u${n}`).filter((k) => partitionForKey(k, 2) === p);
  const keys = [...keysOf(0).slice(0, 4), ...keysOf(1).slice(0, 4)];
  const live = () => keys.filter((key) => h.runtime.lookup("recorder", key) !== undefined);
  await h.start();
  keys.forEach((key, n) => h.send(key, { n })); // all used at the same wall time
  await until(() => live().length === 8, "every actor is handled");
  await h.runtime.housekeep();
  assert.equal(h.runtime.actorCount, 5, "exactly MAX_ACTORS stay, not fewer");
  await h.stop();
});

Deno.test("ActorRuntime resumes from the checkpoint after a crash: every message counted exactly once", async () => {
  const h = new Harness(recorderLogic(), 3, 40);
  await h.start();
  for (let n = 0; n < 200; n++) h.send(`k${n % 5}`, { n });
  await h.drained();
  await h.crash();
  for (let n = 200; n < 400; n++) h.send(`k${n % 5}`, { n });
  await h.start("second-instance");
  await h.drained();
  await h.stop();
  for (let k = 0; k < 5; k++) {
    const expected = Array.from({ length: 400 }, (_, n) => n).filter((n) => n % 5 === k);
    assert.deepEqual((await h.stored(`k${k}`))?.values, expected);
  }
});

Deno.test("ActorRuntime dead-letters undecodable records and terminal failures and moves on", async () => {
  const h = new Harness(
    recorderLogic({
      handle: (_key, message) => {
        if (message.n === 13) throw new TerminalError("13 is unlucky");
      },
    }),
    1,
  );
  await h.start();
  h.send("a", { n: 1 });
  h.log.appendNow([{ topic: h.topics.events, key: "a", value: "{not json" }]);
  h.send("a", { n: "two" });
  h.send("a", { n: 13 });
  h.send("a\u0000", { n: 5 }); // a key PostgreSQL cannot store
  h.send("a", { n: 4 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [1, 4]);
  const dlq = h.log.all(h.topics.dlq);
  assert.equal(dlq.length, 4);
  // Records that cannot be decoded are rejected before the batch is handled, so before offset 3.
  assert.deepEqual(dlq.map((r) => [r.headers[DLQ_HEADERS.offset], r.headers[DLQ_HEADERS.errorCode]]), [
    ["1", "validation_failed"],
    ["2", "validation_failed"],
    ["4", "validation_failed"],
    ["3", "terminal"],
  ]);
  assert.equal(new TextDecoder().decode(dlq[0].value!), "{not json", "the original bytes are kept");
  assert.equal(dlq[0].headers[DLQ_HEADERS.topic], h.topics.events);
});

Deno.test("a dead letter keeps its record's key and bytes and names its source in all six headers, on every partition", async () => {
  const h = new Harness(
    recorderLogic({
      handle: (_key, message) => {
        if (message.n === 13) throw new TerminalError("13 is unlucky");
      },
    }),
    3,
  );
  await h.start();
  const keys = [0, 1, 2].map((p) => ["a", "b", "c", "d", "e", "f", "g", "h"].find((k) => partitionForKey(k, 3) === p)!);
  const append = (key: string, value: string) => {
    h.wall += 1_000; // every record has its own append time
    return h.log.appendNow([{ topic: h.topics.events, key, value }])[0];
  };
  const expected: { source: LogRecord; code: string; message: RegExp }[] = [];
  keys.forEach((key, p) => {
    for (let n = 0; n < p; n++) append(key, JSON.stringify({ n })); // offsets differ from partition to partition
    expected.push({ source: append(key, "{not json"), code: "validation_failed", message: /JSON/ });
    expected.push({ source: append(key, JSON.stringify({ n: 13 })), code: "terminal", message: /13 is unlucky/ });
    append(key, JSON.stringify({ n: 99 }));
  });
  await h.drained();
  await h.stop();
  for (const [p, key] of keys.entries()) {
    assert.deepEqual((await h.stored(key))?.values, [...Array.from({ length: p }, (_, n) => n), 99]);
  }
  const dlq = h.log.all(h.topics.dlq);
  assert.equal(dlq.length, expected.length);
  const text = (bytes: Uint8Array | null) => new TextDecoder().decode(bytes!);
  for (const { source, code, message } of expected) {
    const letter = dlq.find((r) =>
      r.headers[DLQ_HEADERS.partition] === String(source.partition) &&
      r.headers[DLQ_HEADERS.offset] === String(source.offset)
    );
    assert.ok(letter, `a dead letter for ${source.partition}:${source.offset}`);
    assert.equal(letter.key, source.key);
    assert.equal(text(letter.value), text(source.value), "the original bytes are kept");
    const { [DLQ_HEADERS.errorMessage]: errorMessage, ...headers } = letter.headers;
    assert.deepEqual(headers, {
      [DLQ_HEADERS.errorCode]: code,
      [DLQ_HEADERS.topic]: h.topics.events,
      [DLQ_HEADERS.partition]: String(source.partition),
      [DLQ_HEADERS.offset]: String(source.offset),
      [DLQ_HEADERS.timestamp]: String(source.timestamp),
    });
    assert.match(errorMessage!, message);
  }
  assert.deepEqual(new Set(expected.map((e) => e.source.partition)), new Set([0, 1, 2]));
  assert.equal(new Set(expected.map((e) => e.source.timestamp)).size, expected.length);
});

Deno.test("a record on a partition its key does not hash to is dead-lettered: one actor is never split across two partitions", async () => {
  const h = new Harness(recorderLogic(), 2);
  await h.start();
  const home = partitionForKey("k", 2);
  h.send("k", { n: 1 });
  // A producer with another partitioner (librdkafka's CRC32, say) puts the same key on the other partition.
  h.log.appendNow([{ topic: h.topics.events, partition: 1 - home, key: "k", value: JSON.stringify({ n: 2 }) }]);
  h.send("k", { n: 3 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 3], "the stray record neither overwrote nor was overwritten");
  const dlq = h.log.all(h.topics.dlq);
  assert.equal(dlq.length, 1);
  assert.equal(dlq[0].headers[DLQ_HEADERS.partition], String(1 - home));
  assert.equal(dlq[0].headers[DLQ_HEADERS.errorCode], "validation_failed");
  assert.match(dlq[0].headers[DLQ_HEADERS.errorMessage]!, new RegExp(`belongs to partition ${home} of 2`));
});

Deno.test("a record whose handler throws a TerminalError leaves no timer change and no output behind: it is dead-lettered whole", async () => {
  type Armed = { key: string; seen: number };
  const logic: ActorLogic<Armed, { n: number }> = {
    kind: "armed",
    initial: (key) => ({ key, seen: 0 }),
    decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
    eventTime: () => 0,
    handle: (state, message, ctx) => {
      if (message.n === 1) ctx.setTimer("keep", 1_000);
      if (message.n === 2) {
        ctx.setTimer("stray", 2_000); // set, then the record is rejected
        ctx.cancelTimer("keep");
        ctx.setTimer("keep", 5_000);
        emitTestAlert(ctx, "stray", state.key); // emitted, then the record is rejected
        throw new TerminalError("rejected after arming");
      }
      return { ...state, seen: state.seen + 1 };
    },
    persist: (state) => state,
    restore: (data) => data as Armed,
  };
  const h = new Harness(logic, 1);
  await h.start();
  h.send("a", { n: 1 });
  h.send("a", { n: 2 });
  h.send("a", { n: 3 });
  await h.drained();
  await h.stop();
  assert.equal(h.log.all(h.topics.dlq).length, 1);
  const row = await h.store.read("armed", "a");
  assert.equal((row?.state as Armed).seen, 2);
  assert.deepEqual(h.store.rows.get("armed/a")?.timers, { keep: 1_000 }, "the rejected record's timer changes stayed");
  assert.deepEqual(h.log.all(h.topics.alerts), [], "the rejected record's output was published");
  assert.equal(h.store.alerts.size, 0, "the rejected record's alert was stored");
});

Deno.test("ActorRuntime retries a transient handler failure without skipping or double-counting", async () => {
  let failures = 3;
  const h = new Harness(
    recorderLogic({
      handle: (_key, message) => {
        if (message.n === 5 && failures-- > 0) throw new Error("database hiccup");
      },
    }),
    1,
  );
  await h.start();
  for (let n = 0; n < 10; n++) h.send("a", { n });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(failures, -1);
});

Deno.test("a fenced-off owner cannot overwrite the new owner's checkpoint", async () => {
  const h = new Harness(recorderLogic(), 1);
  await h.start("old-owner");
  h.consumer.confirmsAssignment = false; // the group gave the partition to the new owner
  h.send("a", { n: 1 });
  await h.drained();
  // Another instance claims the partition (as after a rebalance) while the old one still runs.
  await h.store.claim({ topic: h.topics.events, partition: 0 }, "group", "new-owner");
  h.send("a", { n: 2 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [1], "the old owner's later checkpoint was rejected");
  assert.equal(h.store.partitions.get(`group/${h.topics.events}:0`)?.nextOffset, 1);
});

/**
 * Ten records handled and checkpointed; while the engine is down, ten more arrive and retention deletes the first five
 * of them; a new instance then handles the rest. `failures` transient failures at record 17 rewind the partition to
 * its checkpoint, before the gap, each time.
 */
async function afterRetention(
  failures: number,
): Promise<{ values?: readonly number[]; skipped: number[]; failuresLeft: number }> {
  let left = failures;
  const h = new Harness(
    recorderLogic({
      handle: (_key, message) => {
        if (message.n === 17 && left-- > 0) throw new Error("database hiccup");
      },
    }),
    1,
  );
  const skipped: number[] = [];
  h.instrumentation = { emit: (e) => e.type === "records_skipped" && skipped.push(e.count) };
  await h.start();
  for (let n = 0; n < 10; n++) h.send("k", { n });
  await h.drained();
  await h.stop();
  for (let n = 10; n < 20; n++) h.send("k", { n });
  h.log.deleteBefore({ topic: h.topics.events, partition: 0 }, 15);
  await h.start("after-retention");
  await h.drained();
  await h.stop();
  return { values: (await h.stored("k"))?.values, skipped, failuresLeft: left };
}

Deno.test("records deleted by retention before they were handled are skipped once, counted, and never loop", async () => {
  const { values, skipped } = await afterRetention(0);
  assert.deepEqual(values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19]);
  assert.deepEqual(skipped, [5]);
});

Deno.test("records deleted by retention are counted once even when a failure rewinds the partition past the gap again", async () => {
  const { values, skipped, failuresLeft } = await afterRetention(1);
  assert.equal(failuresLeft, -1, "the failure rewound the partition to its checkpoint, before the gap");
  assert.deepEqual(values, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19]);
  assert.deepEqual(skipped, [5]);
});

Deno.test("a checkpoint whose reply was lost after it committed: the worker resumes from the stored offset, exactly once", async () => {
  const h = new Harness(recorderLogic(), 1, 1_000_000);
  await h.start();
  for (let n = 0; n < 50; n++) h.send("k", { n });
  h.store.loseNextReply = true;
  while (h.store.loseNextReply) await new Promise((resolve) => setTimeout(resolve, 5));
  // The periodic checkpoint committed offset 50 but the worker believes it failed; it moves on.
  for (let n = 50; n < 100; n++) h.send("k", { n });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, Array.from({ length: 100 }, (_, n) => n));
});

Deno.test("a checkpoint whose reply was lost, then a database outage: nothing is applied twice onto what it wrote", async () => {
  const store = new OutageStore();
  const h = new Harness(recorderLogic(), 1, 1_000_000, { checkpointIntervalMs: 3_600_000, store });
  const handled = (key: string, n: number) =>
    ((h.runtime.lookup("recorder", key)?.state as Recorded | undefined)?.values ?? []).length >= n;
  await h.start();
  h.send("k", { n: 1 });
  h.send("k", { n: 2 });
  await until(() => handled("k", 2), "k = [1, 2] handled");
  h.store.loseNextReply = true;
  await h.runtime.housekeep(); // commits k = [1, 2] at offset 2, but the worker is told it failed
  h.store.failWith = new Error("database down"); // j cannot be loaded: the partition rewinds
  h.send("j", { n: 3 });
  await until(() => store.refused("load") > 0, "loading j met the outage");
  h.store.failWith = null;
  h.send("k", { n: 4 });
  await until(() => handled("j", 1) && handled("k", 3), "j and k's next record handled");
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 2, 4]);
  assert.deepEqual((await h.stored("j"))?.values, [3]);
});

/** A one-partition harness on `store` that checkpoints only when housekeeping is called, with k = [1, 2] handled. */
async function handledOneTwo(store: MemoryCheckpointStore): Promise<{ h: Harness; values: () => readonly number[] }> {
  const h = new Harness(recorderLogic(), 1, 1_000_000, { checkpointIntervalMs: 3_600_000, store });
  const values = () => (h.runtime.lookup("recorder", "k")?.state as Recorded | undefined)?.values ?? [];
  await h.start();
  h.send("k", { n: 1 });
  h.send("k", { n: 2 });
  while (values().length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  return { h, values };
}

/** A store whose next commit lands, loses its reply, and takes the store down with it. */
class DyingStore extends OutageStore {
  dieOnNextCommit = false;
  override async commit(write: CheckpointWrite): Promise<CommitResult> {
    const result = await super.commit(write);
    if (!this.dieOnNextCommit) return result;
    this.dieOnNextCommit = false;
    this.failWith = new Error("database down");
    throw new Error("connection lost before the commit's reply");
  }
}

Deno.test("a lost reply while the database goes down: the worker re-reads where the store stands before going on", async () => {
  const store = new DyingStore();
  const { h, values } = await handledOneTwo(store);
  store.dieOnNextCommit = true;
  await h.runtime.housekeep(); // commits [1, 2]; the rewind cannot read the store back
  const refused = store.refused();
  assert.ok(refused > 0, "the rewind met the outage");
  h.send("k", { n: 3 });
  await until(() => store.refused() > refused, "the next batch met the outage too");
  store.failWith = null;
  h.send("k", { n: 4 });
  await until(() => values().includes(4), "4 handled");
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 2, 3, 4]);
});

/**
 * A store whose next commit loses its connection after COMMIT was sent: the server finishes it a
 * moment later. As on PostgreSQL, a plain read (`stored`) does not see it yet, and a read that waits
 * for the row's lock (`settled`) sees it.
 */
class LateCommitStore extends MemoryCheckpointStore {
  commitLateNext = false;
  #inFlight: CheckpointWrite | null = null;
  override commit(write: CheckpointWrite): Promise<CommitResult> {
    if (!this.commitLateNext) return super.commit(write);
    this.commitLateNext = false;
    this.#inFlight = write;
    return Promise.reject(new Error("connection lost after COMMIT was sent"));
  }
  override async stored(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    const before = await super.stored(tp, groupId);
    await this.#finish();
    return before;
  }
  override async settled(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    await this.#finish();
    return super.stored(tp, groupId);
  }
  async #finish(): Promise<void> {
    const write = this.#inFlight;
    this.#inFlight = null;
    if (write) await super.commit(write);
  }
}

Deno.test("a commit still finishing when the worker re-reads the store: the worker waits for it and applies nothing twice", async () => {
  const store = new LateCommitStore();
  const { h, values } = await handledOneTwo(store);
  store.commitLateNext = true;
  await h.runtime.housekeep(); // the commit fails without an answer; the worker rewinds and re-reads the store
  h.send("k", { n: 3 });
  while (!values().includes(3)) await new Promise((resolve) => setTimeout(resolve, 5));
  // Read before the late commit landed, the store said offset 0: 1 and 2 were applied again onto [1, 2].
  assert.deepEqual(values(), [1, 2, 3]);
  await h.stop();
  assert.equal(store.partitions.get(`group/${h.topics.events}:0`)?.nextOffset, 3);
  assert.deepEqual((await h.stored("k"))?.values, [1, 2, 3]);
});

/** Raises an alert for each message (its `n` in the details); messages `unlucky` picks are a terminal error. */
function echoLogic(
  unlucky: (n: number) => boolean = () => false,
): ActorLogic<{ key: string; n: number }, { n: number }> {
  return {
    kind: "echo",
    initial: (key) => ({ key, n: 0 }),
    decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
    eventTime: () => 0,
    handle: (state, message, ctx) => {
      if (unlucky(message.n)) throw new TerminalError(`${message.n} is unlucky`);
      emitTestAlert(ctx, "echo", state.key, { n: message.n });
      return { ...state, n: message.n };
    },
    persist: (state) => state,
    restore: (data) => data as { key: string; n: number },
  };
}

Deno.test("a fenced-off owner does not publish the outputs of what it handled after losing the partition", async () => {
  const echo = echoLogic();
  const h = new Harness(echo, 1);
  await h.start("old-owner");
  h.consumer.confirmsAssignment = false; // the group gave the partition to the new owner
  h.send("a", { n: 1 });
  await h.drained();
  assert.equal(h.log.all(h.topics.alerts).length, 1);
  await h.store.claim({ topic: h.topics.events, partition: 0 }, "group", "new-owner");
  h.send("a", { n: 2 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await h.stop();
  assert.equal(h.log.all(h.topics.alerts).length, 1, "the old owner published nothing more");
  assert.equal(((await h.store.read("echo", "a"))?.state as { n: number }).n, 1);
});

/** Waits until `h` has given `tp` up (fenced off: its worker closed, or waiting to claim it again). */
async function gaveUp(h: Harness, tp: TopicPartition): Promise<void> {
  for (let waited = 0; h.runtime.gaveUp(tp) === false && h.runtime.owned().includes(tpKey(tp)); waited += 10) {
    assert.ok(waited < 5_000, "the old owner gave the partition up");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Holds back the reply of one claim (it landed) until `release` is called. */
class SlowReplyStore extends MemoryCheckpointStore {
  held: Promise<void> | undefined;
  waiting = 0;
  override async claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    const claim = await super.claim(tp, groupId, owner);
    const held = this.held;
    this.held = undefined;
    if (held) {
      this.waiting++;
      await held;
    }
    return claim;
  }
}

/**
 * One partition, fenced off by another instance's claim after handling {n: 1} of key "a"; the
 * runtime is claiming it back (after {n: 2} arrived) and that claim landed, its reply held until
 * `release` resolves.
 */
async function fencedAndClaimingAgain() {
  const store = new SlowReplyStore();
  const h = new Harness(recorderLogic(), 1, 1_000, { store });
  let released = 0;
  h.instrumentation = { emit: (e) => void (e.type === "partition_released" && released++) };
  await h.start("this-instance");
  h.send("a", { n: 1 });
  await h.drained();
  const tp = { topic: h.topics.events, partition: 0 };
  await store.claim(tp, "group", "other-instance");
  const release = Promise.withResolvers<void>();
  store.held = release.promise;
  h.send("a", { n: 2 });
  await until(() => store.waiting > 0, "the partition is claimed again");
  return { store, h, tp, release, released: () => released };
}

Deno.test("a claim landing between a stalled owner's epoch check and its append: what it lets out is the new owner's outputs, byte for byte", async () => {
  /** Runs `afterCheck` once, between answering an epoch check and returning it: the claim races the append. */
  class RacingStore extends MemoryCheckpointStore {
    afterCheck: (() => Promise<void>) | undefined;
    override async stored(tp: TopicPartition, groupId: string): Promise<Claim | null> {
      const answer = await super.stored(tp, groupId);
      const race = this.afterCheck;
      this.afterCheck = undefined;
      await race?.();
      return answer;
    }
  }
  const store = new RacingStore();
  const old = new Harness(totals, 1, 1_000, { store });
  await old.start("old-owner");
  old.consumer.confirmsAssignment = false; // the group has moved on: it never claims the partition back
  old.send("a", { n: 1 });
  old.send("b", { n: 10 });
  await old.drained();
  const fresh = new Harness(totals, 1, 1_000, { store, log: old.log });
  store.afterCheck = async () => {
    // The new owner claims, handles everything from the old owner's last checkpoint and publishes.
    await fresh.start("new-owner");
    await fresh.drained();
  };
  for (let n = 2; n <= 4; n++) old.send("a", { n });
  old.send("b", { n: 20 });
  // The old owner's commit after the race is fenced off: it gives the partition up.
  await gaveUp(old, { topic: old.topics.events, partition: 0 });
  await old.stop();
  await fresh.stop();

  const alerts = old.log.all(old.topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  const byId = new Map<string, Set<string>>();
  for (const text of alerts) {
    const id = JSON.parse(text).alertId as string;
    byId.set(id, (byId.get(id) ?? new Set()).add(text));
  }
  assert.equal(byId.size, 6, "one alert per message");
  assert.equal(alerts.length, 6 + 4, "the four handled after the old owner's check were published by both owners");
  for (const [id, payloads] of byId) assert.equal(payloads.size, 1, `alert ${id} has one payload`);
  assert.equal(((await store.read("totals", "a"))?.state as { total: number }).total, 10);
  assert.equal(((await store.read("totals", "b"))?.state as { total: number }).total, 30);
});

Deno.test("a stalled owner that reloads an actor the new owner has written since publishes nothing computed from it", async () => {
  const store = new MemoryCheckpointStore();
  const old = new Harness(totals, 1, 1_000, { store, maxActors: 0 });
  await old.start("old-owner");
  old.consumer.confirmsAssignment = false; // the group has moved on: it never claims the partition back
  old.send("a", { n: 1 });
  await old.drained();
  await old.runtime.housekeep(); // checkpointed and beyond MAX_ACTORS: passivated
  assert.equal(old.runtime.actorCount, 0);
  const tp = { topic: old.topics.events, partition: 0 };
  old.consumer.pause([tp]); // the old owner stalls
  const fresh = new Harness(totals, 1, 1_000, { store, log: old.log });
  await fresh.start("new-owner");
  old.send("a", { n: 2 });
  old.send("a", { n: 3 });
  await fresh.drained();
  old.consumer.resume([tp]); // it wakes up and reads a's state, as the new owner wrote it
  await gaveUp(old, tp);
  await old.stop();
  await fresh.stop();
  const alerts = old.log.all(old.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(alerts.map((a) => a.details.total), [1, 3, 6], "the old owner published nothing after it stalled");
  assert.equal(((await store.read("totals", "a"))?.state as { total: number }).total, 6);
});

Deno.test("a partition fenced off while still assigned here is claimed again once the group confirms the assignment", async () => {
  const h = new Harness(recorderLogic(), 1);
  await h.start("this-instance");
  h.send("a", { n: 1 });
  await h.drained();
  // Another instance claimed it (a rebalance this one slept through), and the group gave it back.
  const tp = { topic: h.topics.events, partition: 0 };
  h.consumer.confirmsAssignment = false;
  await h.store.claim(tp, "group", "other-instance");
  h.send("a", { n: 2 });
  await gaveUp(h, tp);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(h.store.partitions.get(`group/${tp.topic}:0`)?.owner, "other-instance", "not before the group confirms");
  h.consumer.confirmsAssignment = true;
  h.send("a", { n: 3 });
  await h.drained();
  assert.deepEqual(h.runtime.owned(), [tpKey(tp)]);
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [1, 2, 3]);
  const row = h.store.partitions.get(`group/${tp.topic}:0`);
  assert.equal(row?.owner, "this-instance");
  assert.equal(row?.epoch, 3, "claimed, fenced off, claimed again");
});

Deno.test("a claim retried while the partition is revoked and assigned again: one worker, and it goes on", async () => {
  const { store, h, tp, release } = await fencedAndClaimingAgain();
  // Meanwhile a rebalance revokes the partition and assigns it here again.
  await h.runtime.revoked([tp]);
  const assigning = h.runtime.assigned([tp]);
  release.resolve();
  const offsets = await assigning;
  h.consumer.seek(tp, offsets.get(tpKey(tp))!);
  h.send("a", { n: 3 });
  await h.drained();
  assert.deepEqual(h.runtime.owned(), [tpKey(tp)]);
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [1, 2, 3]);
  assert.equal(store.partitions.get(`group/${tp.topic}:0`)?.epoch, 3, "one claim, not two");
});

Deno.test("a claim in flight when its partition is revoked gives it back: no worker is left behind", async () => {
  const { store, h, tp, release, released } = await fencedAndClaimingAgain();
  await h.runtime.revoked([tp]); // and the group gives it to another instance
  const stoodAt = store.commits;
  const releasedBefore = released();
  release.resolve();
  await until(() => released() > releasedBefore, "the claim's worker gave the partition back");
  assert.equal(store.partitions.get(`group/${tp.topic}:0`)?.epoch, 3, "the held claim landed");
  assert.deepEqual(h.runtime.owned(), [], "no worker for a partition no longer assigned here");
  h.send("a", { n: 3 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(store.commits, stoodAt, "nothing handled or checkpointed it since");
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [1]);
});

Deno.test("once the engine is leaving the group, nothing is claimed: not a new assignment, not a fenced-off partition", async () => {
  const h = new Harness(recorderLogic(), 2);
  await h.start("this-instance");
  h.send("a", { n: 1 });
  await h.drained();
  const tp = { topic: h.topics.events, partition: 0 };
  const other = { topic: h.topics.events, partition: 1 };
  const key = ["a", "b", "c", "d"].find((k) => partitionForKey(k, 2) === 0)!;
  await h.store.claim(tp, "group", "other-instance");
  await h.runtime.stopClaiming();
  h.send(key, { n: 2 });
  await until(() => h.runtime.gaveUp(tp), "the fenced-off partition was given up");
  await h.runtime.housekeep(); // would claim it again, were the engine not leaving
  assert.equal(h.runtime.gaveUp(tp), true, "the fenced-off partition was given up, not claimed again");
  await h.runtime.revoked([tp, other]);
  const epoch = () => h.store.partitions.get(`group/${other.topic}:1`)?.epoch;
  const before = epoch();
  assert.deepEqual(await h.runtime.assigned([other]), new Map(), "nor a partition assigned now");
  assert.equal(epoch(), before, "not even claimed and given back: that would fence its new owner");
  assert.deepEqual(h.runtime.owned(), []);
  assert.equal(h.store.partitions.get(`group/${tp.topic}:0`)?.owner, "other-instance");
  await h.stop();
});

Deno.test("dead letters and outputs are counted when appended, not each time a rewind handles their record again", async () => {
  let failures = 2;
  const h = new Harness(
    recorderLogic({
      handle: (_key, message) => {
        if (message.n === 5 && failures-- > 0) throw new Error("database hiccup");
      },
    }),
    1,
  );
  let deadLettered = 0;
  h.instrumentation = { emit: (e) => void (e.type === "dead_lettered" && (deadLettered += e.count)) };
  await h.start();
  h.send("a", { n: "not a number" }); // dead-lettered, then handled again by each rewind
  for (let n = 0; n < 10; n++) h.send("b", { n });
  await h.drained();
  await h.stop();
  assert.equal(failures, -1);
  assert.equal(h.log.all(h.topics.dlq).length, 1);
  // Counted when handled, it read 3 here: once per handling.
  assert.equal(deadLettered, 1);
});

Deno.test("outputs and dead letters are counted as the log takes them: after a lost reply and a failed commit, as many as the topics hold", async () => {
  const echo = echoLogic((n) => n % 10 === 3);
  const h = new Harness(echo, 1, 1_000_000, { checkpointIntervalMs: 3_600_000 });
  let outputs = 0;
  let deadLettered = 0;
  h.instrumentation = {
    emit: (e) => {
      if (e.type === "output") outputs += e.count;
      if (e.type === "dead_lettered") deadLettered += e.count;
    },
  };
  const handled = async (n: number) => {
    while (((h.runtime.lookup("echo", "a")?.state as { n: number } | undefined)?.n ?? -1) < n) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  await h.start();
  for (let n = 0; n < 5; n++) h.send("a", { n });
  await handled(4);
  h.store.loseNextReply = true;
  await h.runtime.housekeep(); // lands; the worker is told it failed and resumes from the stored offset
  for (let n = 5; n < 10; n++) h.send("a", { n });
  await handled(9);
  let failOnce = true;
  h.store.failCommitWhen = () => failOnce && !(failOnce = false);
  await h.runtime.housekeep(); // appends 5-9's outputs, then fails without landing: the replay appends them again
  await handled(9);
  await h.runtime.housekeep();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts);
  const ids = new Set(
    alerts.map((r) => (JSON.parse(new TextDecoder().decode(r.value!)) as { alertId: string }).alertId),
  );
  assert.equal(ids.size, 9, "one alert per message but the dead-lettered one");
  assert.ok(alerts.length > ids.size, "the failed commit's outputs were appended again");
  assert.equal(outputs, alerts.length);
  assert.equal(deadLettered, h.log.all(h.topics.dlq).length);
  assert.ok(deadLettered >= 1);
});

Deno.test("an actor's last activity is its latest record time, whatever order the records came in", async () => {
  const h = new Harness(recorderLogic(), 1);
  const t0 = Date.UTC(2026, 0, 1);
  h.wall = t0 + 60_000;
  await h.start();
  h.send("a", { n: 1 }); // written at t0 + 1 min
  h.wall = t0; // a producer whose clock is behind: the next record carries an older timestamp
  h.send("a", { n: 2 });
  await h.drained();
  await h.stop();
  // Taking the last record's time as is would make the actor look a minute older to the TTL.
  assert.equal(h.store.rows.get("recorder/a")?.lastActiveAt, t0 + 60_000);
});

Deno.test("a handler failing with an engine error that is not terminal (the log unavailable) is retried, not dead-lettered", async () => {
  let fail = true;
  const h = new Harness(
    recorderLogic({
      handle: () => {
        if (!fail) return;
        fail = false;
        throw new LogUnavailableError("enrichment lookup: log unavailable");
      },
    }),
    1,
  );
  await h.start();
  h.send("k", { n: 1 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1], "handled once it succeeded");
  assert.equal(h.log.all(h.topics.dlq).length, 0, "nothing dead-lettered");
});

Deno.test("the retry delay starts over after a success: one failure long after an earlier outage waits the initial delay", async () => {
  const delays: unknown[] = [];
  const logger = createLogger("error", (line) => {
    const entry = JSON.parse(line);
    if (entry.msg === "handling failed; rewinding to the last checkpoint") delays.push(entry.delay);
  });
  const failures = new Set([1, 2, 3, 5]); // n of the messages whose first attempt fails
  const h = new Harness(
    recorderLogic({
      handle: (_key, m) => {
        if (failures.delete(m.n)) throw new Error("transient");
      },
    }),
    1,
    1_000, // no checkpoint in between: the handling's own success is what starts the delay over
    { checkpointIntervalMs: 1e9, logger } as ConstructorParameters<typeof Harness>[3],
  );
  await h.start();
  const handled = (n: number) =>
    until(() => (h.runtime.lookup("recorder", "k")?.state as Recorded | undefined)?.values.length === n, `${n}`);
  for (let n = 1; n <= 4; n++) h.send("k", { n });
  await handled(4); // 1..3 fail in a row (one batch, each retry gets one further), then the batch succeeds
  h.send("k", { n: 5 }); // a failure after that success
  await handled(5);
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 2, 3, 4, 5]);
  // The harness's backoff: 5 ms doubling up to 20 ms.
  assert.deepEqual(delays, [5, 10, 20, 5]);
});

Deno.test("a state lookup answers from the actors of the kind asked for, when a key of another kind has the same id", async () => {
  const topics = topicNames({ TOPIC_PREFIX: "" });
  const log = new MemoryLog();
  await log.ensureTopics([topics.events, topics.productEvents].map((topic) => ({ topic, partitions: 1 })));
  const store = new MemoryCheckpointStore();
  const consumer = log.consumer({ maxBatch: 50 });
  const users = { ...recorderLogic(), kind: "users" };
  const products = { ...recorderLogic(), kind: "products" };
  const runtime = new ActorRuntime({
    store,
    producer: log.producer(),
    consumer,
    topics,
    groupId: "g",
    owner: "test",
    logger: silentLogger,
    logics: new Map<string, AnyActorLogic>([[topics.productEvents, products], [topics.events, users]]),
    checkpointIntervalMs: 1e9,
    checkpointMaxMessages: 1,
  });
  await consumer.start([topics.productEvents, topics.events], runtime);
  log.appendNow([{ topic: topics.productEvents, key: "42", value: JSON.stringify({ n: 1 }) }]);
  log.appendNow([{ topic: topics.events, key: "42", value: JSON.stringify({ n: 2 }) }]);
  await until(
    () => runtime.lookup("users", "42") !== undefined && runtime.lookup("products", "42") !== undefined,
    "both handled",
  );
  assert.deepEqual(runtime.lookup("users", "42")?.state, { key: "42", values: [2] });
  assert.deepEqual(runtime.lookup("products", "42")?.state, { key: "42", values: [1] });
  assert.equal(runtime.lookup("nobody", "42"), undefined);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("outputs are stored by their topic's contract: an alert without details gets {}, one without an id or a minute off its boundary is not stored", async () => {
  const minute = (at: number) => ({
    productId: "p",
    minute: at,
    category: null,
    brand: null,
    views: 1,
    cartAdds: 0,
    orders: 0,
    units: 0,
    revenueMillis: 0,
    keepFrom: 0,
  });
  const recorder = recorderLogic();
  const logic: ActorLogic<Recorded, RecorderMessage> = {
    ...recorder,
    handle: (state, message, ctx) => {
      const alert = {
        type: "t",
        severity: "info",
        subject: { kind: "k", id: "x" },
        occurredAt: "2026-01-01T00:00:00Z",
      };
      ctx.emit("alerts", "x", { ...alert, alertId: "no-details" });
      ctx.emit("alerts", "x", { ...alert, alertId: "", details: {} });
      ctx.emit("productMinutes", "p", minute(120_000));
      ctx.emit("productMinutes", "p", minute(120_001));
      return recorder.handle(state, message, ctx);
    },
  };
  const h = new Harness(logic, 1);
  await h.start();
  h.send("x", { n: 1 });
  await h.drained();
  await h.stop();
  assert.deepEqual([...h.store.alerts.keys()], ["no-details"]);
  assert.deepEqual(h.store.alerts.get("no-details")?.details, {});
  assert.deepEqual([...h.store.productMinutes.keys()], ["p/120000"]);
  assert.equal(h.log.all(h.topics.alerts).length, 2, "both published as they were: the topic is the actor's");
});

Deno.test("ActorRuntime keeps no state for a key whose messages never changed its initial state", async () => {
  // The user actor forwards an inventory_updated produced to `events` (keyed by its product) and keeps no user for it:
  // it returns the state it was given. Every key a record reached was persisted, and answered as an empty actor.
  const passThrough: ActorLogic<Recorded, RecorderMessage> = {
    ...recorderLogic(),
    handle: (state, message) => message.n < 0 ? state : { ...state, values: [...state.values, message.n] },
  };
  const h = new Harness(passThrough, 1);
  await h.start();
  h.send("forwarded", { n: -1 });
  h.send("kept", { n: -1 });
  h.send("kept", { n: 2 });
  await h.drained();
  assert.equal(h.runtime.lookup("recorder", "forwarded"), undefined, "a query finds no such actor in memory");
  assert.deepEqual(h.runtime.lookup("recorder", "kept")?.state, { key: "kept", values: [2] });
  await h.runtime.passivateAll();
  assert.equal(h.runtime.lookup("recorder", "forwarded"), undefined, "nor after passivation");
  h.send("kept", { n: -1 }); // unchanged, but a stored actor's activity still counts for its TTL
  await h.drained();
  await h.stop();
  assert.equal(await h.stored("forwarded"), undefined);
  assert.deepEqual(await h.stored("kept"), { key: "kept", values: [2] });
});
