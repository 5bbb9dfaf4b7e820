/**
 * What a lone partition worker publishes and stores: its handlers' and timers' outputs, as the alerts and the fed
 * analytics partition see them.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import type { Claim } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { TopicPartition } from "../../engine/log.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import {
  alarmLogic,
  type Alarms,
  bundledRecord,
  claim,
  InertConsumer,
  noHeartbeat,
  record,
  T0,
  topics,
  tp,
} from "../helpers/partition_worker.ts";

const MIN = 60_000;

Deno.test("a timer armed again after it fired raises a second alert of its own: the ids name the deadline", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const worker = await claim(new InertConsumer(), () => T0, store, { logic: alarmLogic() });
  const records = [
    record(0, { at: T0, alarm: T0 + 10 * MIN }),
    record(1, { at: T0 + 20 * MIN, alarm: T0 + 30 * MIN }), // the first alarm fires before this; then armed again
    record(2, { at: T0 + 40 * MIN }), // the second fires before this
  ];
  await worker.handleBatch({ ...tp, records, highWatermark: 3 }, noHeartbeat);
  await worker.checkpoint();
  assert.deepEqual((worker.peek("u") as Alarms).fired, [T0 + 10 * MIN, T0 + 30 * MIN]);
  const alerts = [...store.alerts.values()].map((a) => a.occurredAt).sort();
  assert.deepEqual(alerts, [new Date(T0 + 10 * MIN).toISOString(), new Date(T0 + 30 * MIN).toISOString()]);
});

Deno.test("an idle advance that fires a timer publishes its clock to the fed partition only after the timer's facts", async () => {
  let wall = T0;
  const log = new MemoryLog(() => wall);
  const consumer = new InertConsumer();
  const logic: ActorLogic<Alarms, { at: number; alarm?: number }> = {
    ...alarmLogic(),
    // The fact a cart abandonment sends the global actor, dated by the deadline.
    onTimer: (state, _name, ctx) => {
      ctx.emit("analytics", "global", { fact: "abandoned", at: ctx.now() });
      return state;
    },
  };
  const worker = await claim(consumer, () => wall, undefined, {
    logic,
    idleClockMs: 1_000,
    watermarks: { topic: topics.analytics, key: "global", partitions: 1 },
  }, log);
  await worker.handleBatch(
    { ...tp, records: [record(0, { at: T0, alarm: T0 + 10 * MIN })], highWatermark: 1 },
    noHeartbeat,
  );
  await worker.checkpoint();
  consumer.end = 1;
  wall = T0 + 30 * MIN; // idle: the clock follows the wall past the deadline, and the timer fires
  await worker.tick();
  await worker.checkpoint();
  const published = log.all(topics.analytics).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  const fact = published.findIndex((v) => v.fact === "abandoned");
  assert.equal(published[fact].at, T0 + 10 * MIN);
  const early = published.findIndex((v) => v.fact === "watermark" && v.clock > T0 + 10 * MIN);
  assert.ok(early > fact, `a watermark past the fact's time comes after it: ${JSON.stringify(published)}`);
});

Deno.test("a rewind takes the sources' watermark back with the clock: a replayed record sees what it saw the first time", async () => {
  let wall = T0;
  let refuseStored = false;
  /** A store whose epoch check before publishing fails while `refuseStored` (the database gone for a moment). */
  class FlakyStore extends MemoryCheckpointStore {
    override stored(tp: TopicPartition, groupId: string): Promise<Claim | null> {
      if (refuseStored) return Promise.reject(new Error("connection reset"));
      return super.stored(tp, groupId);
    }
  }
  const store = new FlakyStore(() => wall);
  const consumer = new InertConsumer();
  type Seen = Alarms & { readonly watermarks: readonly (number | null)[] };
  const alarms = alarmLogic();
  const logic: ActorLogic<Seen, { at: number; alarm?: number }> = {
    ...alarms,
    initial: (key) => ({ ...alarms.initial(key), watermarks: [] }),
    // What a fed (analytics) actor decides by: how far the partitions feeding it have published.
    handle: (state, m, ctx) => {
      const watermark = ctx.sourcesWatermark!();
      const next = alarms.handle(state, m, ctx) as Alarms;
      return { ...state, ...next, watermarks: [...state.watermarks, Number.isFinite(watermark) ? watermark : null] };
    },
    onTimer: (state, name, ctx) => ({ ...state, ...(alarms.onTimer!(state, name, ctx) as Alarms) }),
    restore: (d) => d as Seen,
  };
  const worker = await claim(consumer, () => wall, store, {
    logic,
    idleClockMs: 1_000,
    source: { topic: topics.events, partitions: 1 },
  });
  await worker.handleBatch({ ...tp, records: [record(0, { at: T0, alarm: T0 + MIN })], highWatermark: 1 }, noHeartbeat);
  await worker.checkpoint();
  // Record 1 comes after the first alarm (which fires and raises an alert first), and arms it again.
  const second = record(1, { at: T0 + 2 * MIN, alarm: T0 + 3 * MIN });
  await worker.handleBatch({ ...tp, records: [second], highWatermark: 2 }, noHeartbeat);
  consumer.end = 2;
  // Idle: the clock follows the wall, and the sources are found published to it. The alarm is due, so that advance is
  // checkpointed first, with the first alarm's alert; its epoch check fails: everything since the checkpoint is rewound.
  wall = T0 + 10 * MIN;
  refuseStored = true;
  await worker.tick();
  refuseStored = false;
  assert.deepEqual(consumer.seeks, [1], "rewound to the checkpoint");
  await worker.handleBatch({ ...tp, records: [second], highWatermark: 2 }, noHeartbeat);
  await worker.checkpoint();
  const state = (await store.read("alarm", "u"))?.state as Seen;
  assert.deepEqual(
    state.watermarks,
    [null, null],
    "record 1 saw no watermark the first time; its replay sees none either",
  );
});

Deno.test("outputs of the facts of one bundle get ids of their own: two alerts of one rule from one record are both kept", async () => {
  const store = new MemoryCheckpointStore(() => T0);
  const logic: ActorLogic<number, { at: number }> = {
    kind: "product",
    initial: () => 0,
    decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
    eventTime: (m) => m.at,
    handle: (n, _m, ctx) => {
      ctx.emit("alerts", "p", {
        alertId: ctx.outputId("low_inventory"),
        type: "low_inventory",
        severity: "warning",
        subject: { kind: "product", id: "p" },
        occurredAt: new Date(ctx.now()).toISOString(),
      });
      return n + 1;
    },
    persist: (s) => s,
    restore: (d) => d as number,
  };
  const worker = await claim(new InertConsumer(), () => T0, store, { logic });
  // One record of product-events: a bundle of two orders' facts (engine/fact_bundle.ts), each raising the alert.
  const read = bundledRecord([{ at: T0 }, { at: T0 }], "p");
  await worker.handleBatch({ ...tp, records: [read], highWatermark: 1 }, noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.alerts.size, 2, `ids: ${[...store.alerts.keys()]}`);
});
