/**
 * The state TTL as the runtime applies it (README, "State expiry"): an expired actor never comes back with its old
 * state, whether the checkpoint carrying its delete failed, or its record came first; and the alerts' retention,
 * counted from when each alert was stored.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import { ALERT_PRUNE_BATCH } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { Alert } from "../../engine/outputs.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { emitTestAlert, Harness, type Recorded, recorderLogic, type RecorderMessage } from "../helpers/runtime.ts";

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

Deno.test("an actor expired in memory whose delete has not committed starts afresh also for a record appended before it expired", async () => {
  const h = harness({ stateTtlMs: 60 * SECOND });
  await h.start();
  h.send("k", { n: 1 });
  await h.drained();
  await h.runtime.housekeep();
  h.consumer.readable = false; // the log cannot be read: what is appended now waits
  h.wall += 50 * SECOND;
  h.send("k", { n: 2 }); // 50 s after k's last record, within the TTL
  h.wall += 20 * SECOND; // idle, past the TTL by the wall: the next round expires k in memory
  h.store.failCommitWhen = (write) => write.deletes.length > 0; // and the checkpoint carrying its delete fails
  await h.runtime.housekeep();
  assert.deepEqual((await h.stored("k"))?.values, [1], "the stored row is still there");
  h.store.failCommitWhen = null;
  h.consumer.readable = true;
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [2], "k came back from the row its expiry was deleting");
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

Deno.test("alerts of a historical import are kept after the partitions idle past their event time, until stored longer than the retention", async () => {
  const base = recorderLogic();
  const logic: ActorLogic<Recorded, RecorderMessage> = {
    ...base,
    handle: (state, message, ctx) => {
      emitTestAlert(ctx, "recorded", state.key, { n: message.n });
      return { ...state, values: [...state.values, message.n] };
    },
  };
  const h = new Harness(logic, 1, 1, { idleClockMs: SECOND, checkpointIntervalMs: 1e9, alertRetentionMs: 90 * DAY });
  await h.start();
  const october2019 = Date.UTC(2019, 9, 1);
  for (let i = 0; i < 5; i++) h.send(`u${i}`, { n: i, at: october2019 + i * 60 * SECOND });
  await h.drained();
  assert.equal(h.store.alerts.size, 5);
  // The import is over: the idle partition's clock follows the wall, years past the alerts' event time.
  for (let round = 0; round < 3; round++) {
    h.wall += 61 * SECOND;
    await h.runtime.housekeep();
    await h.runtime.alertPruning;
  }
  assert.equal(h.store.alerts.size, 5, "an import keeps its alerts for the retention from when they were stored");
  h.wall += 90 * DAY;
  await h.runtime.housekeep();
  await h.runtime.alertPruning;
  assert.equal(h.store.alerts.size, 0);
  await h.stop();
});

/** A memory store that records what each `pruneAlerts` call deleted. */
class CountingStore extends MemoryCheckpointStore {
  readonly prunes: number[] = [];

  override async pruneAlerts(retentionMs: number, limit: number): Promise<number> {
    const count = await super.pruneAlerts(retentionMs, limit);
    this.prunes.push(count);
    return count;
  }
}

Deno.test("housekeeping prunes alerts stored longer ago than the retention, a batch per call until one comes back short; checkpoints never do", async () => {
  let wall = Date.UTC(2026, 0, 1);
  const store = new CountingStore(() => wall);
  const h = new Harness(recorderLogic(), 1, 1, {
    idleClockMs: SECOND,
    checkpointIntervalMs: 1e9,
    alertRetentionMs: DAY,
    store,
  });
  h.wall = wall;
  const stored = (id: string, at: number) => {
    store.alerts.set(id, alert(id, at));
    store.alertsStoredAt.set(id, at);
  };
  for (let i = 0; i < 2 * ALERT_PRUNE_BATCH + 3; i++) stored(`old-${i}`, wall - 2 * DAY + i);
  stored("recent", wall - DAY / 2);
  await h.start();
  h.send("k", { n: 1, at: wall });
  await h.drained();
  assert.equal(store.alerts.size, 2 * ALERT_PRUNE_BATCH + 4, "the record's checkpoint deleted none");
  await h.runtime.housekeep();
  await h.runtime.alertPruning;
  assert.deepEqual(store.prunes, [ALERT_PRUNE_BATCH, ALERT_PRUNE_BATCH, 3]);
  assert.deepEqual([...store.alerts.keys()], ["recent"]);
  h.wall = wall += 30 * SECOND;
  await h.runtime.housekeep();
  await h.runtime.alertPruning;
  assert.equal(store.prunes.length, 3, "once a minute");
  h.wall = wall += DAY;
  await h.runtime.housekeep();
  await h.runtime.alertPruning;
  assert.deepEqual(store.prunes, [ALERT_PRUNE_BATCH, ALERT_PRUNE_BATCH, 3, 1]);
  assert.equal(store.alerts.size, 0);
  await h.stop();
});

