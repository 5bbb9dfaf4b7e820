/**
 * The Kafka consumer's lanes (engine/kafka_log.ts) on a real broker: kafkajs fetches again only
 * when every batch of its last fetch is handled, so the adapter hands batches off, one lane per
 * partition. A partition whose handler is stuck must not hold up the others; its own records must
 * still arrive once each and in order when it is released; a seek from inside a handler (a
 * rewind) drops what was queued behind it and re-reads from the seek; and a handler that throws
 * gets its batch again, after a backoff.
 */
import assert from "node:assert/strict";
import { createKafka, KafkaAdmin, KafkaConsumer } from "../../engine/kafka_log.ts";
import type { PartitionListener, RecordBatch, TopicPartition } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually, services, uniqueName } from "../helpers/services.ts";

/** A listener that records every offset it handles per partition; `hold` blocks a partition's handler. */
class Recorder implements PartitionListener {
  readonly handled = new Map<number, number[]>();
  readonly holds = new Map<number, PromiseWithResolvers<void>>();
  /** The next this many batches throw before handling anything. */
  failures = 0;

  assigned(partitions: readonly TopicPartition[]): Promise<Map<string, number>> {
    return Promise.resolve(new Map(partitions.map((tp) => [`${tp.topic}:${tp.partition}`, 0])));
  }

  revoked(): Promise<void> {
    return Promise.resolve();
  }

  async batch(batch: RecordBatch): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error("handler failed");
    }
    const list = this.handled.get(batch.partition) ?? [];
    list.push(...batch.records.map((r) => r.offset));
    this.handled.set(batch.partition, list);
    await this.holds.get(batch.partition)?.promise;
  }

  hold(partition: number): () => void {
    const gate = Promise.withResolvers<void>();
    this.holds.set(partition, gate);
    return () => {
      this.holds.delete(partition);
      gate.resolve();
    };
  }

  count(partition: number): number {
    return this.handled.get(partition)?.length ?? 0;
  }
}

async function setUp(name: string) {
  const kafka = createKafka({
    brokers: [services().kafkaBrokers],
    clientId: name,
    logger: silentLogger,
    publishTimeoutMs: 10_000,
  });
  const topic = uniqueName(name);
  const admin = new KafkaAdmin(kafka);
  await admin.ensureTopics([{ topic, partitions: 2 }], 1);
  await admin.close();
  const producer = kafka.producer();
  await producer.connect();
  const send = async (partition: number, count: number) => {
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: String(i), partition })),
    });
  };
  const consumer = new KafkaConsumer(kafka, { groupId: uniqueName("group"), maxWaitTimeMs: 50 }, silentLogger);
  return { topic, send, consumer, close: () => producer.disconnect() };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

onlyOn("kafka", {
  name: "a partition stuck in its handler does not hold up the others, and gets its records once each, in order",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { topic, send, consumer, close } = await setUp("lanes");
    const recorder = new Recorder();
    const release = recorder.hold(0);
    try {
      await send(0, 1);
      await consumer.start([topic], recorder);
      await eventually("partition 0's first batch", () => Promise.resolve(recorder.count(0) === 1 || undefined));

      // Partition 0 is stuck; partition 1 goes on, one send after another.
      for (let round = 0; round < 5; round++) {
        await send(1, 10);
        await send(0, 10);
        await eventually(
          `partition 1, round ${round}`,
          () => Promise.resolve(recorder.count(1) === 10 * (round + 1) || undefined),
        );
      }
      assert.deepEqual(recorder.handled.get(1), range(0, 50));
      assert.deepEqual(recorder.handled.get(0), [0], "nothing more of partition 0 while its first batch is handled");

      release();
      await eventually("partition 0 after its release", () => Promise.resolve(recorder.count(0) >= 51 || undefined));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(recorder.handled.get(0), range(0, 51));
    } finally {
      release(); // a failed assertion must not leave the consumer stuck in the handler
      await consumer.stop();
      await close();
    }
  },
});

onlyOn("kafka", {
  name: "a seek from inside a handler drops the batches queued behind it and re-reads from the seek",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { topic, send, consumer, close } = await setUp("seek");
    const recorder = new Recorder();
    const release = recorder.hold(0);
    try {
      await send(0, 5); // offsets 0–4
      await consumer.start([topic], recorder);
      await eventually("the first batch", () => Promise.resolve(recorder.count(0) === 5 || undefined));
      await send(0, 5); // offsets 5–9: fetched and queued behind the stuck batch
      await eventually(
        "the second batch queued",
        () => Promise.resolve(consumer.inFlight({ topic, partition: 0 }) === 2 || undefined),
      );
      // The stuck handler rewinds to offset 3 (as a failed checkpoint does), then finishes.
      consumer.seek({ topic, partition: 0 }, 3);
      release();
      await eventually("the records from the seek on", () => Promise.resolve(recorder.count(0) >= 12 || undefined));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(recorder.handled.get(0), [...range(0, 5), ...range(3, 10)]);
    } finally {
      release(); // a failed assertion must not leave the consumer stuck in the handler
      await consumer.stop();
      await close();
    }
  },
});

onlyOn("kafka", {
  name: "a batch whose handler throws is read again after a backoff, and nothing after it is lost",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { topic, send, consumer, close } = await setUp("retry");
    const recorder = new Recorder();
    recorder.failures = 3; // waits of 100, 200 and 400 ms before the fourth attempt
    try {
      await send(0, 5);
      const started = Date.now();
      await consumer.start([topic], recorder);
      await eventually(
        "the batch, once the handler stops failing",
        () => Promise.resolve(recorder.count(0) >= 5 || undefined),
      );
      assert.ok(Date.now() - started >= 700, "the retries were spaced by the backoff");
      await send(0, 5);
      await eventually("the records after it", () => Promise.resolve(recorder.count(0) >= 10 || undefined));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(recorder.handled.get(0), range(0, 10));
    } finally {
      await consumer.stop();
      await close();
    }
  },
});
