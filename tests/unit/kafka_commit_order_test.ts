/**
 * KafkaConsumer.commit() against a stand-in for kafkajs: kafkajs retries a failed commit (for about 25 s), so a commit
 * made while the broker or the group coordinator is briefly away can land after the later checkpoints' commits.
 */
import assert from "node:assert/strict";
import type { Kafka } from "kafkajs";
import { KafkaConsumer } from "../../engine/kafka_consumer.ts";
import { silentLogger } from "../../engine/logger.ts";

Deno.test("commits of a partition land in the order the checkpoints asked for them: a retried one is not overtaken", async () => {
  /** The group's committed offset per partition, as the broker applies the commits. */
  const committed = new Map<number, number>();
  const inFlight: (() => void)[] = [];
  const consumer = {
    commitOffsets: (offsets: { partition: number; offset: string }[]) => {
      const { promise, resolve } = Promise.withResolvers<void>();
      inFlight.push(() => {
        for (const { partition, offset } of offsets) committed.set(partition, Number(offset));
        resolve();
      });
      return promise;
    },
  };
  const kafka = { consumer: () => consumer, admin: () => ({}) } as unknown as Kafka;
  const member = new KafkaConsumer(kafka, { groupId: "g" }, silentLogger);
  const tp = { topic: "events", partition: 0 };
  // Three checkpoints in a row while the first commit is being retried.
  const all = Promise.all([member.commit(tp, 100), member.commit(tp, 200), member.commit(tp, 300)]);
  let settled = false;
  all.then(() => (settled = true));
  while (!settled) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    // What is in flight lands newest first: the oldest was the one retried longest.
    for (const land of inFlight.splice(0).reverse()) land();
  }
  await all;
  assert.equal(committed.get(0), 300, "the group's committed offset went back to an older checkpoint's");
});
