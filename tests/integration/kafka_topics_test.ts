/**
 * Topic creation at start-up on a real broker: engines creating their topics at the same moment (instances of a
 * deployment started together, or a busy broker) each wait until every new partition has a leader. kafkajs's own wait
 * (createTopics' waitForLeaders) gave up on the first UNKNOWN_TOPIC_OR_PARTITION, which the broker answers until its
 * metadata has the new topics: 35 of 36 such creations failed, and the engine's start-up with them (exit code 2).
 */
import assert from "node:assert/strict";
import { KafkaAdmin } from "../../engine/kafka_admin.ts";
import { createKafka } from "../../engine/kafka_client.ts";
import { silentLogger } from "../../engine/logger.ts";
import { onlyOn } from "../helpers/modes.ts";
import { services, uniqueName } from "../helpers/services.ts";

const TOPICS = ["events", "product-events", "analytics", "alerts", "recommendations", "events.dlq"];

onlyOn(
  "kafka",
  "topic creation: six engines creating their 12-partition topics at once all start, every partition led",
  async () => {
    const brokers = [services().kafkaBrokers];
    const admins = Array.from({ length: 6 }, (_, i) =>
      new KafkaAdmin(
        createKafka({ brokers, clientId: `topics-test-${i}`, logger: silentLogger, publishTimeoutMs: 5_000 }),
      ));
    const prefixes = admins.map(() => `${uniqueName("topics")}.`);
    try {
      const results = await Promise.allSettled(
        admins.map((admin, i) =>
          admin.ensureTopics(TOPICS.map((t) => ({ topic: prefixes[i] + t, partitions: 12 })), 1)
        ),
      );
      const failed = results.flatMap((r) => r.status === "rejected" ? [String(r.reason)] : []);
      assert.deepEqual(failed, [], `${failed.length} of ${admins.length} creations failed`);
      for (const [i, admin] of admins.entries()) {
        for (const topic of TOPICS) assert.equal(await admin.partitionCount(prefixes[i] + topic), 12, topic);
      }
    } finally {
      await Promise.all(admins.map((admin) => admin.close().catch(() => {})));
    }
  },
);
