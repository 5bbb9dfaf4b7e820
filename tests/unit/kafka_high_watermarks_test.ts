/** The high watermark lister: a READ_UNCOMMITTED kafkajs cluster, one request shared by concurrent asks of a topic. */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { KafkaClientMismatchError, LogUnavailableError } from "../../engine/errors.ts";
import { KafkaAdmin } from "../../engine/kafka_admin.ts";
import { HighWatermarks, type OffsetCluster, readUncommittedCluster } from "../../engine/kafka_high_watermarks.ts";

Deno.test("kafkajs's private cluster factory is there and makes a cluster that lists offsets READ_UNCOMMITTED", () => {
  const kafka = new Kafka({ brokers: ["127.0.0.1:9"], logLevel: logLevel.NOTHING });
  assert.equal(readUncommittedCluster(kafka).isolationLevel, 0);
});

Deno.test("a kafkajs without the private cluster factory is refused with a typed error naming what is missing", () => {
  assert.throws(
    () => readUncommittedCluster({} as Kafka),
    (error: unknown) =>
      error instanceof KafkaClientMismatchError && error.code === "kafka_client_mismatch" &&
      error.message.includes("private:Kafka:createCluster"),
  );
});

/** A cluster answering list-offsets with `ends` once `release` is called, counting requests and metadata refreshes. */
function cluster(ends: Record<number, number>) {
  const counts = { listed: 0, connected: 0, refreshed: 0 };
  let fail = false;
  const waiting: (() => void)[] = [];
  const fake: OffsetCluster = {
    connect: () => (counts.connected++, Promise.resolve()),
    disconnect: () => Promise.resolve(),
    addTargetTopic: () => Promise.resolve(),
    refreshMetadata: () => (counts.refreshed++, Promise.resolve()),
    refreshMetadataIfNecessary: () => Promise.resolve(),
    findTopicPartitionMetadata: () => Object.keys(ends).map((p) => ({ partitionId: Number(p) })),
    fetchTopicsOffset: async (topics) => {
      counts.listed++;
      await new Promise<void>((resolve) => waiting.push(resolve));
      if (fail) throw new Error("This server is not the leader for that topic-partition");
      return topics.map(({ topic, partitions }) => ({
        topic,
        partitions: partitions.map(({ partition }) => ({ partition, offset: String(ends[partition]) })),
      }));
    },
  };
  const release = async () => {
    while (waiting.length === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    waiting.splice(0).forEach((resolve) => resolve());
  };
  return { fake, counts, release, failNext: (value: boolean) => void (fail = value) };
}

Deno.test("asks of one topic while its request is in flight share it; a later ask sends another", async () => {
  const { fake, counts, release } = cluster({ 0: 5, 1: 7 });
  const ends = new HighWatermarks(() => fake);
  const asks = [ends.of("events"), ends.of("events"), ends.of("events")];
  await release();
  const answers = await Promise.all(asks);
  assert.equal(counts.listed, 1, "one list-offsets request for three concurrent asks");
  for (const answer of answers) assert.deepEqual([...answer], [[0, 5], [1, 7]]);
  const later = ends.of("events");
  await release();
  await later;
  assert.equal(counts.listed, 2, "an ask after the answer reads the log again");
  assert.equal(counts.connected, 1);
});

Deno.test("a failed request fails every ask sharing it, and the next one reads the metadata afresh first", async () => {
  const { fake, counts, release, failNext } = cluster({ 0: 5 });
  const ends = new HighWatermarks(() => fake);
  failNext(true);
  const asks = [ends.of("events"), ends.of("events")];
  await release();
  for (const ask of asks) await assert.rejects(ask, /not the leader/);
  failNext(false);
  const next = ends.of("events");
  await release();
  assert.deepEqual([...await next], [[0, 5]]);
  assert.equal(counts.refreshed, 1, "metadata read afresh after the failure (a leader may have moved)");
});

Deno.test("an ask the broker does not answer (kafkajs retrying an unreachable one) fails at its deadline; later asks share the request", async () => {
  // kafkajs retries an unreachable broker for about 25 s; the housekeeping round a stop waits for waited as long.
  const { fake, counts, release } = cluster({ 0: 5 });
  const ends = new HighWatermarks(() => fake, 50);
  await assert.rejects(
    ends.of("events"),
    (error: unknown) => error instanceof LogUnavailableError && /not listed within 50 ms/.test(error.message),
  );
  await assert.rejects(ends.of("events"), LogUnavailableError);
  assert.equal(counts.listed, 1, "no second request while the first is still retrying");
  await release(); // answered, too late for those asks
  await new Promise((resolve) => setTimeout(resolve, 0));
  const next = ends.of("events");
  await release();
  assert.deepEqual([...await next], [[0, 5]]);
  assert.equal(counts.listed, 2, "an ask after the request settled sends another");
});

Deno.test("a client without the private factory fails each ask for an end offset with the reason, not the constructor", async () => {
  const ends = new HighWatermarks(() => readUncommittedCluster({} as Kafka));
  await assert.rejects(ends.of("events"), KafkaClientMismatchError);
  await assert.rejects(ends.of("events"), KafkaClientMismatchError);
});

Deno.test("KafkaAdmin.earliestOffset() lists the log start offsets in one request, not the admin's two", async () => {
  // kafkajs's admin.fetchTopicOffsets() lists the ends, then the starts (src/admin/index.js): two list-offsets round
  // trips where the start alone is wanted. A stand-in admin records that it was used; the cluster counts requests.
  const starts: Record<number, number> = { 0: 3, 1: 9 };
  const asked: boolean[] = [];
  const adminCalls: string[] = [];
  const fake: OffsetCluster = {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    addTargetTopic: () => Promise.resolve(),
    refreshMetadata: () => Promise.resolve(),
    refreshMetadataIfNecessary: () => Promise.resolve(),
    findTopicPartitionMetadata: () => Object.keys(starts).map((p) => ({ partitionId: Number(p) })),
    fetchTopicsOffset: (topics) => {
      asked.push(...topics.map((t) => t.fromBeginning));
      return Promise.resolve(topics.map(({ topic, fromBeginning, partitions }) => ({
        topic,
        partitions: partitions.map(({ partition }) => ({
          partition,
          offset: String(fromBeginning ? starts[partition] : 100),
        })),
      })));
    },
  };
  const admin = new Proxy({}, {
    get: (_, name) => (...args: unknown[]) => {
      adminCalls.push(String(name));
      return name === "fetchTopicOffsets"
        ? Promise.resolve([{ partition: 1, offset: "100", high: "100", low: "9" }])
        : Promise.resolve(args.length === 0 ? undefined : []);
    },
  });
  const kafka = { admin: () => admin, [Symbol("private:Kafka:createCluster")]: () => fake } as unknown as Kafka;
  const log = new KafkaAdmin(kafka);
  assert.equal(await log.earliestOffset({ topic: "events", partition: 1 }), 9);
  assert.deepEqual(adminCalls.filter((c) => c === "fetchTopicOffsets"), [], "the admin's two-request listing");
  assert.deepEqual(asked, [true], "one list-offsets request, for the starts");
  await assert.rejects(log.earliestOffset({ topic: "events", partition: 7 }), /no offsets for events:7/);
  await log.close();
});
