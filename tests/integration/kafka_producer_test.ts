/**
 * The engine's Kafka producer and admin against a real broker: requests sized as the broker counts
 * bytes (headers and UTF-8 included), and an admin connection that recovers after a failed connect.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { deadLetter } from "../../engine/dead_letter.ts";
import { LogUnavailableError, ValidationError } from "../../engine/errors.ts";
import { KafkaAdmin } from "../../engine/kafka_admin.ts";
import { createKafka } from "../../engine/kafka_client.ts";
import { KafkaConsumer } from "../../engine/kafka_consumer.ts";
import { KafkaProducer } from "../../engine/kafka_producer.ts";
import type { LogRecord, OutgoingRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { onlyOn } from "../helpers/modes.ts";
import { services, uniqueName } from "../helpers/services.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

/** A fresh topic (one partition unless told) and a producer of the engine's, with the client it was made from. */
async function producerOnNewTopic(partitions = 1) {
  const options = {
    brokers: [services().kafkaBrokers],
    clientId: uniqueName("p"),
    logger: silentLogger,
    publishTimeoutMs: 10_000,
  };
  const kafka = createKafka(options);
  const topic = uniqueName("topic");
  const admin = new KafkaAdmin(kafka);
  await admin.ensureTopics([{ topic, partitions }], 1);
  await admin.close();
  return { topic, producer: new KafkaProducer(kafka, options), kafka };
}

onlyOn("kafka", {
  name: "appends of large headers or non-ASCII text stay under the broker's message.max.bytes per request",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { topic, producer } = await producerOnNewTopic();
    try {
      // A checkpoint's burst of dead letters: 1,500 records whose error message (in a header) is 900
      // characters. Counted without headers they made one 150 KB request of over 1 MiB, refused every time.
      const message = `field 'items' is invalid: ${"x".repeat(900)}`;
      const deadLetters: OutgoingRecord[] = Array.from({ length: 1_500 }, (_, offset) => {
        const source: LogRecord = {
          topic: "events",
          partition: 3,
          offset,
          key: null,
          value: new TextEncoder().encode(`{"bad":${offset}}`),
          headers: {},
          timestamp: 0,
        };
        return { ...deadLetter(topic, source, new ValidationError(message)), partition: 0 };
      });
      await producer.append(deadLetters, { timeoutMs: 60_000 });
      // 3,000 values of 150 '€': 450,000 UTF-16 units, 1.35 MB of UTF-8.
      const euros = Array.from(
        { length: 3_000 },
        (_, i) => ({ topic, key: `k${i}`, value: "€".repeat(150), partition: 0 }),
      );
      await producer.append(euros, { timeoutMs: 60_000 });
    } finally {
      await producer.close();
    }
  },
});

onlyOn("kafka", {
  name: "a consumer's admin connects again after a failed first connect",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const [hostname, port] = services().kafkaBrokers.split(":");
    const topic = uniqueName("admin");
    const setup = new KafkaAdmin(new Kafka({ brokers: [services().kafkaBrokers], logLevel: logLevel.NOTHING }));
    await setup.ensureTopics([{ topic, partitions: 1 }], 1);
    await setup.close();
    const proxy = startTcpProxy({ hostname, port: Number(port) });
    const kafka = new Kafka({
      brokers: [`127.0.0.1:${proxy.port}`],
      logLevel: logLevel.NOTHING,
      retry: { retries: 1, initialRetryTime: 50 },
      connectionTimeout: 300,
    });
    const consumer = new KafkaConsumer(kafka, { groupId: uniqueName("g") }, silentLogger);
    try {
      proxy.cut(); // the broker is unreachable the first time the consumer asks
      await assert.rejects(consumer.earliestOffset({ topic, partition: 0 }));
      await assert.rejects(consumer.endOffset({ topic, partition: 0 }));
      proxy.restore();
      // The failed connect was kept and every later call failed with it, for the life of the process.
      assert.equal(await consumer.earliestOffset({ topic, partition: 0 }), 0);
      // The end offsets' own connection (read_uncommitted: engine/kafka_high_watermarks.ts) too.
      assert.equal(await consumer.endOffset({ topic, partition: 0 }), 0);
    } finally {
      await consumer.stop().catch(() => {});
      proxy.close();
    }
  },
});

onlyOn("kafka", {
  name:
    "a consumer reads every partition's end offset of a topic in one request (the analytics idle clock's sources), and a partition's start",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { topic, producer, kafka } = await producerOnNewTopic(3);
    const consumer = new KafkaConsumer(kafka, { groupId: uniqueName("g") }, silentLogger);
    try {
      await producer.append([0, 0, 2, 0].map((partition) => ({ topic, key: "k", value: "v", partition })));
      const ends = await consumer.endOffsets(topic);
      assert.deepEqual([0, 1, 2].map((p) => ends.get(p)), [3, 0, 1]);
      // Retention (here DeleteRecords) moves a partition's start: where a worker resumes past records it lost.
      const admin = kafka.admin();
      await admin.connect();
      await admin.fetchTopicMetadata({ topics: [topic] }); // deleteTopicRecords needs it loaded
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: "2" }] });
      await admin.disconnect();
      assert.equal(await consumer.earliestOffset({ topic, partition: 0 }), 2);
      assert.equal(await consumer.endOffset({ topic, partition: 0 }), 3);
      assert.equal(await consumer.earliestOffset({ topic, partition: 1 }), 0);
    } finally {
      await producer.close();
      await consumer.stop().catch(() => {});
    }
  },
});

onlyOn("kafka", {
  name: "an append to a partition its topic does not have is refused, not acknowledged (kafkajs sends nothing for it)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // A fact bundle goes to the partition the engine computed with the partition count it read at start-up, and
    // `dlq replay` sends a bundle back to the partition it came from: a topic created again with fewer partitions, or
    // a producer whose metadata predates partitions added since, has no such partition. kafkajs leaves it out of its
    // requests and resolves the send as acknowledged.
    const { topic, producer, kafka } = await producerOnNewTopic(2);
    try {
      await assert.rejects(
        producer.append([{ topic, key: "k", value: "lost", partition: 2 }]),
        (error: unknown) => error instanceof LogUnavailableError && /partition 2/.test(error.message),
      );
      await assert.rejects(
        producer.append([
          { topic, key: "a", value: "kept", partition: 0 },
          { topic, key: "b", value: "lost", partition: 5 },
        ]),
        LogUnavailableError,
      );
      await producer.append([{ topic, key: "k", value: "stored", partition: 1 }]);
      const stored = new KafkaConsumer(kafka, { groupId: uniqueName("g") }, silentLogger);
      try {
        assert.deepEqual([...await stored.endOffsets(topic)].sort(), [[0, 1], [1, 1]]);
      } finally {
        await stored.stop().catch(() => {});
      }
    } finally {
      await producer.close();
    }
  },
});
