import assert from "node:assert/strict";
import { Counter, Histogram, Registry } from "prom-client";
import { LocalHistogram, TalliedCounter } from "../../engine/hot_metrics.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { Metrics } from "../../engine/metrics.ts";
import { batch, claim, InertConsumer, noHeartbeat, record, T0, tp } from "../helpers/partition_worker.ts";
import { prng } from "../helpers/prng.ts";
import { emitTestAlert, Harness, recorderLogic, until } from "../helpers/runtime.ts";

Deno.test("metrics count what the runtime did, and a released partition stops reporting lag", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const h = new Harness(recorderLogic(), 2);
  h.instrumentation = metrics;
  await h.start();
  for (let n = 0; n < 40; n++) h.send(`k${n % 4}`, { n });
  h.log.appendNow([{ topic: h.topics.events, key: "k0", value: "not json" }]);
  await h.drained();
  await h.runtime.housekeep();
  const during = (await metrics.render()).body;
  assert.match(during, /engine_events_processed_total\{kind="recorder",type="recorder"\} 40/);
  assert.match(during, /engine_dlq_records_total\{topic="events",code="validation_failed"\} 1/);
  assert.match(during, /engine_actors_total\{kind="recorder",change="activated"\} 4/);
  assert.match(during, /engine_consumer_lag_records\{topic="events",partition="\d"\} 0/);
  assert.match(during, /engine_checkpoint_duration_seconds_count\{topic="events"\} [1-9]/);
  // Every successful checkpoint reports its three steps, and they add up to its duration.
  const value = (pattern: RegExp) => Number(during.match(pattern)?.[1]);
  const count = value(/engine_checkpoint_duration_seconds_count\{topic="events"\} (\S+)/);
  const phaseSum = ["publish", "persist", "commit"].reduce((sum, phase) => {
    assert.equal(
      value(new RegExp(`engine_checkpoint_phase_seconds_count\\{topic="events",phase="${phase}"\\} (\\S+)`)),
      count,
    );
    return sum + value(new RegExp(`engine_checkpoint_phase_seconds_sum\\{topic="events",phase="${phase}"\\} (\\S+)`));
  }, 0);
  const durationSum = value(/engine_checkpoint_duration_seconds_sum\{topic="events"\} (\S+)/);
  assert.ok(durationSum > 0 && Math.abs(phaseSum - durationSum) < 1e-6, `${phaseSum} vs ${durationSum}`);
  await h.stop();
  const after = (await metrics.render()).body;
  assert.doesNotMatch(after, /engine_consumer_lag_records\{/);
});

Deno.test("hot metrics write the same exposition as prom-client's own counter and histogram, read after read", async () => {
  const buckets = [0.01, 0.1, 1, 10];
  const ours = new Registry();
  const reference = new Registry();
  const counter = new TalliedCounter({ name: "c_total", help: "h", labelNames: ["kind", "type"], registry: ours });
  const histogram = new LocalHistogram({ name: "lag_seconds", help: "h", labelName: "kind", buckets, registry: ours });
  const referenceCounter = new Counter({
    name: "c_total",
    help: "h",
    labelNames: ["kind", "type"],
    registers: [reference],
  });
  const referenceHistogram = new Histogram({
    name: "lag_seconds",
    help: "h",
    labelNames: ["kind"],
    buckets,
    registers: [reference],
  });
  const random = prng(3);
  // Values on the bounds, between them, above the last and zero; reads in between must not lose or repeat counts.
  const values = [0, 0.01, 0.05, 0.1, 1, 3, 10, 10.5, 1e6];
  for (let round = 0; round < 3; round++) {
    for (let n = 0; n < 200; n++) {
      const kind = ["user", "product", "global"][Math.floor(random() * 3)];
      const type = ["a", "b"][Math.floor(random() * 2)];
      const value = values[Math.floor(random() * values.length)];
      counter.inc(kind, type);
      referenceCounter.inc({ kind, type });
      histogram.observe(kind, value);
      referenceHistogram.observe({ kind }, value);
    }
    const sorted = (text: string) => text.split("\n").sort().join("\n");
    assert.equal(sorted(await ours.metrics()), sorted(await reference.metrics()), `round ${round}`);
  }
  assert.match(await ours.metrics(), /lag_seconds_bucket\{le="0.01",kind="(user|product|global)"\} [1-9]/);
  ours.resetMetrics();
  assert.doesNotMatch(await ours.metrics(), /lag_seconds_count/);
});

