/**
 * KafkaConsumer's assignments against a runtime, driven by a stand-in for kafkajs's consumer (the
 * test emits GROUP_JOIN and delivers batches). An instance that stalled past the session timeout is
 * fenced off (another member claimed its partition in PostgreSQL); when it rejoins, the group may
 * hand it the same partition again, and it must claim it again even though its assignment did not
 * change as far as it saw.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ActorLogic } from "../../engine/actor.ts";
import type { CheckpointWrite, Claim, CommitResult } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { topicNames } from "../../engine/config.ts";
import { DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { KafkaConsumer } from "../../engine/kafka_consumer.ts";
import { type TopicPartition, tpKey } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { ActorRuntime, FINAL_CHECKPOINTS_MS, RELEASE_MS } from "../../engine/runtime.ts";
import { emitTestAlert, Harness, type Recorded, recorderLogic, totalsLogic } from "../helpers/runtime.ts";
import { CONSUMER_EVENTS, CREATE_CLUSTER, fakeOffsetCluster } from "../helpers/fake_kafkajs.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** Just enough of a kafkajs client for KafkaConsumer: the test emits GROUP_JOIN and delivers batches. */
function fakeKafka() {
  const handlers = new Map<string, (e: Any) => void>();
  let eachBatch: ((payload: Any) => Promise<void>) | undefined;
  const consumer = {
    events: CONSUMER_EVENTS,
    on: (name: string, fn: (e: Any) => void) => handlers.set(name, fn),
    connect: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    run: (opts: Any) => {
      eachBatch = opts.eachBatch;
      return Promise.resolve();
    },
    seek: (to: { partition: number; offset: string }) => void calls.push(`seek ${to.partition}@${to.offset}`),
    pause: (tps: { partitions: number[] }[]) => void calls.push(...tps.map((tp) => `pause ${tp.partitions}`)),
    resume: (tps: { partitions: number[] }[]) => void calls.push(...tps.map((tp) => `resume ${tp.partitions}`)),
    commitOffsets: (offsets: { partition: number; offset: string }[]) => {
      calls.push(...offsets.map((o) => `commit ${o.partition}@${o.offset}`));
      for (const { partition, offset } of offsets) groupOffsets.set(partition, Number(offset));
      return Promise.resolve();
    },
    disconnect: async () => {
      left.resolve();
      await whileLeaving?.();
    },
  };
  /** Runs while kafkajs leaves the group, before its disconnect returns. */
  let whileLeaving: (() => Promise<unknown>) | undefined;
  /** The group's committed offsets as kafkajs's admin lists them (partition → offset), and how often they were read. */
  const groupOffsets = new Map<number, number>();
  let offsetsRead = 0;
  const admin = {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    fetchOffsets: ({ topics }: { topics: string[] }) => {
      offsetsRead++;
      return Promise.resolve(topics.map((topic) => ({
        topic,
        partitions: [...groupOffsets].map(([partition, offset]) => ({ partition, offset: String(offset) })),
      })));
    },
  };
  /** Where each partition's log ends (partition → offset), as a broker lists it; unlisted if missing. */
  const logEnds = new Map<number, number>();
  /** The settings KafkaConsumer gave kafkajs's consumer. */
  let consumerConfig: Any;
  const kafka = {
    consumer: (config: Any) => (consumerConfig = config, consumer),
    admin: () => admin,
    [CREATE_CLUSTER]: () => fakeOffsetCluster(logEnds),
  };
  const left = Promise.withResolvers<void>();
  /** What KafkaConsumer asked of kafkajs: `seek P@O`, `pause P`, `resume P`, `commit P@O`. */
  const calls: string[] = [];
  return {
    kafka,
    calls,
    consumerConfig: () => consumerConfig,
    /** Sets the group's committed offsets (those another member committed, say). */
    groupOffsets,
    /** Sets where partitions' logs end. */
    logEnds,
    /** How often the group's committed offsets were read. */
    offsetsRead: () => offsetsRead,
    /** Settles when the member leaves the group (kafkajs's disconnect). */
    left: left.promise,
    /** Sets what runs while the member leaves the group (kafkajs's disconnect in progress). */
    onLeaving: (fn: () => Promise<unknown>) => void (whileLeaving = fn),
    /** The group's assignment to this member, under `memberId` (a new one: the group dropped it in between). */
    join: (assignment: Record<string, number[]>, memberId = "member-1") =>
      handlers.get("group_join")!({ payload: { memberId, memberAssignment: assignment } }),
    /** kafkajs's consumer crashed; `restart`: kafkajs restarts it, else it consumes nothing again. */
    crash: (error: Error, restart: boolean) => handlers.get("crash")!({ payload: { error, restart } }),
    /** The member found the group rebalancing (a new assignment follows with `join`). */
    rebalancing: () => handlers.get("rebalancing")!({ payload: {} }),
    /** The coordinator answers a heartbeat: twice in a row, the member's assignment is confirmed current. */
    heartbeat: (generation = 1) => handlers.get("heartbeat")!({ payload: { groupGenerationId: generation } }),
    /** A broker answered a request (kafkajs's consumer.network.request event). */
    answered: (apiName: string, sentAt: number) => handlers.get("request")!({ payload: { apiName, sentAt } }),
    deliver: (
      topic: string,
      partition: number,
      offsets: number[],
      record: { key?: string; value?: string; timestamp?: number } = {},
      heartbeat: () => Promise<void> = () => Promise.resolve(),
    ) =>
      eachBatch!({
        batch: {
          topic,
          partition,
          highWatermark: String(offsets[offsets.length - 1] + 1),
          firstOffset: () => String(offsets[0]),
          lastOffset: () => String(offsets[offsets.length - 1]),
          messages: offsets.map((o) => ({
            offset: String(o),
            key: Buffer.from(record.key ?? "k"),
            value: Buffer.from(record.value ?? JSON.stringify({ n: o })),
            headers: {},
            timestamp: String(record.timestamp ?? Date.now()),
          })),
        },
        resolveOffset: () => {},
        heartbeat,
        isStale: () => false,
        isRunning: () => true,
      }),
  };
}

