/**
 * Kafka retention overtaking a stopped engine: records after the engine's checkpoint are deleted
 * (AdminClient deleteTopicRecords, as segment retention would) before it restarts. The engine resumes at
 * the first record kept, counts the loss in `engine_log_records_skipped_total`, and does not loop
 * seeking back to records that no longer exist.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { topicNames } from "../../engine/config.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase, services, testConfig } from "../helpers/services.ts";

const USER = "retained";

function view(i: number): Record<string, unknown> {
  const at = new Date(Date.now() - 60_000 + i).toISOString();
  return {
    eventId: crypto.randomUUID(),
    type: "product_viewed",
    userId: USER,
    occurredAt: at,
    receivedAt: at,
    properties: { productId: `sku-${i}`, price: 1 },
  };
}

onlyOn("kafka", {
  name: "records deleted by Kafka retention before the engine handled them are skipped and counted, without a loop",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url);
    const topic = topicNames(config).events;
    const partition = partitionForKey(USER, config.PARTITIONS);
    const kafka = new Kafka({ brokers: [services().kafkaBrokers], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
    let engine = await startEngine(config, silentLogger);
    try {
      const posted = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(Array.from({ length: 10 }, (_, i) => view(i))),
      });
      assert.equal(posted.status, 202);
      await eventually("ten views", async () => {
        const body = await (await fetch(`${engine.url}/v1/users/${USER}`)).json();
        return body.productViews === 10 ? true : undefined;
      });
      await engine.stop();

      // While the engine is down: ten more views (offsets 10–19), then retention deletes 10–14.
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: 10 }, (_, i) => ({ key: USER, value: JSON.stringify(view(10 + i)), partition })),
      });
      await admin.fetchTopicMetadata({ topics: [topic] }); // deleteTopicRecords needs it loaded
      await admin.deleteTopicRecords({ topic, partitions: [{ partition, offset: "15" }] });
      const [low] = (await admin.fetchTopicOffsets(topic)).filter((o) => o.partition === partition);
      assert.equal(low.low, "15");

      engine = await startEngine(config, silentLogger);
      const user = await eventually("the views kept after retention", async () => {
        const body = await (await fetch(`${engine.url}/v1/users/${USER}`)).json();
        return body.productViews === 15 ? body : undefined;
      });
      assert.equal(user.source, "memory");
      const metrics = await (await fetch(`${engine.url}/metrics`)).text();
      const skipped = metrics.match(new RegExp(`^engine_log_records_skipped_total\\{topic="${topic}"\\} (\\d+)$`, "m"));
      assert.equal(skipped?.[1], "5", "the five deleted records are counted as skipped");
    } finally {
      await engine.stop();
      await Promise.all([admin.disconnect(), producer.disconnect()]);
      await db.drop();
    }
  },
});
