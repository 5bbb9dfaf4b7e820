/** What the engine asks Kafka for when it creates its topics (the broker's answers: tests/integration). */
import assert from "node:assert/strict";
import type { Kafka } from "kafkajs";
import { KafkaAdmin, minInsyncReplicas } from "../../engine/kafka_admin.ts";

/** A kafkajs client whose admin knows `existing` topics and records the topics it is asked to create. */
function recordingKafka(existing: string[]) {
  const created: unknown[] = [];
  const admin = {
    connect: () => Promise.resolve(),
    listTopics: () => Promise.resolve(existing),
    createTopics: (request: { topics: unknown[] }) => (created.push(...request.topics), Promise.resolve(true)),
    // Every partition led at once: what the broker's metadata says once the topics exist.
    fetchTopicMetadata: ({ topics }: { topics: string[] }) =>
      Promise.resolve({ topics: topics.map((name) => ({ name, partitions: [{ partitionId: 0, leader: 1 }] })) }),
  };
  return { kafka: { admin: () => admin } as unknown as Kafka, created };
}

Deno.test("topics the engine creates ask for two in-sync replicas once there are three, so that acks=all means two disks", async () => {
  for (const [replicationFactor, expected] of [[1, "1"], [2, "1"], [3, "2"], [5, "2"]] as const) {
    const { kafka, created } = recordingKafka(["events"]);
    await new KafkaAdmin(kafka).ensureTopics(
      [{ topic: "events", partitions: 12 }, { topic: "alerts", partitions: 3 }],
      replicationFactor,
    );
    // Kafka's default of 1 let the leader alone acknowledge an append whose other replicas had fallen behind.
    assert.deepEqual(created, [{
      topic: "alerts",
      numPartitions: 3,
      replicationFactor,
      configEntries: [{ name: "min.insync.replicas", value: expected }],
    }], `replication factor ${replicationFactor}`);
    assert.equal(minInsyncReplicas(replicationFactor), Number(expected));
  }
});