const settle = () => new Promise((r) => setTimeout(r, 50));

/**
 * A runtime of member "A" on a KafkaConsumer over the stand-in kafkajs, one partition, a checkpoint per batch by default;
 * `watermarks`: the events partition publishes its clock to analytics, as the engine wires it; `store` and `logic`
 * replace the in-memory store and the recorder.
 */
async function memberA<S extends MemoryCheckpointStore = MemoryCheckpointStore>(
  checkpointMaxMessages = 1,
  {
    watermarks = false,
    store = new MemoryCheckpointStore() as S,
    logic = recorderLogic() as ActorLogic<Recorded, Any>,
  }: { watermarks?: boolean; store?: S; logic?: ActorLogic<Recorded, Any> } = {},
) {
  const topics = topicNames({ TOPIC_PREFIX: "" });
  const log = new MemoryLog();
  await log.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 1 })));
  const fake = fakeKafka();
  const consumer = new KafkaConsumer(fake.kafka as Any, { groupId: "group" }, silentLogger);
  const runtime = new ActorRuntime({
    store,
    producer: log.producer(),
    consumer,
    topics,
    groupId: "group",
    owner: "A",
    logger: silentLogger,
    logics: new Map([[topics.events, logic]]),
    ...(watermarks ? { partitionCounts: new Map([[topics.events, 1]]) } : {}),
    checkpointIntervalMs: 3_600_000,
    checkpointMaxMessages,
    retryBackoffMs: { initial: 5, max: 20 },
  });
  return { topics, log, store, fake, consumer, runtime };
}

Deno.test("a fenced partition handed back to the same member by the next rebalance is claimed again", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  const tp = { topic: topics.events, partition: 0 };
  const row = () => store.partitions.get(`group/${topics.events}:0`)!;

  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] }); // A owns partition 0
  await settle();
  await fake.deliver(tp.topic, 0, [0]);
  await settle();
  assert.equal(row().nextOffset, 1);

  // A stalls past the session timeout; the group gives partition 0 to B, which claims it and checkpoints.
  await store.claim(tp, "group", "B");
  row().nextOffset = 2; // B handled offset 1
  // A wakes up: its next batch's checkpoint is fenced, and the worker gives the partition up.
  await fake.deliver(tp.topic, 0, [1, 2]);
  await settle();
  assert.equal(row().owner, "B");

  // A rejoins; the rebalance hands partition 0 back to A (B's GROUP_JOIN revokes it there).
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(tp.topic, 0, [2, 3]);
  await settle();
  // It used to compare the assignment with the one it remembered, find nothing new, and drop every batch.
  assert.equal(row().owner, "A", "nobody claimed partition 0 again");
  assert.equal(row().nextOffset, 4, "partition 0 makes no progress");
});

Deno.test("a member the group dropped and took back under a new member id claims its partitions afresh, memory dropped", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  const tp = { topic: topics.events, partition: 0 };
  const row = () => store.partitions.get(`group/${topics.events}:0`)!;
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(tp.topic, 0, [0]);
  await settle();
  assert.deepEqual(runtime.lookup("recorder", "k")?.state, { key: "k", values: [0] });

  // A routine rebalance (the same member id, the same assignment) changes nothing here.
  const epoch = row().epoch;
  fake.join({ [topics.events]: [0] });
  await settle();
  assert.equal(row().epoch, epoch, "a routine rebalance claimed the partition again");
  assert.ok(runtime.lookup("recorder", "k"), "a routine rebalance dropped the partition's actors");

  // A stalls past the session timeout, the group drops it and gives partition 0 to B, which handles offset 1.
  await store.claim(tp, "group", "B");
  row().nextOffset = 2;
  // A joins again under a new member id and gets partition 0 back, before any batch of its own found the fence:
  // what it holds of the partition predates B's work.
  fake.join({ [topics.events]: [0] }, "member-2");
  await settle();
  assert.equal(row().owner, "A", "partition 0 was not claimed afresh");
  assert.equal(runtime.lookup("recorder", "k"), undefined, "A kept its memory of the partition from before B");
  await fake.deliver(tp.topic, 0, [2, 3]);
  await settle();
  assert.equal(row().nextOffset, 4);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a member taken back under a new member id while the database is down keeps nothing of its stale memory", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(topics.events, 0, [0]);
  await settle();
  assert.ok(runtime.lookup("recorder", "k"));
  // Dropped by the group and taken back; the claim of the partition fails for now.
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] }, "member-2");
  await settle();
  assert.equal(runtime.lookup("recorder", "k"), undefined, "a query would be answered from the stale memory");
  assert.deepEqual(runtime.owned(), []);
  store.failWith = null;
  await consumer.stop();
  await runtime.stop();
});

