import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import type { CheckpointWrite, CommitResult } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { MAX_FIRINGS_PER_KEY } from "../../engine/partition_worker.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { emitTestAlert, Harness, OutageStore, recorderLogic, until } from "../helpers/runtime.ts";
import { replayPartition } from "../helpers/replay.ts";

/** A reminder actor: `{at, remind}` arms a timer `remind` ms after the message's event time; `{at, cancel}` cancels it. */
interface Reminders {
  readonly key: string;
  readonly fired: readonly number[];
  readonly seen: number;
}
type ReminderMessage = { at: number; remind?: number; cancel?: boolean };

const reminderLogic: ActorLogic<Reminders, ReminderMessage> = {
  kind: "reminder",
  initial: (key) => ({ key, fired: [], seen: 0 }),
  decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
  eventTime: (m) => m.at,
  handle: (state, m, ctx) => {
    if (m.remind !== undefined) ctx.setTimer("remind", m.at + m.remind);
    if (m.cancel) ctx.cancelTimer("remind");
    return { ...state, seen: state.seen + 1 };
  },
  onTimer: (state, _name, ctx) => {
    emitTestAlert(ctx, "reminder", state.key);
    return { ...state, fired: [...state.fired, ctx.now()] };
  },
  persist: (s) => s,
  restore: (d) => d as Reminders,
};

const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);
const MIN = 60_000;

const pause = () => new Promise((resolve) => setTimeout(resolve, 5));

async function settle(h: Harness): Promise<void> {
  await h.drained();
  await h.runtime.housekeep();
}

async function stored(h: Harness, key: string): Promise<Reminders | undefined> {
  return (await h.store.read("reminder", key))?.state as Reminders | undefined;
}

Deno.test("a timer fires when the partition clock (event time) passes its deadline, before that later message", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  h.send("b", { at: T0 + 29 * MIN }); // another key moves the clock, not far enough
  await settle(h);
  assert.deepEqual((await stored(h, "a"))?.fired, []);
  h.send("b", { at: T0 + 31 * MIN }); // now past the deadline
  await settle(h);
  await h.stop();
  assert.deepEqual((await stored(h, "a"))?.fired, [T0 + 30 * MIN], "ctx.now() in onTimer is the deadline");
  const alerts = h.log.all(h.topics.alerts);
  assert.equal(alerts.length, 1);
  assert.equal(alerts[0].key, "a");
});

Deno.test("a cancel one second before the deadline wins; a message one second after comes after the firing", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  h.send("a", { at: T0 + 30 * MIN - 1000, cancel: true });
  h.send("b", { at: T0, remind: 30 * MIN });
  h.send("b", { at: T0 + 30 * MIN + 1000, cancel: true }); // too late: fired first
  h.send("z", { at: T0 + 2 * 60 * MIN });
  await settle(h);
  await h.stop();
  assert.deepEqual((await stored(h, "a"))?.fired, []);
  assert.deepEqual((await stored(h, "b"))?.fired, [T0 + 30 * MIN]);
});

Deno.test("an idle partition's clock follows wall time less the grace, so timers fire with no further event", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  await settle(h);
  h.wall = T0 + 30 * MIN; // deadline reached on the wall, but grace not yet passed
  await h.runtime.housekeep();
  assert.deepEqual((await stored(h, "a"))?.fired, []);
  h.wall = T0 + 30 * MIN + 10_000; // the clock is at the deadline: a timer fires once the clock passes it
  await h.runtime.housekeep();
  assert.deepEqual((await stored(h, "a"))?.fired, []);
  h.wall = T0 + 30 * MIN + 10_001;
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual((await stored(h, "a"))?.fired, [T0 + 30 * MIN]);
});

Deno.test("an idle partition's clock waits for records in the log not handed to it yet (Kafka: a transaction still open)", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  await settle(h);
  // The cancel is in the log, but the consumer does not hand it over: as a read_committed consumer is handed nothing of
  // a transaction still open (nor anything after it) until it commits.
  const tp = { topic: h.topics.events, partition: 0 };
  h.consumer.pause([tp]);
  h.send("a", { at: T0 + MIN, cancel: true });
  h.wall = T0 + 40 * MIN; // the wall is far past the deadline, and the partition has been idle for ten minutes
  await h.runtime.housekeep();
  assert.deepEqual((await stored(h, "a"))?.fired, [], "the clock did not follow the wall past the cancel");
  h.consumer.resume([tp]); // committed: the cancel is handed over, and comes before the deadline
  await settle(h);
  h.wall = T0 + 60 * MIN;
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual((await stored(h, "a"))?.fired, []);
  assert.equal((await stored(h, "a"))?.seen, 2);
});

Deno.test("timers are durable: a new owner after a crash fires a timer set before it, exactly once", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  await settle(h);
  await h.crash();
  h.send("b", { at: T0 + 40 * MIN });
  await h.start("another-instance");
  await settle(h);
  await h.stop();
  assert.deepEqual((await stored(h, "a"))?.fired, [T0 + 30 * MIN]);
  assert.equal(h.log.all(h.topics.alerts).length, 1);
});

