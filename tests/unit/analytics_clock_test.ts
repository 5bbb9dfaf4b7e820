/**
 * The analytics partition's idle clock, beside user partitions that have facts still to publish: two instances on
 * one in-memory log and store, as the engine wires them, one owning the analytics partition and the other the
 * `events` and `product-events` partitions.
 */
import assert from "node:assert/strict";
import type { StoredActor } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { consumedTopics, topicNames, topicSpecs } from "../../engine/config.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { LogConsumer, TopicPartition } from "../../engine/log.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { ActorRuntime } from "../../engine/runtime.ts";
import { createDomainLogics, logicsByTopic } from "../../actors/domain.ts";
import { sourceWatermark } from "../../engine/source_watermark.ts";
import { EventBuilder } from "../helpers/fold.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const PARTITIONS = 2;
const IDLE_MS = 10_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** How an instance of `analyticsWorld` is built; `manual`: housekeeping only when the test calls it. */
interface InstanceOptions {
  readonly manual: boolean;
  readonly maxBatch?: number;
  readonly checkpointMaxMessages?: number;
}

/**
 * Two `events` partitions on one in-memory log and `store`, at the wall time `wall` gives, with instances wired as
 * engine/engine.ts wires them, and what the tests read of them.
 */
async function analyticsWorld(store: MemoryCheckpointStore, wall: () => number) {
  const topics = topicNames({ TOPIC_PREFIX: "" });
  const log = new MemoryLog(wall);
  await log.ensureTopics(topicSpecs({ PARTITIONS }, topics));
  const logics = createDomainLogics();
  const counts = new Map(topicSpecs({ PARTITIONS }, topics).map((s) => [s.topic, s.partitions] as const));
  const instance = async (owner: string, consumed: readonly string[], options: InstanceOptions) => {
    const consumer = log.consumer({ maxBatch: options.maxBatch ?? 1_000 });
    const runtime = new ActorRuntime({
      store,
      producer: log.producer(),
      consumer,
      topics,
      groupId: "g",
      owner,
      logger: silentLogger,
      logics: logicsByTopic(topics, logics),
      partitionCounts: new Map(consumedTopics(topics).map((t) => [t, counts.get(t)!] as const)),
      bundledTopics: new Map([topics.productEvents, topics.analytics].map((t) => [t, counts.get(t)!] as const)),
      checkpointIntervalMs: options.manual ? 3_600_000 : 20,
      checkpointMaxMessages: options.checkpointMaxMessages ?? 10_000,
      idleClockMs: IDLE_MS,
      retryBackoffMs: { initial: 5, max: 20 },
      wallClock: wall,
    });
    if (!options.manual) runtime.start();
    await consumer.start(consumed, runtime);
    return {
      runtime,
      consumer,
      stop: async () => {
        await runtime.stopClaiming();
        await consumer.stop();
        await runtime.stop();
      },
    };
  };
  const builder = new EventBuilder(T0);
  const checkpointed = (topic: string, partition: number) =>
    store.partitions.get(`g/${topic}:${partition}`)?.nextOffset ?? 0;
  return {
    topics,
    log,
    instance,
    /** Users whose events go to `events` partition `partition`. */
    users: (partition: number) =>
      Array.from({ length: 200 }, (_, i) => `u${i}`).filter((u) => partitionForKey(u, PARTITIONS) === partition),
    /** Appends a page view of `user`, `second` seconds after T0. */
    view: (user: string, second: number) =>
      log.appendNow([{
        topic: topics.events,
        key: user,
        value: JSON.stringify(builder.event("page_viewed", user, second, { url: "/" })),
      }]),
    checkpointed,
    atEnd: (topic: string, partition: number) => checkpointed(topic, partition) === log.endOffset({ topic, partition }),
    alerts: () => log.all(topics.alerts).map((r) => new TextDecoder().decode(r.value!)),
    /** When each low_traffic alert so far was raised. */
    lowTraffic: () =>
      log.all(topics.alerts)
        .map((r) => JSON.parse(new TextDecoder().decode(r.value!)))
        .filter((a) => a.type === "low_traffic")
        .map((a) => a.occurredAt),
  };
}