Deno.test("the consumer reports a crash kafkajs gives up on (readiness names it, failed() settles), not one kafkajs restarts from", async () => {
  const { topics, fake, consumer, runtime } = await memberA();
  await consumer.start([topics.events], runtime);
  let failed: Error | undefined;
  consumer.failed().then((error) => failed = error);
  fake.crash(new Error("The coordinator is not aware of this member"), true);
  await settle();
  assert.equal(consumer.failure(), undefined, "kafkajs restarts the consumer: it is not stopped");
  assert.equal(failed, undefined, "a crash kafkajs restarts from does not stop the engine");
  fake.crash(new Error("The group member's supported protocols are incompatible"), false);
  assert.match(consumer.failure()?.message ?? "none", /incompatible/);
  // The engine stops on it (main.ts exits 1): it used to stay up for good, holding its partitions.
  await settle();
  assert.equal(failed, consumer.failure());
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a partition whose claim failed during a rebalance is claimed once the database is back", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  await consumer.start([topics.events], runtime);
  // The database is down while the group hands partition 0 to this member, and back a moment later.
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] });
  await settle();
  store.failWith = null;
  await settle();
  fake.heartbeat();
  fake.heartbeat(); // the group confirms the assignment still holds
  await runtime.housekeep(); // claims it again, and seeks it to its checkpoint
  await fake.deliver(topics.events, 0, [0, 1]);
  await settle();
  // The failed claim was only logged: the partition stayed assigned here and was handled by nobody.
  assert.deepEqual(runtime.owned(), [`${topics.events}:0`]);
  assert.equal(store.partitions.get(`group/${topics.events}:0`)?.nextOffset, 2);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a partition whose claim failed is claimed again only once the group confirms it is still assigned here", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  const tp = { topic: topics.events, partition: 0 };
  const row = () => store.partitions.get(`group/${topics.events}:0`)!;
  await consumer.start([topics.events], runtime);
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] }); // the claim fails: partition 0 waits for a retry
  await settle();
  store.failWith = null;
  // A stalls past the session timeout; the group gives partition 0 to B, which claims it. A wakes, and its
  // housekeeping runs before kafkajs tells it of the revocation.
  await store.claim(tp, "group", "B");
  await runtime.housekeep();
  assert.equal(row().owner, "B", "A retried the claim without the group's word and fenced off B");
  assert.deepEqual(runtime.owned(), []);
  // Had the group kept partition 0 here, its heartbeats say so, and the retry goes ahead.
  fake.heartbeat();
  fake.heartbeat();
  await runtime.housekeep();
  assert.equal(row().owner, "A");
  assert.deepEqual(runtime.owned(), [`${topics.events}:0`]);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a partition whose claim failed is not claimed again once revoked, and a stop does not wait on it", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  await consumer.start([topics.events], runtime);
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] });
  await settle();
  // The group moves partition 0 to another member while the database is still down.
  fake.join({ [topics.events]: [] });
  await settle();
  store.failWith = null;
  await runtime.housekeep();
  await settle();
  // Retrying inside the assignment claimed it once the database was back, fencing off its new owner.
  assert.equal(store.partitions.get(`group/${topics.events}:0`)?.owner, undefined, "never claimed by A");
  assert.deepEqual(runtime.owned(), []);
  // And with the database down for good, a stop returns: it used to wait for the retries for ever.
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] });
  await settle();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    // In the engine's order: leave the group, then release the partitions.
    consumer.stop().then(() => runtime.stop()).then(() => "stopped"),
    new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 2_000)),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "stopped");
});

Deno.test("a graceful stop writes its final checkpoints before it leaves the group, while its partitions are still its own", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA(1_000);
  const row = () => store.partitions.get(`group/${topics.events}:0`)!;
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(topics.events, 0, [0, 1, 2]);
  await settle();
  assert.equal(row().nextOffset, 0, "handled, not checkpointed yet");
  let atLeaving: { nextOffset: number; epoch: number } | undefined;
  fake.left.then(() => atLeaving = { ...row() });
  await runtime.shutdown();
  // Checkpointed after leaving, another member could have claimed first: this checkpoint refused, offsets 0-2 replayed.
  assert.equal(atLeaving?.nextOffset, 3, "the checkpoint stood at 3 when the member left the group");
  assert.equal(row().nextOffset, 3);
});

