import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import { emitTestAlert, Harness, recorderLogic, until } from "../helpers/runtime.ts";

/** A reminder actor that notes, at every firing, how many actors the instance holds in memory then. */
interface Reminded {
  readonly key: string;
  readonly fired: readonly number[];
}
type Remind = { at: number; remind?: number };

const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);
const MIN = 60_000;

function observingLogic(h: () => Harness, seen: number[]): ActorLogic<Reminded, Remind> {
  return {
    kind: "reminder",
    initial: (key) => ({ key, fired: [] }),
    decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
    eventTime: (m) => m.at,
    handle: (state, m, ctx) => {
      if (m.remind !== undefined) ctx.setTimer("remind", m.at + m.remind);
      return state;
    },
    onTimer: (state, _name, ctx) => {
      seen.push(h().runtime.actorCount);
      emitTestAlert(ctx, "reminder", state.key);
      return { ...state, fired: [...state.fired, ctx.now()] };
    },
    persist: (s) => s,
    restore: (d) => d as Reminded,
  };
}

/** Housekeeping rounds until every record of the log is handled and checkpointed. */
async function caughtUp(h: Harness): Promise<void> {
  const tp = { topic: h.topics.events, partition: 0 };
  for (let round = 0; round < 500; round++) {
    await h.runtime.housekeep();
    if ((h.store.partitions.get(`group/${tp.topic}:0`)?.nextOffset ?? 0) >= h.log.endOffset(tp)) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail("the partition did not catch up");
}

const KEYS = 200;
const MAX_ACTORS = 10;

/** 200 keys waiting on a timer due at T0 + 30 min, every actor but MAX_ACTORS passivated. */
async function waitingKeys(h: Harness): Promise<void> {
  h.wall = T0;
  await h.start();
  for (let i = 0; i < KEYS; i++) h.send(`k${i}`, { at: T0, remind: 30 * MIN });
  await caughtUp(h);
  assert.ok(h.runtime.actorCount <= MAX_ACTORS, `passivated down to MAX_ACTORS, got ${h.runtime.actorCount}`);
}

async function assertFiredOnce(h: Harness): Promise<void> {
  for (let i = 0; i < KEYS; i++) {
    const state = (await h.store.read("reminder", `k${i}`))?.state as Reminded | undefined;
    assert.deepEqual(state?.fired, [T0 + 30 * MIN], `k${i} fired once, at its deadline`);
  }
  const ids = h.log.all(h.topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  assert.equal(new Set(ids).size, KEYS, "one alert per key");
}

/** A one-partition harness bounded by MAX_ACTORS, recording in `seen` how many actors it held at each firing. */
function observedHarness(idleClockMs: number): { h: Harness; seen: number[] } {
  const seen: number[] = [];
  const h: Harness = new Harness(observingLogic(() => h, seen), 1, 1_000, {
    maxActors: MAX_ACTORS,
    actorIdleMs: 3_600_000,
    idleClockMs,
    checkpointIntervalMs: 3_600_000,
  });
  return { h, seen };
}

Deno.test("timers due at once on an idle advance load at most a slice of MAX_ACTORS actors at a time", async () => {
  const { h, seen } = observedHarness(10_000);
  await waitingKeys(h);
  h.wall = T0 + 31 * MIN; // idle: the clock follows the wall past every deadline at once
  await h.runtime.housekeep();
  assert.equal(seen.length, KEYS, "every timer fired in that round");
  const peak = Math.max(...seen);
  // Before: all 200 actors were loaded at once, and stayed until the round's checkpoint.
  assert.ok(peak <= 2 * MAX_ACTORS, `at most MAX_ACTORS plus a slice in memory while firing, got ${peak}`);
  await h.runtime.housekeep();
  assert.ok(h.runtime.actorCount <= MAX_ACTORS, `back to MAX_ACTORS, got ${h.runtime.actorCount}`);
  await h.stop();
  await assertFiredOnce(h);
});

Deno.test("timers due at once when a record moves the clock load at most a slice of MAX_ACTORS actors at a time", async () => {
  const { h, seen } = observedHarness(3_600_000);
  await waitingKeys(h);
  h.send("mover", { at: T0 + 31 * MIN }); // one record past every deadline
  await caughtUp(h);
  assert.equal(seen.length, KEYS, "every timer fired with that record's batch");
  const peak = Math.max(...seen);
  // Plus the record's own actor. Before: all 200 loaded at once, with the record's.
  assert.ok(peak <= 2 * MAX_ACTORS + 1, `at most MAX_ACTORS plus a slice in memory while firing, got ${peak}`);
  await h.stop();
  await assertFiredOnce(h);
});

Deno.test("a slice's checkpoint failing midway rewinds; the next round fires the rest, each timer once", async () => {
  const { h, seen } = observedHarness(10_000);
  await waitingKeys(h);
  let commits = 0;
  h.store.failCommitWhen = () => ++commits === 4; // the idle advance's, two slices', then the third slice's fails
  h.wall = T0 + 31 * MIN;
  await h.runtime.housekeep();
  assert.ok(seen.length < KEYS, "the round stopped at the failed slice");
  h.store.failCommitWhen = null;
  await caughtUp(h);
  await h.runtime.housekeep();
  assert.ok(Math.max(...seen) <= 2 * MAX_ACTORS, `at most MAX_ACTORS plus a slice, got ${Math.max(...seen)}`);
  await h.stop();
  await assertFiredOnce(h);
});

Deno.test("a backlog of new keys keeps at most MAX_ACTORS checkpointed actors between housekeeping rounds", async () => {
  let peak = 0;
  const h: Harness = new Harness(
    recorderLogic({ handle: () => void (peak = Math.max(peak, h.runtime.actorCount)) }),
    1,
    100, // checkpointed every 100 messages, at the end of a batch (of up to 50)
    { maxActors: MAX_ACTORS, actorIdleMs: 3_600_000, checkpointIntervalMs: 3_600_000 }, // no round meanwhile
  );
  await h.start();
  for (let i = 0; i < 2_000; i++) h.send(`new${i}`, { n: i });
  await h.drained();
  // Before: every one of the 2,000 stayed until the next round, however long CHECKPOINT_INTERVAL_MS.
  assert.ok(peak <= MAX_ACTORS + 100 + 50, `MAX_ACTORS plus the actors not checkpointed yet, got ${peak}`);
  await until(() => h.runtime.actorCount <= MAX_ACTORS, "MAX_ACTORS once checkpointed, before any round");
  await h.stop();
  for (const i of [0, 999, 1_999]) assert.deepEqual((await h.stored(`new${i}`))?.values, [i]);
});

Deno.test("timers due at once hold no more than MAX_ACTORS while checkpointed actors can make room for each slice", async () => {
  const idle = observedHarness(10_000);
  await waitingKeys(idle.h);
  assert.equal(idle.h.runtime.actorCount, MAX_ACTORS, "MAX_ACTORS checkpointed actors in memory before");
  idle.h.wall = T0 + 31 * MIN; // idle: the clock follows the wall past every deadline at once
  await idle.h.runtime.housekeep();
  assert.equal(idle.seen.length, KEYS);
  // Before: each slice was loaded beside the MAX_ACTORS checkpointed actors already in memory, twice MAX_ACTORS.
  assert.ok(Math.max(...idle.seen) <= MAX_ACTORS, `MAX_ACTORS at most while firing, got ${Math.max(...idle.seen)}`);
  await idle.h.stop();
  await assertFiredOnce(idle.h);

  const moved = observedHarness(3_600_000);
  await waitingKeys(moved.h);
  moved.h.send("mover", { at: T0 + 31 * MIN }); // one record past every deadline
  await caughtUp(moved.h);
  assert.equal(moved.seen.length, KEYS);
  // Plus the record's own actor, not checkpointed yet.
  assert.ok(Math.max(...moved.seen) <= MAX_ACTORS + 1, `MAX_ACTORS + 1 at most, got ${Math.max(...moved.seen)}`);
  await moved.h.stop();
  await assertFiredOnce(moved.h);
});

Deno.test("a timer slice makes room with checkpointed actors only: the moving record's actor, not checkpointed yet, stays and its timer is stored", async () => {
  const { h } = observedHarness(3_600_000);
  await waitingKeys(h);
  // One record past every deadline that arms a timer of its own: its actor is the only one not checkpointed when the
  // first slice makes room, and the most recently used (the room is made from the least recently used).
  h.send("mover", { at: T0 + 31 * MIN, remind: 60 * MIN });
  await caughtUp(h);
  await h.stop();
  await assertFiredOnce(h);
  // Passivated before its checkpoint, its row (and the timer it armed) would never be written.
  const mover = (await h.store.load("reminder", ["mover"])).get("mover");
  assert.deepEqual(mover?.timers, { remind: T0 + 91 * MIN }, "the record's actor and its timer are checkpointed");
});