Deno.test("a partition fenced off by another owner's claim when a batch arrives leaves no lag or timers series behind", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const h = new Harness(recorderLogic(), 1, 1_000, { idleClockMs: 10_000, checkpointIntervalMs: 3_600_000 });
  h.instrumentation = metrics;
  await h.start("old-owner");
  try {
    h.consumer.confirmsAssignment = false; // the group gave the partition to the new owner
    const tp = { topic: h.topics.events, partition: 0 };
    h.send("a", { n: 1, at: h.wall });
    await until(() => h.runtime.lookup("recorder", "a") !== undefined, "the first record handled");
    await h.runtime.housekeep();
    await h.drained();
    // Idle for a minute: the partition's clock follows the wall, to be checkpointed with the next record.
    h.wall += 60_000;
    await h.runtime.housekeep();
    await h.store.claim(tp, "group", "new-owner");
    h.send("a", { n: 2, at: h.wall });
    await until(() => h.runtime.gaveUp(tp), "the old owner gave the partition up");
    await h.runtime.housekeep();
    const text = (await metrics.render()).body;
    assert.doesNotMatch(text, /engine_consumer_lag_records\{/, `the new owner reports this partition's lag:\n${text}`);
    assert.doesNotMatch(text, /engine_timers_pending\{/, "and its timers");
    assert.match(text, /engine_partitions_owned 0/);
  } finally {
    await h.stop();
  }
});

Deno.test("outputs are counted under the log's topic name and the kind of each fact, not under one blank subtype", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const logic = recorderLogic();
  // A user actor's outputs: a product fact to product-events, an abandonment to analytics, an alert.
  const h = new Harness({
    ...logic,
    handle: async (state, message, ctx) => {
      ctx.emit("productEvents", "p1", { fact: "product_viewed", factId: ctx.outputId("p"), productId: "p1" });
      ctx.emit("analytics", "global", { fact: "abandonment", factId: ctx.outputId("a"), stage: "cart" });
      emitTestAlert(ctx, "cart_abandoned", state.key);
      return await logic.handle(state, message, ctx);
    },
  }, 1);
  h.instrumentation = metrics;
  await h.start();
  try {
    for (let n = 0; n < 3; n++) h.send("u1", { n });
    await h.drained();
    const text = (await metrics.render()).body;
    assert.match(text, /engine_outputs_total\{topic="product-events",subtype="product_viewed"\} 3/, text);
    assert.match(text, /engine_outputs_total\{topic="analytics",subtype="abandonment"\} 3/, text);
    assert.match(text, /engine_outputs_total\{topic="alerts",subtype="cart_abandoned"\} 3/, text);
  } finally {
    await h.stop();
  }
});

Deno.test("a periodic checkpoint that fails is counted in engine_checkpoint_failures_total, once per attempt", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  // Checkpoints only from housekeeping (the interval), as under light traffic: CHECKPOINT_MAX_MESSAGES is never reached.
  const h = new Harness(recorderLogic(), 1, 1_000, { checkpointIntervalMs: 3_600_000 });
  h.instrumentation = metrics;
  await h.start();
  try {
    h.send("a", { n: 1 });
    await until(() => h.runtime.lookup("recorder", "a") !== undefined, "the record handled");
    h.store.failWith = new Error("database down");
    await h.runtime.housekeep();
    await h.runtime.housekeep();
    const text = (await metrics.render()).body;
    assert.match(text, /engine_checkpoint_failures_total\{topic="events"\} 2/, text);
    h.store.failWith = null;
    await h.runtime.housekeep();
    assert.match((await metrics.render()).body, /engine_checkpoint_failures_total\{topic="events"\} 2/);
  } finally {
    h.store.failWith = null;
    await h.stop();
  }
});