Deno.test("a stopping member runs no housekeeping round once its final checkpoints are written: nothing is published or checkpointed after them", async () => {
  // As the engine wires it: the events partition publishes its clock to analytics (a watermark record).
  const { topics, log, store, fake, consumer, runtime } = await memberA(1_000, { watermarks: true });
  await consumer.start([topics.events], runtime);
  // Claimed just before the stop (the group handed it the partitions of a member that left), not ticked yet: its
  // first housekeeping round would queue the watermark a claim announces, and checkpoint it.
  fake.join({ [topics.events]: [0] });
  await settle();
  const commits = store.commits;
  let finalCheckpoints: number | undefined;
  // The housekeeping timer fires while kafkajs leaves the group (its disconnect waits for fetches in flight).
  fake.onLeaving(async () => {
    finalCheckpoints = store.commits;
    await runtime.housekeep();
  });
  await runtime.shutdown();
  assert.equal(finalCheckpoints, commits, "nothing new to checkpoint before leaving");
  const analytics = log.read({ topic: topics.analytics, partition: 0 }, 0);
  assert.deepEqual(
    analytics.map((r) => new TextDecoder().decode(r.value!)),
    [],
    "nothing published to a consumed topic after the final checkpoints (and the group left)",
  );
  assert.equal(store.commits, commits, "no checkpoint after leaving the group");
});

Deno.test("the consumer's last read of the log is when it sent the latest fetch a broker answered", async () => {
  const { topics, fake, consumer, runtime } = await memberA();
  await consumer.start([topics.events], runtime);
  const started = consumer.lastReadAt();
  fake.answered("Fetch", started + 1_000);
  assert.equal(consumer.lastReadAt(), started + 1_000);
  fake.answered("Heartbeat", started + 5_000); // the group coordinator answering is not a read of the log
  fake.answered("Fetch", started + 500); // an older fetch answered late
  assert.equal(consumer.lastReadAt(), started + 1_000);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("an assigned partition is read from its checkpoint, and each checkpoint commits the next offset to read", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  // Another member checkpointed partition 0 up to offset 5 before the group gave it to this one.
  store.partitions.set(`group/${topics.events}:0`, { epoch: 1, nextOffset: 5, clock: 0, owner: "B" });
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  // Without the seek, kafkajs reads from the group's committed offset: records handled twice, or never.
  assert.deepEqual(fake.calls, ["seek 0@5"]);
  await fake.deliver(topics.events, 0, [5, 6]);
  await settle();
  assert.equal(store.partitions.get(`group/${topics.events}:0`)?.nextOffset, 7);
  // Kafka's committed offset is the next one to read (what lag monitoring expects), as the checkpoint's.
  assert.deepEqual(fake.calls.filter((call) => !call.startsWith("resume")), ["seek 0@5", "commit 0@7"]);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a record's key and timestamp reach the actors as written: a non-ASCII key, the append time in a dead letter", async () => {
  const { topics, log, fake, consumer, runtime } = await memberA();
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(topics.events, 0, [0], { key: "clé-日本" });
  await fake.deliver(topics.events, 0, [1], { key: "k", value: "{not json", timestamp: 1_234 });
  await settle();
  assert.deepEqual(runtime.lookup("recorder", "clé-日本")?.state, { key: "clé-日本", values: [0] });
  const [dead] = log.all(topics.dlq);
  assert.equal(dead?.headers[DLQ_HEADERS.timestamp], "1234", "the record's append time, not when it was read");
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a rebalance under way confirms no assignment: a failed claim is retried only after the new one's heartbeats", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  const row = () => store.partitions.get(`group/${topics.events}:0`);
  await consumer.start([topics.events], runtime);
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] }); // the claim fails: partition 0 waits for a retry
  await settle();
  fake.heartbeat();
  fake.heartbeat();
  // The group starts rebalancing: the assignment may move partition 0 elsewhere.
  fake.rebalancing();
  store.failWith = null;
  await runtime.housekeep();
  assert.equal(row()?.owner, undefined, "claimed while the group was rebalancing");
  // The same assignment again, its claim failing too; then the group confirms it.
  store.failWith = new Error("connection refused");
  fake.join({ [topics.events]: [0] });
  await settle();
  store.failWith = null;
  fake.heartbeat(2);
  fake.heartbeat(2);
  await runtime.housekeep();
  assert.equal(row()?.owner, "A", "never claimed once the new assignment was confirmed");
  await consumer.stop();
  await runtime.stop();
});

/**
 * A consumer on a fake kafkajs, assigned partition 0 of topic `t` and reading it from offset 0, whose listener notes each
 * batch's offsets in `handled` and holds it until `gate` is resolved.
 */