Deno.test("after partitions are added, a moved key's pending timer is its new partition's: cancelled there, fired there once", async () => {
  // d moves to partition 2, which gets its cancel; a to partition 1, which never gets a record.
  const [cancelled, kept] = ["d", "a"];
  assert.deepEqual([partitionForKey(cancelled, 3), partitionForKey(kept, 3)], [2, 1]);
  const before = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 10_000 });
  before.wall = T0;
  await before.start();
  before.send(cancelled, { at: T0, remind: 30 * MIN });
  before.send(kept, { at: T0, remind: 30 * MIN });
  await settle(before);
  await before.stop();
  // Partitions added to the topic, and the engine restarted (README): the rows still name partition 0.
  const after = new Harness(reminderLogic, 3, 1_000, { idleClockMs: 10_000, store: before.store });
  after.wall = T0 + MIN;
  await after.start();
  after.send(cancelled, { at: T0 + MIN, cancel: true });
  await settle(after);
  after.wall = T0 + 40 * MIN; // every partition idle past the deadline
  await after.runtime.housekeep();
  await after.runtime.housekeep();
  await after.stop();
  assert.deepEqual((await stored(after, cancelled))?.fired, [], "the cancel on its new partition cancelled it");
  assert.deepEqual((await stored(after, kept))?.fired, [T0 + 30 * MIN], "fired by an idle partition without records");
  assert.deepEqual(after.log.all(after.topics.alerts).map((r) => r.key), [kept]);
  assert.equal(after.store.rows.get(`reminder/${kept}`)?.partition, 1, "fired by its new partition");
});

/** Records, for each read of pending timers, the partition it asked for and the keys it got. */
class TimerReadsStore extends MemoryCheckpointStore {
  readonly reads: { partition?: number; keys: string[] }[] = [];

  override async loadTimers(
    kind: string,
    partition?: number,
    partitions?: number,
  ): Promise<Map<string, Record<string, number>>> {
    const timers = await super.loadTimers(kind, partition, partitions);
    this.reads.push({ partition, keys: [...timers.keys()] });
    return timers;
  }
}

Deno.test("a claim reads the pending timers of its own partition's keys, not every partition's", async () => {
  // A claim used to read every partition's timers and drop the other partitions' keys itself: with 100,000 users
  // waiting on a timer over 12 partitions, 100,000 rows for each partition claimed (docs/performance.md).
  const keys = ["a", "b", "c", "d", "e", "f"]; // over partitions 1, 2, 1, 2, 2, 0 of 3
  const store = new TimerReadsStore();
  const h = new Harness(reminderLogic, 3, 1_000, { idleClockMs: 3_600_000, store });
  h.wall = T0;
  await h.start();
  for (const key of keys) h.send(key, { at: T0, remind: 30 * MIN });
  await settle(h);
  await h.crash();
  store.reads.length = 0;
  await h.start("another-instance"); // claims the three partitions again, and reads their timers
  h.send("f", { at: T0 + 40 * MIN }); // partition 0's clock passes the deadline: its timer fires
  await settle(h);
  await h.stop();
  assert.deepEqual(store.reads.map((r) => r.partition).sort(), [0, 1, 2], "one read per claim, naming its partition");
  for (const { partition, keys } of store.reads) {
    assert.deepEqual(keys.filter((key) => partitionForKey(key, 3) !== partition), [], `partition ${partition}'s read`);
  }
  assert.equal(store.reads.flatMap((r) => r.keys).length, keys.length, "every pending timer read once");
  assert.deepEqual((await stored(h, "f"))?.fired, [T0 + 30 * MIN], "fired by its partition");
  assert.deepEqual((await stored(h, "a"))?.fired, [], "the other partitions' clocks stayed before the deadline");
});

Deno.test("a replay after a crash re-produces identical output ids", async () => {
  // Housekeeping (checkpoints) only when the test calls it.
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 3_600_000, checkpointIntervalMs: 3_600_000 });
  const handled = (key: string) => until(() => h.runtime.lookup("reminder", key) !== undefined, `${key} handled`);
  const alerts = () => h.log.all(h.topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: MIN });
  await handled("a");
  await h.runtime.housekeep(); // checkpoint with the timer armed
  // b moves the clock past a's deadline: the reminder fires. Its alert is published, but the checkpoint fails.
  h.store.failCommitWhen = (write) => write.upserts.length > 0;
  h.send("b", { at: T0 + 2 * MIN });
  await handled("b");
  await h.runtime.housekeep();
  const published = alerts();
  assert.equal(published.length, 1, "the alert went out before the failed commit");
  await h.crash();
  h.store.failCommitWhen = null;
  await h.start("another-instance"); // replays b from the checkpoint: the timer fires again
  await handled("b");
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual(alerts(), [published[0], published[0]], "published again by the replay, byte for byte");
  assert.equal(h.store.alerts.size, 1, "the alerts table holds it once");
  assert.deepEqual((await stored(h, "a"))?.fired, [T0 + MIN]);
});