Deno.test("a passivated actor with a pending timer reloads its state for a record that comes past the TTL", async () => {
  const recorder = recorderLogic();
  const reminding: ActorLogic<Recorded, RecorderMessage> = {
    ...recorder,
    handle: (state, message, ctx) => {
      if (message.n === 1) ctx.setTimer("remind", message.at + DAY); // due long after the TTL
      return recorder.handle(state, message, ctx);
    },
  };
  const h = new Harness(reminding, 1, 1, { stateTtlMs: 60 * SECOND, idleClockMs: DAY, checkpointIntervalMs: 1e9 });
  await h.start();
  h.send("k", { n: 1, at: h.wall });
  await h.drained();
  await h.runtime.passivateAll();
  assert.equal(h.runtime.actorCount, 0);
  h.wall += 120 * SECOND; // past the TTL since its last record: but the actor is waiting on its timer
  h.send("k", { n: 2, at: h.wall });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 2], "it kept its state");
});

Deno.test("a record stamped in the future by its producer's clock does not take a passivated actor for expired", async () => {
  let logWall = Date.UTC(2026, 0, 1);
  const h = new Harness(recorderLogic(), 1, 1, {
    stateTtlMs: 60 * SECOND,
    idleClockMs: SECOND,
    checkpointIntervalMs: 1e9,
    log: new MemoryLog(() => logWall),
  });
  h.wall = logWall;
  await h.start();
  h.send("k", { n: 1 });
  await h.drained();
  await h.runtime.passivateAll();
  h.wall += SECOND;
  logWall = h.wall + 10 * 60 * SECOND; // the record's append time, ten minutes ahead of this engine's wall
  h.send("k", { n: 2 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 2], "one second after its last record it is not expired");
});

Deno.test("an idle partition with nothing new still sweeps its stored actors past the TTL once a minute", async () => {
  const h = harness({ stateTtlMs: 60 * SECOND });
  await h.start();
  h.send("k", { n: 1 });
  await h.drained();
  await h.runtime.passivateAll(); // out of memory: only the store's sweep can expire it
  h.wall += 5 * 60 * SECOND; // past the TTL and the sweep interval, with no record since
  await h.runtime.housekeep();
  assert.equal(await h.stored("k"), undefined, "the sweep deleted its row");
  await h.stop();
});

Deno.test("an actor exactly the TTL after its last record is not expired: not when loaded, not in memory", async () => {
  const h = harness({ stateTtlMs: 60 * SECOND });
  await h.start();
  h.send("k", { n: 1 });
  await h.drained();
  await h.runtime.passivateAll();
  h.wall += 60 * SECOND; // expired only once longer than the TTL has passed
  h.send("k", { n: 2 });
  await h.drained();
  h.wall += 60 * SECOND; // in memory now, idle exactly the TTL: the round keeps it
  await h.runtime.housekeep();
  h.send("k", { n: 3 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("k"))?.values, [1, 2, 3]);
});

Deno.test("stored actors of a partition the topic no longer has (created again with fewer) are swept past the TTL too", async () => {
  const store = new MemoryCheckpointStore();
  const before = new Harness(recorderLogic(), 3, 1, { store, stateTtlMs: 60 * SECOND, checkpointIntervalMs: 1e9 });
  const key = ["a", "b", "c", "d", "e", "f"].find((k) => partitionForKey(k, 3) === 2)!;
  before.wall = Date.UTC(2026, 0, 1);
  await before.start();
  before.send(key, { n: 1 });
  await before.drained();
  await before.stop();
  assert.equal(store.rows.get(`recorder/${key}`)?.partition, 2);
  // The topic created again with one partition: nothing names partition 2 any more.
  const after = new Harness(recorderLogic(), 1, 1, { store, stateTtlMs: 60 * SECOND, checkpointIntervalMs: 1e9 });
  after.wall = before.wall + 5 * 60 * SECOND; // past the TTL and the sweep interval
  await after.start();
  after.wall += 20 * SECOND; // idle: the TTL is judged by the wall
  await after.runtime.housekeep();
  await after.stop();
  assert.equal(await after.stored(key), undefined, "its row was swept as partition 0's would be");
});