async function gatedMember() {
  const fake = fakeKafka();
  const consumer = new KafkaConsumer(fake.kafka as Any, { groupId: "group" }, silentLogger);
  const handled: number[][] = [];
  const gate = Promise.withResolvers<void>();
  await consumer.start(["t"], {
    assigned: (tps) => Promise.resolve(new Map(tps.map((tp) => [tpKey(tp), 0]))),
    revoked: () => Promise.resolve(),
    batch: async (batch) => {
      handled.push(batch.records.map((r) => r.offset));
      await gate.promise;
    },
  });
  fake.join({ t: [0] });
  await settle();
  return { fake, consumer, handled, gate };
}

Deno.test("a revoked partition's queued batches are dropped and its pause lifted, so that it starts afresh if assigned again", async () => {
  const { fake, consumer, handled, gate } = await gatedMember();
  await fake.deliver("t", 0, [0, 1]); // handled, and held
  await fake.deliver("t", 0, [2, 3]); // queued behind it: the lane is full
  assert.deepEqual(fake.calls, ["seek 0@0", "pause 0"]);
  fake.join({ t: [] }); // the group moves partition 0 to another member
  await settle();
  gate.resolve();
  await settle();
  assert.deepEqual(handled, [[0, 1]], "a batch of a partition this member no longer has was handled");
  assert.ok(fake.calls.includes("resume 0"), "partition 0 stays paused here for good");
  await consumer.stop();
});

Deno.test("a partition is paused while its lane holds two batches, again at each further hand-off, and resumed below", async () => {
  const { fake, consumer, gate } = await gatedMember();
  await fake.deliver("t", 0, [0]);
  assert.deepEqual(fake.calls, ["seek 0@0"], "one batch in the lane: still fetched");
  await fake.deliver("t", 0, [1]);
  // kafkajs restarted after a crash forgets its pauses, and fetches the partition again.
  await fake.deliver("t", 0, [2]);
  assert.deepEqual(fake.calls, ["seek 0@0", "pause 0", "pause 0"]);
  assert.equal(consumer.inFlight({ topic: "t", partition: 0 }), 3);
  gate.resolve();
  await settle();
  assert.equal(consumer.inFlight({ topic: "t", partition: 0 }), 0);
  assert.ok(fake.calls.includes("resume 0"), "partition 0 stays paused once its lane is empty");
  await consumer.stop();
});

Deno.test("quiesce() waits for the batch being handled and skips those queued or fetched after it", async () => {
  const { fake, consumer, handled, gate } = await gatedMember();
  await fake.deliver("t", 0, [0]);
  await fake.deliver("t", 0, [1]);
  let quiesced = false;
  const quiescing = consumer.quiesce().then(() => quiesced = true);
  await settle();
  assert.equal(quiesced, false, "the batch being handled is waited for");
  await fake.deliver("t", 0, [2]);
  gate.resolve();
  await quiescing;
  // Once quiesced the engine writes its final checkpoints: no batch may be handled during or after them.
  assert.deepEqual(handled.flat(), [0]);
  await consumer.stop();
});

Deno.test("a graceful stop while the database is down does not wait for it: a partition retrying its checkpoint gives up, and the member leaves the group", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA(1);
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  store.failWith = new Error("connection refused");
  // Dead-lettered without loading an actor: its checkpoint, due at once, has an output to publish and fails at the
  // epoch check before it, again and again while the database is down.
  await fake.deliver(topics.events, 0, [0], { value: JSON.stringify({ n: "not a number" }) });
  await settle();
  let left = false;
  fake.left.then(() => left = true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    runtime.shutdown().then(() => "stopped"),
    new Promise((resolve) => timer = setTimeout(() => resolve("waiting for the database"), 2_000)),
  ]);
  clearTimeout(timer);
  store.failWith = null;
  assert.equal(outcome, "stopped", "the stop waited for the outage (the engine's deadline ends it without leaving)");
  assert.ok(left, "the member left the group: its partitions go to the others at once");
  assert.equal(store.partitions.get(`group/${topics.events}:0`)?.nextOffset, 0, "nothing checkpointed: replayed");
});

/** A store whose commits of epoch `hangEpoch` wait for `land()` (a database that stops answering mid-commit), then apply. */
class HangingCommitStore extends MemoryCheckpointStore {
  hangEpoch: number | null = null;
  readonly #landing = Promise.withResolvers<void>();
  /** The commits that hung, as they settle once landed. */
  readonly hung: Promise<CommitResult>[] = [];

  land(): void {
    this.#landing.resolve();
  }

  override commit(write: CheckpointWrite): Promise<CommitResult> {
    if (write.epoch !== this.hangEpoch) return super.commit(write);
    const landed = this.#landing.promise.then(() => super.commit(write));
    this.hung.push(landed);
    return landed;
  }
}

/** Records each message's `n` and raises an alert for it (its id from its record), at clock 0: outputs a replay repeats. */
const echoLogic: ActorLogic<Recorded, { n: number }> = {
  kind: "recorder",
  initial: (key) => ({ key, values: [] }),
  decode: (record) => ({ n: JSON.parse(new TextDecoder().decode(record.value!)).n }),
  eventTime: () => 0,
  handle: (state, message, ctx) => {
    emitTestAlert(ctx, "echo", state.key, { n: message.n });
    return { ...state, values: [...state.values, message.n] };
  },
  persist: (state) => state,
  restore: (data) => data as Recorded,
};