/**
 * Partition 0's 20 minutes of traffic, 12 page views a minute, already in the log, handled with only the user
 * partitions' watermarks releasing the evaluations (the analytics instance checkpoints, publishing its alerts, after
 * every batch, and never advances its clock idly): nothing is raised while partition 1 may still publish; once the
 * traffic has stopped (`quiet` moves the wall to 10:40) and both partitions are found idle, the drop is reported as
 * soon as the last 10 minutes hold fewer than 100 page views (minutes 12-19: 96).
 */
async function heldUntilFoundIdle(world: Awaited<ReturnType<typeof analyticsWorld>>, quiet: () => void): Promise<void> {
  const { topics, instance, atEnd, lowTraffic } = world;
  const analytics = await instance("analytics-owner", [topics.analytics], { manual: true, checkpointMaxMessages: 1 });
  const usersOwner = await instance("users-owner", [topics.events, topics.productEvents], {
    manual: false,
    checkpointMaxMessages: 1,
  });
  await waitFor("the facts are handled", () => atEnd(topics.events, 0) && atEnd(topics.analytics, 0));
  assert.deepEqual(lowTraffic(), []);

  quiet();
  await waitFor("low_traffic", () => lowTraffic().length > 0);
  await waitFor("every watermark handled", () => atEnd(topics.analytics, 0));
  assert.deepEqual(lowTraffic(), [iso(T0 + 22 * MIN)]);
  await usersOwner.stop();
  await analytics.stop();
}

/** Waits (10 ms at a time, 10 s at most) until `done`. */
async function waitFor(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(done(), what);
}

/** A store whose loads of user states wait while `slow` is set: a restart whose first batches (and checkpoint) lag. */
class SlowUserLoads extends MemoryCheckpointStore {
  slow: Promise<void> | undefined;
  loadsWaiting = 0;