Deno.test("an idle clock advance is checkpointed before a timer fires from it: a replay fires it at the same place", async () => {
  // The reminder's alert carries how many messages the actor had seen when it fired.
  const logic: ActorLogic<Reminders, ReminderMessage> = {
    ...reminderLogic,
    onTimer: (state, _name, ctx) => {
      emitTestAlert(ctx, "reminder", state.key, { seen: state.seen });
      return { ...state, fired: [...state.fired, ctx.now()] };
    },
  };
  const h = new Harness(logic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  await settle(h);
  // The wall passes the deadline: the idle partition's clock follows it and the reminder fires. Its
  // alert is published, but no checkpoint holding a state lands before the process dies.
  h.store.failCommitWhen = (write) => write.upserts.length > 0;
  h.wall = T0 + 30 * MIN + 10_001;
  await h.runtime.housekeep();
  const published = h.log.all(h.topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  assert.equal(published.length >= 1, true, "the alert went out before the failed commit");
  await h.crash();
  h.store.failCommitWhen = null;
  // A late event for the same actor (event time before the deadline), then a new owner.
  h.send("a", { at: T0 + MIN });
  await h.start("another-instance");
  await settle(h);
  h.wall += 10_000; // the partition idles again: anything still due fires
  await h.runtime.housekeep();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  assert.deepEqual([...new Set(alerts)], [published[0]], "the new owner re-published the same alert, byte for byte");
  assert.deepEqual(await stored(h, "a"), { key: "a", fired: [T0 + 30 * MIN], seen: 2 });
});

/**
 * An idle advance of the clock to `wall` − 10 s, then a late record handled at it whose checkpoint does not land, a
 * crash and another owner: what each published on `alerts` (every message raises an alert stamped with ctx.now()).
 */
async function replayAfterIdleAdvance(
  wall: number,
  lateAt: number,
): Promise<{ published: string[]; alerts: string[] }> {
  const logic: ActorLogic<Reminders, ReminderMessage> = {
    ...reminderLogic,
    handle: (state, _m, ctx) => {
      emitTestAlert(ctx, "echo", state.key);
      return { ...state, seen: state.seen + 1 };
    },
  };
  const h = new Harness(logic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0 });
  await settle(h);
  h.wall = wall; // idle: the clock follows the wall, with no timer to fire
  await h.runtime.housekeep();
  // A late event is handled at the advanced clock and its alert published; its checkpoint does not land.
  h.store.failCommitWhen = (write) => write.upserts.length > 0;
  h.send("b", { at: lateAt });
  const deadline = Date.now() + 5_000;
  while (h.log.all(h.topics.alerts).length < 2 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const published = h.log.all(h.topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  assert.equal(published.length, 2, "b's alert went out before the failed commit");
  await h.crash();
  h.store.failCommitWhen = null;
  await h.start("another-instance");
  await settle(h);
  await h.stop();
  return { published, alerts: h.log.all(h.topics.alerts).map((r) => new TextDecoder().decode(r.value!)) };
}

Deno.test("an idle clock advance is checkpointed before a record is handled at it: a replay sees the same ctx.now()", async () => {
  const { published, alerts } = await replayAfterIdleAdvance(T0 + 60 * MIN, T0 + MIN);
  assert.deepEqual([...new Set(alerts)], published, "the new owner re-published b's alert byte for byte");
  assert.match(published[1], /"occurredAt":"2026-01-01T10:59:50.000Z"/);
});

Deno.test("an idle clock advance within the minute (no watermark to publish) is checkpointed before a record is handled at it", async () => {
  // As above, but the advance stays within the minute of the last watermark (to T0 + 30 s): the periodic checkpoint
  // has nothing of its own to write, so only the checkpoint before the batch makes the advance durable.
  const { published, alerts } = await replayAfterIdleAdvance(T0 + 40_000, T0 + 1_000);
  assert.match(published[1], /"occurredAt":"2026-01-01T10:00:30.000Z"/);
  assert.deepEqual([...new Set(alerts)], published, "the new owner re-published b's alert byte for byte");
});

/** A store whose commits wait on a gate while it is set (a slow database). */
class SlowStore extends MemoryCheckpointStore {
  gate: PromiseWithResolvers<void> | null = null;
  waiting = false;
  override async commit(w: CheckpointWrite): Promise<CommitResult> {
    if (this.gate) {
      this.waiting = true;
      await this.gate.promise;
      this.waiting = false;
    }
    return super.commit(w);
  }
}

Deno.test("a partition stuck in a slow checkpoint is not idle: a cancel already in the log still comes before the deadline", async () => {
  const store = new SlowStore();
  // Idle grace 10 s (the default); a checkpoint after every batch; housekeeping when the test runs it.
  const h = new Harness(reminderLogic, 1, 1, { idleClockMs: 10_000, checkpointIntervalMs: 3_600_000, store });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 1 * MIN }); // deadline T0 + 60 s
  await h.drained();

  store.gate = Promise.withResolvers<void>();
  h.wall = T0 + 1_000;
  h.send("b", { at: T0 + 1_000 }); // its checkpoint stalls in the database
  while (!store.waiting) await pause();

  h.wall = T0 + 30_000;
  h.send("a", { at: T0 + 30_000, cancel: true }); // appended on time, before the deadline
  h.wall = T0 + 2 * MIN; // the database answers two minutes later
  const round = h.runtime.housekeep(); // the periodic round was due meanwhile: its tick queues behind the batch
  await pause();
  store.gate.resolve();
  store.gate = null;
  await round;
  await h.drained();
  await h.runtime.housekeep();
  await h.stop();

  const a = (await h.store.read("reminder", "a"))?.state as Reminders;
  assert.equal(a.seen, 2);
  // In partition order (the fold), the cancel at T0+30 s comes before the deadline T0+60 s: nothing fires.
  // Measured from the last record alone, the two stuck minutes looked idle: the clock jumped to the
  // wall less the grace and the timer fired ahead of the cancel.
  assert.deepEqual(a.fired, [], "the timer fired ahead of the cancel already in the log");
  assert.equal(h.log.all(h.topics.alerts).length, 0, "a false alert was published");
});

Deno.test("an actor past its TTL with changes not checkpointed yet expires only after they are", async () => {
  const DAY = 86_400_000;
  let gate: PromiseWithResolvers<void> | null = null;
  let inTimer = false;
  // A reminder whose timer handler awaits (handlers may), which holds the tick while a message queues.
  const logic: ActorLogic<Reminders, ReminderMessage> = {
    ...reminderLogic,
    onTimer: async (state, _name, ctx) => {
      inTimer = true;
      await gate?.promise;
      emitTestAlert(ctx, "reminder", state.key);
      return { ...state, fired: [...state.fired, ctx.now()] };
    },
  };
  const h = new Harness(logic, 1, 1_000, { stateTtlMs: 90 * DAY, checkpointIntervalMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 365 * DAY });
  while (!h.runtime.lookup("reminder", "a")) await pause();
  await h.runtime.housekeep(); // stored: a has seen 1 message, its timer is armed

  h.wall = T0 + 366 * DAY; // the idle clock passes the deadline, and a is past its TTL
  gate = Promise.withResolvers<void>();
  const round = h.runtime.housekeep(); // the tick fires a's timer, then expires what is past the TTL
  while (!inTimer) await pause();
  h.send("a", { at: T0 + 366 * DAY }); // the user comes back; the batch queues behind the tick
  await pause();
  gate.resolve();
  gate = null;
  await round;
  await settle(h);
  await h.stop();
  // Expiring the fired (dirty) actor dropped the firing, and the message then reloaded the stale row.
  assert.deepEqual(await stored(h, "a"), { key: "a", fired: [T0 + 365 * DAY], seen: 2 });
  assert.equal(h.log.all(h.topics.alerts).length, 1);
});

Deno.test("idle and least-recently-used actors are passivated once checkpointed, and reload with their state", async () => {
  const h = new Harness(reminderLogic, 2, 1_000, { maxActors: 5, actorIdleMs: 60_000, idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  for (let i = 0; i < 12; i++) h.send(`k${i}`, { at: T0 });
  await settle(h);
  await h.runtime.housekeep();
  assert.ok(h.runtime.actorCount <= 5, `at most MAX_ACTORS in memory, got ${h.runtime.actorCount}`);
  h.wall += 61_000;
  await h.runtime.housekeep();
  assert.equal(h.runtime.actorCount, 0, "idle actors are passivated");
  const loadsBefore = h.store.loads;
  for (let i = 0; i < 12; i++) h.send(`k${i}`, { at: T0 + 1000 });
  await settle(h);
  await h.stop();
  for (let i = 0; i < 12; i++) assert.equal((await stored(h, `k${i}`))?.seen, 2, `k${i} reloaded its state`);
  assert.ok(h.store.loads - loadsBefore <= 2, "activation loads all new keys of a batch in one query per partition");
});

Deno.test("an actor whose changes could not be checkpointed yet is not passivated, however idle", async () => {
  const announcer: ActorLogic<Reminders, ReminderMessage> = {
    ...reminderLogic,
    handle: (state, m, ctx) => {
      emitTestAlert(ctx, "seen", state.key, { seen: state.seen + 1 });
      return reminderLogic.handle(state, m, ctx);
    },
  };
  const h = new Harness(announcer, 1, 1_000, { actorIdleMs: 60_000, idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("k", { at: T0 });
  await settle(h);
  h.send("k", { at: T0 + 1_000 });
  while ((h.runtime.lookup("reminder", "k")?.state as Reminders).seen < 2) await pause();
  h.log.failAppends = new Error("log down"); // the checkpoint cannot publish k's second alert, so it cannot commit
  h.wall += 61_000;
  await h.runtime.housekeep(); // the periodic checkpoint fails; k is idle but dirty
  assert.equal(h.runtime.actorCount, 1, "the dirty actor stays in memory");
  h.log.failAppends = null;
  await settle(h);
  await h.stop();
  assert.equal((await stored(h, "k"))?.seen, 2, "the change made while the log was down is checkpointed");
  assert.equal(h.log.all(h.topics.alerts).length, 2);
});

Deno.test("idle actors are packed once checkpointed; their next message or timer unpacks them without a load", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, {
    actorPackMs: 30_000,
    actorIdleMs: 3_600_000,
    idleClockMs: 3_600_000,
  });
  h.wall = T0;
  await h.start();
  h.send("k0", { at: T0, remind: 10 * MIN });
  for (let i = 1; i < 6; i++) h.send(`k${i}`, { at: T0 });
  await settle(h);
  assert.equal(h.runtime.packedCount, 0, "actors used within ACTOR_PACK_MS stay live");
  h.wall += 31_000;
  h.send("k5", { at: T0 + 1_000 });
  await settle(h);
  assert.equal(h.runtime.packedCount, 5, "every idle actor is packed, the one just used is not");
  assert.equal(h.runtime.actorCount, 6, "packed actors stay in memory");
  assert.deepEqual(h.runtime.lookup("reminder", "k1")?.state, { key: "k1", fired: [], seen: 1 });
  const loads = h.store.loads;
  h.send("k1", { at: T0 + 2_000 });
  h.send("k2", { at: T0 + 11 * MIN }); // moves the clock past k0's deadline: k0 is unpacked to fire it
  await settle(h);
  assert.equal(h.store.loads, loads, "unpacking reads nothing from the store");
  assert.equal(h.runtime.packedCount, 2, "k3 and k4 are still packed");
  await h.stop();
  assert.deepEqual(await stored(h, "k0"), { key: "k0", fired: [T0 + 10 * MIN], seen: 1 });
  assert.deepEqual(await stored(h, "k1"), { key: "k1", fired: [], seen: 2 });
  assert.deepEqual(await stored(h, "k2"), { key: "k2", fired: [], seen: 2 });
  assert.deepEqual(await stored(h, "k3"), { key: "k3", fired: [], seen: 1 });
});

Deno.test("actors inactive for longer than the TTL are deleted from memory and from the store", async () => {
  const DAY = 86_400_000;
  const h = new Harness(reminderLogic, 1, 1_000, { stateTtlMs: 90 * DAY, idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("old", { at: T0 });
  h.send("armed", { at: T0, remind: 365 * DAY });
  await settle(h);
  h.wall = T0 + 10 * MIN;
  h.send("sleeping", { at: T0 + 10 * MIN });
  await settle(h);
  h.wall = T0 + 20 * MIN;
  await h.runtime.housekeep(); // passivates everything (idle > 5 min): "sleeping" now lives only in the store
  assert.equal(h.runtime.actorCount, 0);
  h.wall = T0 + 91 * DAY;
  h.send("new", { at: T0 + 91 * DAY });
  await settle(h);
  await h.runtime.housekeep();
  await h.stop();
  assert.equal(await stored(h, "old"), undefined, "expired");
  assert.equal(await stored(h, "sleeping"), undefined, "expired in the store while passivated");
  assert.equal((await stored(h, "new"))?.seen, 1);
  assert.equal((await stored(h, "armed"))?.seen, 1, "an actor with a pending timer is kept");
});

Deno.test("an actor in memory past its TTL with a pending timer is kept, and its timer with it", async () => {
  const DAY = 86_400_000;
  // Nothing is passivated: the expiry in memory is what decides.
  const h = new Harness(reminderLogic, 1, 1_000, {
    stateTtlMs: 90 * DAY,
    actorIdleMs: 1_000 * DAY,
    idleClockMs: 3_600_000,
  });
  h.wall = T0;
  await h.start();
  h.send("old", { at: T0 });
  h.send("armed", { at: T0, remind: 365 * DAY });
  await settle(h);
  h.wall = T0 + 91 * DAY;
  h.send("new", { at: T0 + 91 * DAY });
  await settle(h);
  await h.runtime.housekeep();
  assert.equal(h.runtime.lookup("reminder", "old"), undefined, "old expired in memory");
  assert.equal(await stored(h, "old"), undefined, "and in the store");
  assert.deepEqual(h.runtime.lookup("reminder", "armed")?.state, { key: "armed", fired: [], seen: 1 });
  assert.deepEqual(h.store.rows.get("reminder/armed")?.timers, { remind: T0 + 365 * DAY }, "its timer is kept");
  await h.stop();
  assert.equal((await stored(h, "armed"))?.seen, 1);
});

/** An actor that records `ctx.now()` at each message; a message with `fail` throws a transient error while `failures` last. */
function clockLogic(counters: { handled: number; failures: number }): ActorLogic<
  { key: string; nows: readonly number[] },
  { at: number; fail?: boolean }
> {
  return {
    kind: "clock",
    initial: (key) => ({ key, nows: [] }),
    decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
    eventTime: (m) => m.at,
    handle: (state, m, ctx) => {
      if (m.fail && counters.failures-- > 0) throw new Error("database hiccup");
      counters.handled++;
      return { ...state, nows: [...state.nows, ctx.now()] };
    },
    persist: (s) => s,
    restore: (d) => d as { key: string; nows: readonly number[] },
  };
}

async function handledAtLeast(counters: { handled: number }, n: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (counters.handled < n) {
    if (Date.now() > deadline) throw new Error(`only ${counters.handled} of ${n} messages handled`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function nowsOf(h: Harness, key: string): Promise<readonly number[] | undefined> {
  return ((await h.store.read("clock", key))?.state as { nows: readonly number[] } | undefined)?.nows;
}

Deno.test("the partition clock is checkpointed: after a crash a late event sees the clock the partition had reached", async () => {
  const counters = { handled: 0, failures: 0 };
  // Housekeeping (checkpoints) only when the test calls it.
  const h = new Harness(clockLogic(counters), 1, 1_000, { idleClockMs: 3_600_000, checkpointIntervalMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0 + 10 * MIN });
  await handledAtLeast(counters, 1);
  await h.runtime.housekeep();
  await h.crash();
  h.send("late", { at: T0 }); // ten minutes older than what the partition had seen
  await h.start("another-instance");
  await handledAtLeast(counters, 2);
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual(await nowsOf(h, "late"), [T0 + 10 * MIN], "ctx.now() continues from the checkpointed clock");
});

Deno.test("a rewind to the checkpoint also rewinds the clock, so replayed messages see the clock they first saw", async () => {
  const counters = { handled: 0, failures: 1 };
  const h = new Harness(clockLogic(counters), 1, 1_000, { idleClockMs: 3_600_000, checkpointIntervalMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0 });
  await handledAtLeast(counters, 1);
  await h.runtime.housekeep(); // checkpoint: clock T0
  h.send("b", { at: T0 + 5 * MIN });
  h.send("c", { at: T0 + 20 * MIN });
  await handledAtLeast(counters, 3); // the clock is at T0 + 20 min, not checkpointed
  h.send("d", { at: T0 + 1 * MIN, fail: true }); // fails once: the partition rewinds to its checkpoint
  await handledAtLeast(counters, 6); // b and c again, then d
  await h.runtime.housekeep();
  await h.stop();
  assert.equal(counters.failures, -1, "the failure happened");
  assert.deepEqual(await nowsOf(h, "b"), [T0 + 5 * MIN], "b is handled again at its own time, not the later clock");
  assert.deepEqual(await nowsOf(h, "c"), [T0 + 20 * MIN]);
  assert.deepEqual(await nowsOf(h, "d"), [T0 + 20 * MIN]);
});

Deno.test("a rewind during a database outage reloads the timers before handling anything, so a timer that had fired fires again", async () => {
  const store = new OutageStore();
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 3_600_000, checkpointIntervalMs: 3_600_000, store });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 10 * MIN });
  while (!h.runtime.lookup("reminder", "a")) await new Promise((resolve) => setTimeout(resolve, 5));
  await h.runtime.housekeep(); // checkpoint: a's timer is stored
  h.send("b", { at: T0 + 15 * MIN }); // moves the clock past a's deadline: the timer fires, not yet checkpointed
  while (!h.runtime.lookup("reminder", "b")) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual((h.runtime.lookup("reminder", "a")?.state as Reminders).fired, [T0 + 10 * MIN]);
  h.store.failWith = new Error("database down"); // c cannot be loaded: the partition rewinds, and cannot reload timers
  h.send("c", { at: T0 + 16 * MIN });
  await until(() => store.refused("load") > 0, "loading c met the outage");
  h.store.failWith = null; // back: the replay of b and c must fire a's timer again
  while (!h.runtime.lookup("reminder", "c")) await new Promise((resolve) => setTimeout(resolve, 5));
  await h.runtime.housekeep();
  await h.stop();
  assert.deepEqual((await stored(h, "a"))?.fired, [T0 + 10 * MIN], "the timer fired in the replay too");
  assert.equal((await stored(h, "c"))?.seen, 1);
});

/** An actor that arms the named timers one minute after the message and records the order they fire in. */
const pairLogic: ActorLogic<{ key: string; fired: readonly string[] }, { at: number; timers?: string[] }> = {
  kind: "pair",
  initial: (key) => ({ key, fired: [] }),
  decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
  eventTime: (m) => m.at,
  handle: (state, m, ctx) => {
    for (const name of m.timers ?? []) ctx.setTimer(name, m.at + MIN);
    return state;
  },
  onTimer: (state, name) => ({ ...state, fired: [...state.fired, name] }),
  persist: (s) => s,
  restore: (d) => d as { key: string; fired: readonly string[] },
};

/** Returns each key's timers in reverse order, as a store that does not keep insertion order may. */
class ReorderingStore extends MemoryCheckpointStore {
  override async loadTimers(
    kind: string,
    partition?: number,
    partitions?: number,
  ): Promise<Map<string, Record<string, number>>> {
    const timers = await super.loadTimers(kind, partition, partitions);
    return new Map([...timers].map(([key, t]) => [key, Object.fromEntries(Object.entries(t).reverse())]));
  }
}

Deno.test("timers of one key due at the same time fire in name order, with or without a restart, as in the fold", async () => {
  for (const restart of [false, true]) {
    const h = new Harness(pairLogic, 1, 1_000, { idleClockMs: 3_600_000, store: new ReorderingStore() });
    h.wall = T0;
    await h.start();
    h.send("k", { at: T0, timers: ["zz", "a", "m"] });
    await settle(h);
    if (restart) {
      await h.crash();
      await h.start("another-instance");
    }
    h.send("other", { at: T0 + 2 * MIN });
    await settle(h);
    await h.stop();
    const fired = ((await h.store.read("pair", "k"))?.state as { fired: string[] }).fired;
    assert.deepEqual(fired, ["a", "m", "zz"], restart ? "after a restart" : "without a restart");
    const fold = await replayPartition(pairLogic, h.log.read({ topic: h.topics.events, partition: 0 }, 0));
    assert.deepEqual((fold.states.get("k") as { fired: string[] }).fired, fired, "the reference fold agrees");
  }
});

Deno.test("the reference replay cuts a timer storm off as the runtime does, at MAX_FIRINGS_PER_KEY firings per call", async () => {
  // A handler that re-arms its timer at the deadline it fires at would fire for ever at one clock.
  const stormLogic: ActorLogic<{ fired: number }, { at: number }> = {
    kind: "storm",
    initial: () => ({ fired: 0 }),
    decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
    eventTime: (m) => m.at,
    handle: (state, m, ctx) => {
      ctx.setTimer("again", m.at - 1);
      return state;
    },
    onTimer: (state, name, ctx) => {
      ctx.setTimer(name, ctx.now());
      return { fired: state.fired + 1 };
    },
    persist: (s) => s,
    restore: (d) => d as { fired: number },
  };
  const record = (offset: number, key: string) => ({
    topic: "events",
    partition: 0,
    offset,
    key,
    value: new TextEncoder().encode(JSON.stringify({ at: T0 })),
    headers: {},
    timestamp: 0,
  });
  const one = await replayPartition(stormLogic, [record(0, "a")]);
  assert.deepEqual(one.states.get("a"), { fired: MAX_FIRINGS_PER_KEY });
  // A later record of the key fires its due timers first, then the partition's: one more cut-off call each.
  const two = await replayPartition(stormLogic, [record(0, "a"), record(1, "a")]);
  assert.deepEqual(two.states.get("a"), { fired: 3 * MAX_FIRINGS_PER_KEY });
  // The runtime itself: the record's step fires MAX_FIRINGS_PER_KEY, and its checkpoint holds that many.
  const h = new Harness(stormLogic, 1, 1, { checkpointIntervalMs: 1e9, idleClockMs: 1e12 });
  await h.start();
  h.send("a", { at: T0 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.store.read("storm", "a"))?.state, { fired: MAX_FIRINGS_PER_KEY });
});

Deno.test("a backlog older than the TTL, worked through after downtime, is judged by its own times: no actor resets between its records", async () => {
  const DAY = 86_400_000;
  const h = new Harness(recorderLogic(), 1, 1_000, { stateTtlMs: DAY, checkpointIntervalMs: 3_600_000 });
  await h.log.ensureTopics(Object.values(h.topics).map((topic) => ({ topic, partitions: 1 })));
  // Appended while the engine was down, a minute apart; it comes back two days later.
  for (let n = 0; n < 3; n++) {
    h.wall = T0 + n * MIN;
    h.send("a", { n });
  }
  h.wall = T0 + 2 * DAY;
  await h.start();
  while (!h.runtime.lookup("recorder", "a")) await pause();
  await h.runtime.housekeep(); // checkpoint and expiry sweep: by the wall, a looked two days inactive
  await h.runtime.housekeep();
  assert.deepEqual((await h.stored("a"))?.values, [0, 1, 2], "deleted in the very checkpoint that stored it");
  h.wall = T0 + 3 * MIN;
  h.send("a", { n: 3 }); // more of the backlog
  h.wall = T0 + 2 * DAY;
  h.send("a", { n: 4 }); // and a live record
  const handled = () => (h.runtime.lookup("recorder", "a")?.state as { values?: number[] } | undefined)?.values ?? [];
  while (!handled().includes(4)) await pause();
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [0, 1, 2, 3, 4], "a never went a day without a record");
});

Deno.test("an actor whose changes could not be checkpointed yet is not packed, however idle: the checkpoint writes its state", async () => {
  const announcer: ActorLogic<Reminders, ReminderMessage> = {
    ...reminderLogic,
    handle: (state, m, ctx) => {
      emitTestAlert(ctx, "seen", state.key, { seen: state.seen + 1 });
      return reminderLogic.handle(state, m, ctx);
    },
  };
  const h = new Harness(announcer, 1, 1_000, { actorPackMs: 30_000, actorIdleMs: 3_600_000, idleClockMs: 3_600_000 });
  h.wall = T0;
  await h.start();
  h.send("k", { at: T0 });
  await settle(h);
  h.send("k", { at: T0 + 1_000 });
  while ((h.runtime.lookup("reminder", "k")?.state as Reminders).seen < 2) await pause();
  h.log.failAppends = new Error("log down"); // the checkpoint cannot publish k's second alert, so it cannot commit
  h.wall += 31_000;
  await h.runtime.housekeep(); // the periodic checkpoint fails; k is idle past ACTOR_PACK_MS but dirty
  assert.equal(h.runtime.packedCount, 0, "the dirty actor stays live");
  h.log.failAppends = null;
  await settle(h);
  await h.stop();
  assert.deepEqual(
    await stored(h, "k"),
    { key: "k", fired: [], seen: 2 },
    "the change made while the log was down is checkpointed",
  );
});

Deno.test("a record just handled keeps its partition from being idle: the next round does not move the clock to the wall", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = T0;
  await h.start();
  h.wall = T0 + 60 * MIN; // an hour without records; the partition never had one, so it keeps no clock
  await h.runtime.housekeep();
  h.send("k", { at: T0, remind: 30 * MIN }); // one record, its batch of one: records are flowing again
  await settle(h); // the round right after it: 10 s of wall time have not passed without records
  h.send("k", { at: T0 + 29 * MIN, cancel: true }); // cancelled before the deadline, by event time
  await settle(h);
  await h.stop();
  assert.deepEqual(await stored(h, "k"), { key: "k", fired: [], seen: 2 }, "the reminder was cancelled in time");
  assert.equal(h.log.all(h.topics.alerts).length, 0);
});

Deno.test("nothing is handled while a rewind's re-read of the timers keeps failing: a timer that had fired fires again in the replay", async () => {
  let failing = 0; // loadTimers calls still to refuse
  class FlakyTimersStore extends MemoryCheckpointStore {
    override loadTimers(
      kind: string,
      partition?: number,
      partitions?: number,
    ): Promise<Map<string, Record<string, number>>> {
      if (failing > 0) {
        failing--;
        return Promise.reject(new Error("database down"));
      }
      return super.loadTimers(kind, partition, partitions);
    }
  }
  let failBoom = false;
  const logic: ActorLogic<Reminders, ReminderMessage & { boom?: boolean }> = {
    ...reminderLogic,
    handle: (state, m, ctx) => {
      if (m.boom && failBoom) {
        failBoom = false;
        // The outage: this rewind's re-read fails, and so do the next batch's and its own rewind's.
        failing = 3;
        throw new Error("transient");
      }
      return reminderLogic.handle(state, m, ctx);
    },
    onTimer: (state, _name, ctx) => {
      emitTestAlert(ctx, "reminder", state.key, { seenBefore: state.seen });
      return { ...state, fired: [...state.fired, ctx.now()] };
    },
  };
  const h: Harness = new Harness(logic, 1, 1_000, {
    store: new FlakyTimersStore((): number => h.wall),
    idleClockMs: 3_600_000,
    checkpointIntervalMs: 3_600_000, // no round of its own: the batches meet the outage, not a tick
  });
  /** Rounds driven by hand until every record is checkpointed. */
  const flush = async () => {
    for (;;) {
      await h.runtime.housekeep();
      if (await h.drained(20).then(() => true, () => false)) return;
    }
  };
  h.wall = T0;
  await h.start();
  h.send("k", { at: T0, remind: 10 * MIN });
  await flush();
  failBoom = true;
  h.send("k", { at: T0 + 11 * MIN }); // fires k's reminder first, then fails with "boom": all of it is rewound
  h.send("b", { at: T0 + 11 * MIN, boom: true });
  while (failing > 0 || failBoom) await pause();
  await flush();
  await h.stop();
  assert.deepEqual(await stored(h, "k"), { key: "k", fired: [T0 + 10 * MIN], seen: 2 }, "the reminder fired once");
  const alerts = h.log.all(h.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)).details);
  assert.deepEqual(alerts, [{ seenBefore: 1 }], "it fired once, before k's later message, as without the outage");
});

Deno.test("an idle clock advance is checkpointed once: the batches after it wait for the next checkpoint as usual", async () => {
  const h = new Harness(reminderLogic, 1, 1_000, { idleClockMs: 10_000, checkpointIntervalMs: 1e9 });
  h.wall = T0;
  await h.start();
  h.send("a", { at: T0, remind: 30 * MIN });
  await until(() => h.runtime.lookup("reminder", "a") !== undefined, "a handled");
  h.wall = T0 + 40 * MIN;
  await h.runtime.housekeep(); // idle: the clock follows the wall, is checkpointed, and a's reminder fires
  assert.deepEqual(await stored(h, "a"), { key: "a", fired: [T0 + 30 * MIN], seen: 1 });
  const commits = h.store.commits;
  for (let i = 1; i <= 5; i++) {
    h.send("b", { at: T0 + 40 * MIN });
    await until(
      () => (h.runtime.lookup("reminder", "b")?.state as Reminders | undefined)?.seen === i,
      `b's record ${i}`,
    );
  }
  assert.equal(h.store.commits, commits, "no checkpoint before CHECKPOINT_INTERVAL_MS or the message count is due");
  await h.stop();
});