Deno.test("a final checkpoint cut by FINAL_CHECKPOINTS_MS loses and applies twice nothing: the next owner replays to identical outputs, the late commit is refused", async () => {
  const { topics, log, store, fake, consumer, runtime } = await memberA(1_000, {
    store: new HangingCommitStore(),
    logic: echoLogic,
  });
  // The log holds what the stand-in delivers to A: key k, {n: offset}.
  log.appendNow([0, 1, 2].map((n) => ({ topic: topics.events, key: "k", value: JSON.stringify({ n }) })));
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(topics.events, 0, [0, 1, 2]);
  await settle();
  // A's final checkpoint appends its three alerts, then its commit does not answer.
  store.hangEpoch = store.partitions.get(`group/${topics.events}:0`)!.epoch;
  const started = performance.now();
  await runtime.shutdown();
  const took = performance.now() - started;
  assert.ok(took < FINAL_CHECKPOINTS_MS + RELEASE_MS + 1_000, `the stop is bounded, took ${Math.round(took)} ms`);
  assert.equal(store.hung.length, 1, "the final checkpoint's commit hung");
  assert.equal(store.partitions.get(`group/${topics.events}:0`)!.nextOffset, 0, "nothing committed");
  const alerts = () => log.all(topics.alerts).map((r) => new TextDecoder().decode(r.value!));
  assert.equal(alerts().length, 3, "A's outputs were appended before its commit");

  // The next owner resumes from the checkpoint before and handles the three records again.
  const next = new Harness(echoLogic, 1, 1_000, { store, log });
  await next.start("B");
  await next.drained();
  // A's commit lands at last: B's claim fenced it off, so the records are not applied a second time.
  store.land();
  assert.equal((await store.hung[0]).committed, false, "the late commit is refused");
  await next.stop();
  assert.deepEqual((await next.stored("k"))?.values, [0, 1, 2], "each record applied once");
  const published = alerts();
  assert.equal(published.length, 6, "B published them again");
  assert.deepEqual(published.slice(3), published.slice(0, 3), "identical to A's: same ids, same content");
});

Deno.test("once quiesced, a batch fetched is dropped and its partition paused: kafkajs fetched it again and again", async () => {
  const { fake, consumer, handled, gate } = await gatedMember();
  await fake.deliver("t", 0, [0]);
  const quiescing = consumer.quiesce();
  gate.resolve();
  await quiescing;
  const before = fake.calls.length;
  // Fetched after the quiesce (the final checkpoints run meanwhile, up to FINAL_CHECKPOINTS_MS): dropped unresolved, so
  // kafkajs's next fetch asks for the same offsets, and the broker, holding them, answers at once, until the group is
  // left (18 fetches in 2 s of a 10,000-record backlog, measured on this machine's broker).
  await fake.deliver("t", 0, [1, 2]);
  assert.deepEqual(fake.calls.slice(before), ["pause 0"], "the partition is still fetched while the member stops");
  assert.deepEqual(handled.flat(), [0]);
  await consumer.stop();
});

/** Holds back the claims of the partitions given to `hold` until `release` is called: assignments slow to handle. */
class SlowClaimStore extends MemoryCheckpointStore {
  readonly #held = new Map<number, PromiseWithResolvers<void>>();
  hold(partition: number): void {
    this.#held.set(partition, Promise.withResolvers<void>());
  }
  release(partition: number): void {
    this.#held.get(partition)?.resolve();
    this.#held.delete(partition);
  }
  override async claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    await this.#held.get(tp.partition)?.promise;
    return super.claim(tp, groupId, owner);
  }
}

/** Each alert's payloads by id, as the alerts topic holds them. */
function alertPayloads(log: MemoryLog, topic: string): Map<string, Set<string>> {
  const byId = new Map<string, Set<string>>();
  for (const record of log.all(topic)) {
    const text = new TextDecoder().decode(record.value!);
    const id = JSON.parse(text).alertId as string;
    byId.set(id, (byId.get(id) ?? new Set()).add(text));
  }
  return byId;
}