  override async load(kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>> {
    if (kind === "user" && this.slow) {
      this.loadsWaiting++;
      await this.slow;
    }
    return super.load(kind, keys);
  }
}

Deno.test("the analytics partition's idle clock waits for the facts of a backlog the user partitions have yet to publish, and follows the wall once they are caught up", async () => {
  let wall = T0 + 20 * MIN;
  const store = new SlowUserLoads(() => wall);
  const { topics, log, instance, users, view, checkpointed, lowTraffic } = await analyticsWorld(store, () => wall);
  const caughtUp = (topic: string) =>
    log.topicPartitions([topic]).every((tp) => checkpointed(tp.topic, tp.partition) === log.endOffset(tp));
  const analytics = await instance("analytics-owner", [topics.analytics], { manual: true, maxBatch: 100 });
  /** Housekeeping of the analytics instance until the user partitions and it are checkpointed at their ends. */
  const drain = async () => {
    for (let i = 0; i < 500 && !(caughtUp(topics.events) && caughtUp(topics.analytics)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      await analytics.runtime.housekeep();
    }
    assert.ok(caughtUp(topics.events) && caughtUp(topics.analytics), "drained");
  };
  const users1Options = { manual: false, maxBatch: 100 };

  // 30 page views a minute, 15 on each user partition: 300 in any 10 minutes, and 150 from either partition alone.
  const [first, second] = [users(0), users(1)];
  const views = (fromMin: number, toMin: number) => {
    for (let s = fromMin * 60; s < toMin * 60; s += 2) {
      view((s / 2) % 2 === 0 ? first[Math.floor(s / 4) % first.length] : second[Math.floor(s / 4) % second.length], s);
    }
  };

  views(0, 20);
  let users1 = await instance("users-owner", [topics.events, topics.productEvents], users1Options);
  await drain();
  await users1.stop();
  assert.deepEqual(lowTraffic(), [], "steady traffic so far");

  // The users' instance is down for 20 minutes while the storefront goes on producing to `events`.
  wall = T0 + 40 * MIN;
  views(20, 40);
  wall += IDLE_MS + 1_000;
  await analytics.runtime.housekeep();
  assert.deepEqual(lowTraffic(), [], "no owner has published the backlog's facts yet: the analytics clock waits");

  // It restarts, and its first batches take longer than CLOCK_IDLE_MS.
  let release!: () => void;
  store.slow = new Promise<void>((resolve) => release = resolve);
  users1 = await instance("users-owner", [topics.events, topics.productEvents], users1Options);
  for (let i = 0; i < 500 && store.loadsWaiting === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(store.loadsWaiting > 0, "the restarted instance is held up loading users");
  wall += IDLE_MS + 1_000;
  await analytics.runtime.housekeep();
  assert.deepEqual(lowTraffic(), [], "the user partitions are still catching up: the analytics clock waits");

  store.slow = undefined;
  release();
  await drain();
  assert.deepEqual(lowTraffic(), [], "the backlog filled every window");

  // Caught up and then quiet, with the users' instance down again: the idle clock follows the wall, and the drop in
  // traffic is reported as soon as the last 10 minutes hold fewer than 100 page views (minutes 37-39: 90).
  await users1.stop();
  wall = T0 + 60 * MIN;
  await analytics.runtime.housekeep();
  assert.deepEqual(lowTraffic(), [iso(T0 + 47 * MIN)]);
  await analytics.stop();
});

Deno.test("sourceWatermark: the earliest stored clock of the sources with records left, none while the fed partition has records waiting", async () => {
  const log = new MemoryLog();
  await log.ensureTopics([{ topic: "src", partitions: 3 }, { topic: "fed", partitions: 1 }]);
  const store = new MemoryCheckpointStore();
  const consumer = log.consumer();
  const source = { topic: "src", partitions: 3 };
  const fed = { topic: "fed", partition: 0 };
  const limit = (position = 0) => sourceWatermark(store, consumer, "g", source, fed, position);
  const append = (partition: number, n: number) =>
    log.appendNow(Array.from({ length: n }, () => ({ topic: "src", key: "k", value: "{}", partition })));
  const checkpoint = (partition: number, nextOffset: number, clock: number) =>
    store.partitions.set(`g/src:${partition}`, { epoch: 1, nextOffset, clock, owner: "o" });

  assert.equal(await limit(), Infinity, "no records anywhere");
  append(0, 3);
  assert.equal(await limit(), 0, "records of a partition nobody has claimed yet");
  checkpoint(0, 3, 500);
  append(1, 2);
  checkpoint(1, 1, 300);
  checkpoint(2, 0, 100);
  assert.equal(await limit(), 300, "partition 0 is caught up, and partition 2 has nothing to handle");
  append(2, 1);
  assert.equal(await limit(), 100, "the earliest clock of those with records left");
  log.deleteBefore({ topic: "src", partition: 2 }, 1);
  assert.equal(await limit(), 300, "retention deleted what partition 2's checkpoint had not reached: nothing is left");
  checkpoint(1, 2, 400);
  assert.equal(await limit(), Infinity, "every source caught up: the wall");
  log.appendNow([{ topic: "fed", key: "global", value: "{}" }]);
  assert.equal(await limit(0), -Infinity, "a fact the fed partition has not handled yet");
  assert.equal(await limit(1), Infinity);
  assert.equal(store.partitions.size, 3, "a progress read claims nothing");
  store.partitions.set("other/src:1", { epoch: 1, nextOffset: 0, clock: 1, owner: "o" });
  assert.equal(await limit(1), Infinity, "another group's checkpoints are not this one's");
});

/** A store whose loads of the given users wait while `slow` is set: a partition whose first checkpoint lags. */
class SlowLoadsOf extends MemoryCheckpointStore {
  slow: Promise<void> | undefined;
  loadsWaiting = 0;
  constructor(readonly slowUsers: ReadonlySet<string>, wall: () => number) {
    super(wall);
  }

  override async load(kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>> {
    if (kind === "user" && this.slow && keys.some((key) => this.slowUsers.has(key))) {
      this.loadsWaiting++;
      await this.slow;
    }
    return super.load(kind, keys);
  }
}

Deno.test("a user partition that checkpoints first does not move the end of the analytics windows past the facts of one still catching up", async () => {
  // A fresh start over 20 minutes of log, 12 page views a minute (120 in any 10 minutes), 6 on each user partition.
  const wall = T0 + 20 * MIN;
  const partitionOneUsers = new Set<string>();
  const store = new SlowLoadsOf(partitionOneUsers, () => wall);
  const { topics, instance, users, view, checkpointed, atEnd, lowTraffic } = await analyticsWorld(store, () => wall);
  const [first, second] = [users(0), users(1)];
  for (const user of second) partitionOneUsers.add(user);
  // One batch holds a partition's whole log: the memory consumer delivers its partitions one at a time. A checkpoint
  // after every batch: a housekeeping round would wait for the partition held up.
  const options = { manual: false, checkpointMaxMessages: 1 };
  for (let s = 0; s < 20 * 60; s += 5) {
    view((s / 5) % 2 === 0 ? first[(s / 10) % first.length] : second[Math.floor(s / 10) % second.length], s);
  }

  let release!: () => void;
  store.slow = new Promise<void>((resolve) => release = resolve);
  const analytics = await instance("analytics-owner", [topics.analytics], options);
  const usersOwner = await instance("users-owner", [topics.events, topics.productEvents], options);
  await waitFor("partition 0 has published its facts", () => atEnd(topics.events, 0));
  assert.ok(store.loadsWaiting > 0 && checkpointed(topics.events, 1) === 0, "partition 1 is still held up");
  await waitFor("the analytics partition has handled them", () => atEnd(topics.analytics, 0));
  assert.deepEqual(lowTraffic(), [], "partition 1's facts are still to come: the windows do not end past them");

  store.slow = undefined;
  release();
  await waitFor(
    "everything handled",
    () => atEnd(topics.events, 0) && atEnd(topics.events, 1) && atEnd(topics.analytics, 0),
  );
  assert.deepEqual(lowTraffic(), [], "every window held 120 page views");
  const global = (await store.load("global", ["global"])).get("global")?.state as { alerts: unknown[] };
  assert.deepEqual(global.alerts, []);
  await usersOwner.stop();
  await analytics.stop();
});

Deno.test("user partitions that never had a record hold the analytics alerts back only until they are found idle", async () => {
  // A new deployment: 20 minutes of traffic on partition 0 alone, 12 page views a minute, then none.
  let wall = T0 + 20 * MIN;
  const store = new MemoryCheckpointStore(() => wall);
  const world = await analyticsWorld(store, () => wall);
  const first = world.users(0);
  for (let s = 0; s < 20 * 60; s += 5) world.view(first[(s / 5) % first.length], s);

  // Partition 1 never had a record: once found idle, it holds nothing back.
  await heldUntilFoundIdle(world, () => wall = T0 + 40 * MIN);
});

Deno.test("a restart after the analytics partition checkpointed an idle advance, but not the alerts it released, replays them identical", async () => {
  // 20 minutes of traffic, 12 page views a minute on each user partition, then none: low_traffic once the last 10
  // minutes hold fewer than 100. The users' instance is then down, caught up: the analytics idle clock follows the wall.
  let wall = T0 + 20 * MIN;
  const store = new MemoryCheckpointStore(() => wall);
  const { topics, instance, users, view, atEnd, alerts } = await analyticsWorld(store, () => wall);
  const [first, second] = [users(0), users(1)];
  for (let s = 0; s < 20 * 60; s += 5) {
    view((s / 5) % 2 === 0 ? first[(s / 10) % first.length] : second[Math.floor(s / 10) % second.length], s);
  }
  const analytics = await instance("analytics-owner", [topics.analytics], { manual: true });
  const usersOwner = await instance("users-owner", [topics.events, topics.productEvents], { manual: false });
  for (let i = 0; i < 500 && !(atEnd(topics.events, 0) && atEnd(topics.events, 1)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await usersOwner.stop();
  for (let i = 0; i < 500 && !atEnd(topics.analytics, 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    await analytics.runtime.housekeep();
  }
  assert.ok(atEnd(topics.analytics, 0), "the facts and watermarks are handled");
  assert.deepEqual(alerts(), [], "steady traffic so far");

  // The idle advance releases the evaluations up to the wall; its checkpoint commits, and then the process dies
  // between appending the alerts it released and committing the checkpoint after them.
  wall = T0 + 40 * MIN;
  store.failCommitWhen = (w) => w.tp.topic === topics.analytics && w.projections.alerts.length > 0;
  await analytics.runtime.housekeep().catch(() => {});
  const firstRun = alerts();
  assert.ok(firstRun.length > 0, "the idle advance released low_traffic");
  assert.ok(store.partitions.get(`g/${topics.analytics}:0`)!.clock > T0 + 39 * MIN, "the idle advance is checkpointed");
  store.failWith = new Error("crashed");
  await analytics.consumer.stop();
  await analytics.runtime.stop();
  store.failWith = null;
  store.failCommitWhen = null;

  // A new process claims the partition and replays from that checkpoint, at the same wall time and a minute later.
  const restarted = await instance("analytics-owner-2", [topics.analytics], { manual: true });
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    await restarted.runtime.housekeep();
  }
  wall += MIN;
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    await restarted.runtime.housekeep();
  }
  const replayed = alerts().slice(firstRun.length);
  assert.deepEqual(replayed.slice(0, firstRun.length), firstRun, "the replay re-produces the alerts, ids and payloads");
  assert.deepEqual(new Set(alerts()), new Set(firstRun), "and nothing else: no alert twice under another id");
  const row = store.partitions.get(`g/${topics.analytics}:0`)!;
  assert.ok(row.clock > T0 + 39 * MIN && row.sourcesPublished === row.clock, "the release is stored with the clock");
  await restarted.consumer.stop();
  await restarted.runtime.stop();
});

Deno.test("a user partition whose every record retention deleted before it was handled holds the analytics alerts back only until it is found idle", async () => {
  // A new consumer group on an `events` topic whose partition 1 had a few records, all deleted by retention since, and
  // no traffic now; partition 0 has 20 minutes of traffic, 12 page views a minute, then none.
  let wall = T0 + 20 * MIN;
  const store = new MemoryCheckpointStore(() => wall);
  const world = await analyticsWorld(store, () => wall);
  const [first, second] = [world.users(0), world.users(1)];
  for (let i = 0; i < 5; i++) world.view(second[i], 0);
  world.log.deleteBefore({ topic: world.topics.events, partition: 1 }, 5);
  for (let s = 0; s < 20 * 60; s += 5) world.view(first[(s / 5) % first.length], s);

  // Partition 1 has nothing left to handle (its log's end is its start): once found idle, it holds nothing back.
  await heldUntilFoundIdle(world, () => wall = T0 + 40 * MIN);
});

Deno.test("sourceWatermark reads the checkpoints before the logs' ends: a checkpoint committed in between holds the clock back", async () => {
  const log = new MemoryLog();
  await log.ensureTopics([{ topic: "src", partitions: 1 }, { topic: "fed", partitions: 1 }]);
  const store = new MemoryCheckpointStore();
  log.appendNow([{ topic: "src", key: "k", value: "{}", partition: 0 }, {
    topic: "src",
    key: "k",
    value: "{}",
    partition: 0,
  }]);
  store.partitions.set("g/src:0", { epoch: 1, nextOffset: 0, clock: 100, owner: "o" });
  // A checkpoint of src:0 lands between the two reads: its facts (dated up to 200) go to `fed`, then it commits.
  let checkpointed = false;
  const checkpoint = () => {
    if (checkpointed) return;
    checkpointed = true;
    log.appendNow([{ topic: "fed", key: "global", value: "{}" }]);
    store.partitions.set("g/src:0", { epoch: 1, nextOffset: 2, clock: 200, owner: "o" });
  };
  const inner = log.consumer();
  let endsRead = 0;
  const afterEnds = <T>(value: T): T => {
    if (++endsRead === 2) checkpoint();
    return value;
  };
  const consumer = {
    endOffsets: async (topic: string) => afterEnds(await inner.endOffsets(topic)),
    endOffset: async (tp: TopicPartition) => afterEnds(await inner.endOffset(tp)),
    earliestOffset: (tp: TopicPartition) => inner.earliestOffset(tp),
  } as unknown as LogConsumer;
  const progress = store.progress.bind(store);
  store.progress = async (topic, groupId) => {
    const read = await progress(topic, groupId);
    checkpoint();
    return read;
  };
  const limit = await sourceWatermark(store, consumer, "g", { topic: "src", partitions: 1 }, {
    topic: "fed",
    partition: 0,
  }, 0);
  // Ends read first, then the checkpoint: src:0 looked caught up and fed empty, and the clock followed the wall
  // past the facts the checkpoint had just published.
  assert.notEqual(limit, Infinity);
  assert.ok(limit <= 200, `the idle clock may advance to ${limit}`);
});