Deno.test("a partition's consumer lag keeps up with the log while the database is down, not frozen at the outage's start", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const lags: number[] = [];
  const worker = await claim(new InertConsumer(), () => T0, store, {
    instrumentation: { emit: (e) => e.type === "consumer_lag" && lags.push(e.lag) },
  });
  // Records of a key not in memory yet: handling them needs the database (its state is loaded).
  const batchOf = (from: number, end: number) => ({
    ...tp,
    records: Array.from({ length: end - from }, (_, i) => record(from + i, { n: from + i, at: T0 }, `k${from + i}`)),
    highWatermark: end,
    from,
    end,
  });
  await worker.handleBatch(batchOf(0, 5), noHeartbeat);
  await worker.checkpoint();
  assert.deepEqual(lags, [0]);
  store.failWith = new Error("database down");
  // Handling fails and rewinds to the checkpoint (offset 5); the log is read again from there as it grows.
  await worker.handleBatch(batchOf(5, 10), noHeartbeat);
  await worker.handleBatch(batchOf(5, 20), noHeartbeat);
  await worker.handleBatch(batchOf(5, 40), noHeartbeat);
  assert.equal(worker.checkpointedOffset, 5);
  assert.deepEqual(lags, [0, 5, 15, 35], "records between the log's end and the next record to handle");
  store.failWith = null;
  await worker.handleBatch(batchOf(5, 40), noHeartbeat);
  assert.equal(lags.at(-1), 0);
});

Deno.test("processing lag observes the messages that have an event time only, not a watermark's as 0 s", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const worker = await claim(new InertConsumer(), () => T0, undefined, { instrumentation: metrics });
  // Two events 5 s old, and a message without an event time (as the global actor's watermarks have none).
  const records = [record(0, { n: 0, at: T0 - 5_000 }), record(1, { n: 1 }), record(2, { n: 2, at: T0 - 5_000 })];
  await worker.handleBatch({ ...tp, records, highWatermark: 3, from: 0, end: 3 }, noHeartbeat);
  const text = (await metrics.render()).body;
  assert.match(text, /engine_events_processed_total\{kind="recorder",type="recorder"\} 3\n/);
  assert.match(text, /engine_processing_lag_seconds_count\{kind="recorder"\} 2\n/, text);
  assert.match(text, /engine_processing_lag_seconds_sum\{kind="recorder"\} 10\n/);
  assert.match(text, /engine_processing_lag_seconds_bucket\{le="1",kind="recorder"\} 0\n/);
});

Deno.test("a partition waiting for a forced checkpoint while the database is down reports its lag as the log grows", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const consumer = new InertConsumer();
  const lags: number[] = [];
  // Each message has an output, as the engine's user actors' have (their product facts): a checkpoint checks its epoch
  // in the store before it appends them, which fails while the database is down.
  const logic = recorderLogic();
  const worker = await claim(consumer, () => T0, store, {
    logic: {
      ...logic,
      handle: async (state, message, ctx) => {
        emitTestAlert(ctx, "test", state.key);
        return await logic.handle(state, message, ctx);
      },
    },
    checkpointMaxMessages: 5,
    instrumentation: { emit: (e) => e.type === "consumer_lag" && lags.push(e.lag) },
  });
  consumer.end = 5;
  await worker.handleBatch(batch(0, 4, 0, 5), noHeartbeat);
  assert.equal(worker.checkpointedOffset, 5);
  store.failWith = new Error("database down");
  // Its actor is in memory: the batch is handled, and its forced checkpoint retried until the database is back,
  // the partition's consumption waiting meanwhile.
  consumer.end = 10;
  const handling = worker.handleBatch(batch(5, 9, 5, 10), noHeartbeat);
  try {
    await until(() => lags.length >= 2, "the lag of the batch handled");
    // Records appended since: nothing reads them while the checkpoint is retried.
    consumer.end = 40;
    await until(() => lags.at(-1) === 30, `the lag to follow the log's end (reported: ${lags.join(", ")})`);
  } finally {
    store.failWith = null;
    await handling;
  }
  assert.equal(worker.checkpointedOffset, 10);
});