Deno.test("a batch fetched before a rebalance reaches the old worker of a partition that moved: fenced, it publishes no output the new owner would not", async () => {
  const store = new SlowClaimStore();
  /** Offsets of partition 0 this member's actors handled. */
  const handledHere: number[] = [];
  const logic: Any = {
    ...totalsLogic,
    handle: (state: Any, message: Any, ctx: Any) => {
      handledHere.push(message.n);
      return totalsLogic.handle(state, message, ctx);
    },
  };
  const { topics, log, fake, consumer, runtime } = await memberA(1, { store, logic });
  const tp = { topic: topics.events, partition: 0 };
  const row = () => store.partitions.get(`group/${topics.events}:0`)!;
  // The log the batches come from (each record's n is its offset) and the new owner reads.
  for (let n = 0; n < 4; n++) log.appendNow([{ topic: topics.events, key: "k", value: JSON.stringify({ n }) }]);
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0] });
  await settle();
  await fake.deliver(tp.topic, 0, [0]);
  await settle();
  assert.equal(row().nextOffset, 1);
  await runtime.passivateAll(); // "k" leaves memory: the old worker's next record reads it from the store

  // A rebalance adds partition 1, whose claim takes long; a batch of partition 0 waits behind that assignment. The
  // next one adds partition 2, slow too; the one after moves partition 0 to B, which claims it, handles offsets 1 to 3
  // and publishes. Only the assignments before the move are handled when the batch goes on: it reaches the old worker.
  store.hold(1);
  store.hold(2);
  fake.join({ [topics.events]: [0, 1] });
  await settle();
  const stale = fake.deliver(tp.topic, 0, [1]);
  fake.join({ [topics.events]: [0, 1, 2] });
  fake.join({ [topics.events]: [1, 2] });
  const b = new Harness(totalsLogic, 1, 1, { store, log });
  await b.start("B");
  await b.drained();
  assert.equal(row().owner, "B");
  // The first slow assignment ends: the batch fetched before the move reaches the old worker of partition 0, which
  // reads "k" as B wrote it (offset 3). Its checkpoint finds B's epoch before appending, and gives the partition up.
  store.release(1);
  await stale;
  await settle();
  assert.deepEqual(handledHere, [0, 1], "the batch did not reach the old worker (the test no longer races it)");
  store.release(2);
  await settle();
  await b.stop();

  // The group hands partition 0 back: a worker created again resumes from B's checkpoint, a batch fetched before
  // handles nothing twice, and the next record goes on from B's state.
  fake.join({ [topics.events]: [0, 1, 2] });
  await settle();
  await fake.deliver(tp.topic, 0, [1, 2, 3]);
  log.appendNow([{ topic: topics.events, key: "k", value: JSON.stringify({ n: 4 }) }]);
  await fake.deliver(tp.topic, 0, [4]);
  await settle();
  assert.deepEqual(handledHere, [0, 1, 4]);
  assert.equal(row().owner, "A");
  assert.equal(row().nextOffset, 5);
  assert.equal(((await store.read("totals", "k"))?.state as { total: number }).total, 0 + 1 + 2 + 3 + 4);

  const byId = alertPayloads(log, topics.alerts);
  assert.equal(byId.size, 5, "one alert per record");
  for (const [id, payloads] of byId) assert.equal(payloads.size, 1, `alert ${id} was published with two payloads`);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a partition resumes from its checkpoint row, from offset 0 without one, never from the group's committed offset", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  const row = (partition: number) => store.partitions.get(`group/${topics.events}:${partition}`);
  // The group's committed offsets are not the checkpoints: a commit kafkajs retried across a rebalance can land after
  // the new owner's (kafkajs sends each retry with the member's current generation) and move them back; a database
  // started afresh beside a group that consumed before has no row at all.
  fake.groupOffsets.set(0, 7);
  fake.groupOffsets.set(1, 2);
  store.partitions.set(`group/${topics.events}:1`, { epoch: 1, nextOffset: 5, clock: 0, owner: "B" });
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0, 1] });
  await settle();
  // Without the seeks, kafkajs reads from the group's committed offsets: offsets 0 to 6 of partition 0 never handled,
  // offsets 2 to 4 of partition 1 handled twice.
  assert.deepEqual(fake.calls.toSorted(), ["seek 0@0", "seek 1@5"]);
  assert.equal(row(0)?.nextOffset, 0);
  assert.equal(fake.offsetsRead(), 0, "a claim read the group's committed offsets");
  await fake.deliver(topics.events, 0, [0, 1]);
  await settle();
  assert.equal(row(0)?.nextOffset, 2);
  assert.deepEqual(runtime.lookup("recorder", "k")?.state, { key: "k", values: [0, 1] });
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a claimed partition that gets no record brings the group's committed offset to its checkpoint, once, never past its log's end", async () => {
  const { topics, store, fake, consumer, runtime } = await memberA();
  // B checkpointed partition 0 up to offset 5, and the group's offset stands at 2 (B's commit of 5 never landed, or an
  // older one kafkajs retried landed after it); nothing was appended since. Partition 1's log ends before its
  // checkpoint (its topic created again): a commit there would read as a lost tail (#restartOnShorterLog). Partition 2
  // has no checkpoint row and its log is empty.
  store.partitions.set(`group/${topics.events}:0`, { epoch: 1, nextOffset: 5, clock: 0, owner: "B" });
  store.partitions.set(`group/${topics.events}:1`, { epoch: 1, nextOffset: 9, clock: 0, owner: "B" });
  fake.groupOffsets.set(0, 2);
  fake.logEnds.set(0, 5).set(1, 4).set(2, 0);
  await consumer.start([topics.events], runtime);
  fake.join({ [topics.events]: [0, 1, 2] });
  await settle();
  assert.deepEqual(fake.calls.toSorted(), ["seek 0@5", "seek 1@9", "seek 2@0"]);
  // No record comes: the housekeeping rounds are all that runs.
  await runtime.housekeep();
  await settle();
  assert.equal(fake.groupOffsets.get(0), 5, "the group's offset stayed behind the idle partition's checkpoint");
  assert.equal(fake.groupOffsets.get(2), 0);
  assert.equal(fake.groupOffsets.has(1), false, "a commit past the log's end");
  await runtime.housekeep();
  await settle();
  assert.deepEqual(fake.calls.filter((call) => call.startsWith("commit")).toSorted(), ["commit 0@5", "commit 2@0"]);
  await consumer.stop();
  await runtime.stop();
});

