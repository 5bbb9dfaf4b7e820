/**
 * KafkaConsumer against a stand-in for kafkajs: a stop cuts a join in progress short (a signal while the group waits
 * for a member that stopped answering), which crashes kafkajs's consumer; kafkajs restarted it and joined the group
 * again after the stop, unless its `restartOnFailure` refuses.
 */
import assert from "node:assert/strict";
import type { ConsumerConfig, Kafka } from "kafkajs";
import { KafkaConsumer } from "../../engine/kafka_consumer.ts";
import { silentLogger } from "../../engine/logger.ts";

Deno.test("once stopping, kafkajs's restart after a crash is refused; before, it is allowed", async () => {
  let config: ConsumerConfig | undefined;
  const consumer = { disconnect: () => Promise.resolve() };
  const kafka = {
    consumer: (c: ConsumerConfig) => (config = c, consumer),
    admin: () => ({}),
  } as unknown as Kafka;
  const member = new KafkaConsumer(kafka, { groupId: "g" }, silentLogger);
  const restartOnFailure = config?.retry?.restartOnFailure;
  assert.ok(restartOnFailure, "kafkajs restarts a crashed consumer whatever happens");
  assert.equal(await restartOnFailure(new Error("broker gone")), true);
  await member.stop();
  assert.equal(await restartOnFailure(new Error("Closed connection")), false);
  assert.equal(config?.retry?.retries, 5, "kafkajs's default retries for a consumer");
});
