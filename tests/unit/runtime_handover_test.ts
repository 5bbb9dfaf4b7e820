/**
 * Partitions changing hands: what the next owner resumes from when this instance gives one up, or gets one again.
 * (A graceful stop's checkpoint before leaving the group: tests/unit/kafka_assignment_test.ts.)
 */
import assert from "node:assert/strict";
import type { LogProducer } from "../../engine/log.ts";
import { LEAVING_APPEND_MS } from "../../engine/partition_worker.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { Harness, OutageStore, type Recorded, recorderLogic, until } from "../helpers/runtime.ts";

/** A one-partition harness that checkpoints only when asked (or on its way out), with five records handled. */
async function handled(): Promise<Harness> {
  const h = new Harness(recorderLogic(), 1, 1_000, { checkpointIntervalMs: 3_600_000 });
  await h.start();
  for (let n = 0; n < 5; n++) h.send("k", { n });
  await until(() => (h.runtime.lookup("recorder", "k")?.state as Recorded | undefined)?.values.length === 5, "handled");
  return h;
}

function checkpointed(h: Harness): number | undefined {
  return h.store.partitions.get(`group/${h.topics.events}:0`)?.nextOffset;
}

Deno.test("a revoked partition is checkpointed on its way out: the next owner resumes after every record handled here", async () => {
  const h = await handled();
  await h.runtime.revoked([{ topic: h.topics.events, partition: 0 }]);
  assert.deepEqual(h.runtime.owned(), []);
  assert.equal(checkpointed(h), 5, "the final checkpoint");
  assert.deepEqual((await h.stored("k"))?.values, [0, 1, 2, 3, 4]);
  await h.stop();
});

Deno.test("a partition whose claim failed and that a later assignment claimed is not claimed again by the retry", async () => {
  // Housekeeping by hand; a failed claim may be retried at once.
  const options = { checkpointIntervalMs: 3_600_000, retryBackoffMs: { initial: 0, max: 0 } };
  const h = new Harness(recorderLogic(), 1, 1_000, options as ConstructorParameters<typeof Harness>[3]);
  h.store.failWith = new Error("database starting up");
  await h.start(); // the assignment's claim fails: housekeeping is to retry it
  h.store.failWith = null;
  const tp = { topic: h.topics.events, partition: 0 };
  await h.runtime.assigned([tp]); // a rebalance assigns it again, and this claim succeeds
  const epoch = h.store.partitions.get(`group/${h.topics.events}:0`)?.epoch;
  h.send("k", { n: 1 });
  await until(() => h.runtime.lookup("recorder", "k") !== undefined, "handled");
  await h.runtime.housekeep();
  assert.equal(h.store.partitions.get(`group/${h.topics.events}:0`)?.epoch, epoch, "claimed once: no owner fenced off");
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1]);
});

Deno.test("a partition revoked while its checkpoint keeps failing (the database down) is given up at once, not after the outage", async () => {
  const store = new OutageStore();
  const h = new Harness(recorderLogic(), 1, 1, { checkpointIntervalMs: 3_600_000, store });
  await h.start();
  store.failWith = new Error("connection refused");
  // Dead-lettered without loading an actor: its checkpoint, due at once, has an output to publish and fails at the
  // epoch check before it, again and again while the database is down.
  h.send("k", { n: "not a number" });
  await until(() => store.refused("stored") >= 2, "the checkpoint is being retried");
  const tp = { topic: h.topics.events, partition: 0 };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    h.runtime.revoked([tp]).then(() => "revoked"),
    new Promise((resolve) => timer = setTimeout(() => resolve("waiting for the database"), 2_000)),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "revoked", "the revocation (and the group's whole assignment behind it) waited for the outage");
  // Nothing was checkpointed: the next owner (here, once the database is back) handles the record again.
  store.failWith = null;
  assert.equal(checkpointed(h), 0);
  assert.equal(h.log.all(h.topics.dlq).length, 0);
  const offsets = await h.runtime.assigned([tp]);
  h.consumer.seek(tp, offsets.get(`${tp.topic}:${tp.partition}`)!);
  await h.drained();
  assert.equal(h.log.all(h.topics.dlq).length, 1);
  await h.stop();
});

Deno.test("a partition revoked while its checkpoint's append goes unanswered (the broker down) is given up within LEAVING_APPEND_MS", async () => {
  // kafkajs retrying an unreachable broker: the append is answered at its deadline, a minute for a checkpoint's outputs.
  let appends = 0;
  const unanswered: LogProducer = {
    append: () => (appends++, new Promise<void>(() => {})),
    close: () => Promise.resolve(),
  };
  const options = { checkpointIntervalMs: 3_600_000, producer: unanswered };
  const h = new Harness(recorderLogic(), 1, 1, options as ConstructorParameters<typeof Harness>[3]);
  await h.start();
  h.send("k", { n: "not a number" }); // dead-lettered: its checkpoint, due at once, has an output to publish
  await until(() => appends >= 1, "the checkpoint is appending its output");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    h.runtime.revoked([{ topic: h.topics.events, partition: 0 }]).then(() => "revoked"),
    new Promise((resolve) => timer = setTimeout(() => resolve("waiting for the broker"), LEAVING_APPEND_MS + 3_000)),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "revoked", "the revocation (or a stop) waited for the append's own deadline");
  assert.equal(checkpointed(h), 0, "nothing checkpointed past outputs the log did not take");
  await h.stop();
});

Deno.test("a stop whose last batch takes longer than LEAVING_APPEND_MS to finish still publishes its final checkpoint", async () => {
  // The window for a leaving partition's appends used to be counted from the start of the stop: a final checkpoint
  // that began after a long drain had none left, was cut at once, and the next start replayed what it held.
  const log = new MemoryLog(() => Date.UTC(2026, 0, 1));
  const inner = log.producer();
  const slow: LogProducer = {
    append: async (records, options) => {
      await new Promise((resolve) => setTimeout(resolve, 100)); // a broker that answers, a little slowly
      return await inner.append(records, options);
    },
    close: () => inner.close(),
  };
  const gate = Promise.withResolvers<void>();
  let blocked = false;
  const logic = recorderLogic({
    handle: async (_key, message) => {
      if (message.n !== 1) return;
      blocked = true;
      await gate.promise;
    },
  });
  const options = { checkpointIntervalMs: 3_600_000, log, producer: slow };
  const h = new Harness(logic, 1, 1_000, options as ConstructorParameters<typeof Harness>[3]);
  await h.start();
  h.send("a", { n: 1 }); // its handler waits for the gate
  h.send("b", { n: "not a number" }); // dead-lettered: an output for the checkpoint to publish
  await until(() => blocked, "the first record is being handled");
  const stopping = h.runtime.shutdown().then(() => h.consumer.stop());
  await new Promise((resolve) => setTimeout(resolve, LEAVING_APPEND_MS + 500));
  gate.resolve();
  await stopping;
  assert.equal(checkpointed(h), 2, "the final checkpoint, after both records");
  assert.equal(log.all(h.topics.dlq).length, 1);
});