Deno.test("a batch waiting for an assignment being handled heartbeats meanwhile, and a heartbeat that finds the group rebalancing ends the wait", async () => {
  // kafkajs heartbeats only between batches, and fetches again only once every batch of its last fetch is handled: a
  // batch held behind a long assignment (a revoked partition's final checkpoint) held the member's heartbeats past its
  // session timeout (tests/integration/kafka_consumer_test.ts shows the group dropping it).
  const fake = fakeKafka();
  const consumer = new KafkaConsumer(fake.kafka as Any, { groupId: "group", heartbeatIntervalMs: 20 }, silentLogger);
  const claims = Promise.withResolvers<void>();
  const handled: number[] = [];
  const listener = {
    assigned: async (tps: readonly TopicPartition[]) => {
      await claims.promise;
      return new Map(tps.map((tp) => [tpKey(tp), 0]));
    },
    revoked: () => Promise.resolve(),
    batch: (batch: { records: readonly { offset: number }[] }) => {
      handled.push(...batch.records.map((r) => r.offset));
      return Promise.resolve();
    },
  };
  await consumer.start(["events"], listener as Any);
  fake.join({ events: [0, 1] });
  let heartbeats = 0;
  const waiting = fake.deliver("events", 1, [0], {}, () => (heartbeats++, Promise.resolve()));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(heartbeats >= 3, `${heartbeats} heartbeats in 200 ms of waiting`);
  claims.resolve();
  await waiting;
  await settle();
  assert.deepEqual(handled, [0]);
  const afterwards = heartbeats;
  await fake.deliver("events", 1, [1], {}, () => (heartbeats++, Promise.resolve()));
  assert.equal(heartbeats, afterwards, "a batch with no assignment pending heartbeats (kafkajs does after it)");

  // Another assignment held: kafkajs's heartbeat finds the group rebalancing and throws; kafkajs joins again once the
  // batch's eachBatch settles (with it, the batch is left unresolved and fetched again).
  const held = Promise.withResolvers<void>();
  listener.assigned = async (tps) => {
    await held.promise;
    return new Map(tps.map((tp) => [tpKey(tp), 0]));
  };
  fake.join({ events: [0, 1, 2] });
  const rebalancing = Object.assign(new Error("The group is rebalancing"), { type: "REBALANCE_IN_PROGRESS" });
  await assert.rejects(fake.deliver("events", 1, [2], {}, () => Promise.reject(rebalancing)), /rebalancing/);
  assert.deepEqual(handled, [0, 1], "the batch whose wait ended was handled");
  held.resolve();
  await consumer.stop();
});

Deno.test("a shorter session timeout reaches kafkajs, and an answered heartbeat confirms the assignment for less long", async () => {
  const member = async (sessionTimeoutMs?: number) => {
    const fake = fakeKafka();
    const consumer = new KafkaConsumer(fake.kafka as Any, { groupId: "group", sessionTimeoutMs }, silentLogger);
    await consumer.start(["t"], {
      assigned: (tps) => Promise.resolve(new Map(tps.map((tp) => [tpKey(tp), 0]))),
      revoked: () => Promise.resolve(),
      batch: () => Promise.resolve(),
    });
    fake.join({ t: [0] });
    await settle();
    return { fake, consumer };
  };
  const short = await member(3_000);
  const usual = await member();
  try {
    assert.deepEqual(
      [short, usual].map(({ fake }) => [fake.consumerConfig().sessionTimeout, fake.consumerConfig().heartbeatInterval]),
      [[3_000, 1_000], [10_000, 1_000]],
    );
    const since = performance.now();
    for (const { fake } of [short, usual]) {
      fake.heartbeat();
      fake.heartbeat();
    }
    assert.ok(short.consumer.assignmentConfirmedSince(since));
    // The coordinator drops a silent member a session timeout after the last heartbeat it received, which is before
    // its answer came back: three heartbeat intervals (3 s) would confirm a member a 3 s session may have lost.
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    assert.equal(short.consumer.assignmentConfirmedSince(since), false, "2.2 s on, a 3 s session confirms nothing");
    // Unless a loaded machine woke the test late, past the 3 s a 10 s session's heartbeats confirm for.
    if (performance.now() - since < 2_900) {
      assert.equal(usual.consumer.assignmentConfirmedSince(since), true, "2.2 s on, a 10 s session still confirms");
    }
  } finally {
    await short.consumer.stop();
    await usual.consumer.stop();
  }
});
