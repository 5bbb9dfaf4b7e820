/**
 * Kafka lost the engine's topics (its data volume lost, or the topics deleted and created again) while PostgreSQL kept
 * the checkpoints: the new log starts at offset 0, below every checkpoint, and the events accepted into it are handled.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { topicNames } from "../../engine/config.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase, services, testConfig } from "../helpers/services.ts";

async function post(url: string, userId: string, count: number): Promise<void> {
  const events = Array.from({ length: count }, () => ({
    type: "page_viewed",
    eventId: crypto.randomUUID(),
    userId,
    occurredAt: new Date().toISOString(),
    properties: { url: "/" },
  }));
  const response = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.text());
}

async function eventCount(url: string, userId: string): Promise<number | undefined> {
  const response = await fetch(`${url}/v1/users/${userId}`);
  const body = await response.json();
  return response.status === 200 ? body.eventCount : undefined;
}

onlyOn("kafka", {
  name: "topics deleted and created again under kept checkpoints: the events of the new log are handled, not skipped",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url, { PARTITIONS: "1", CHECKPOINT_INTERVAL_MS: "100" });
    const topics = topicNames(config);
    let engine = await startEngine(config, silentLogger);
    try {
      await post(engine.url, "u1", 20);
      await eventually("20 events handled", async () => (await eventCount(engine.url, "u1")) === 20 || undefined);
      await engine.stop();
      const kafka = new Kafka({ brokers: services().kafkaBrokers.split(","), logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      try {
        const ours = Object.values(topics);
        await admin.deleteTopics({ topics: ours });
        await eventually("topics deleted", async () => {
          const left = new Set(await admin.listTopics());
          return ours.every((t) => !left.has(t)) || undefined;
        });
      } finally {
        await admin.disconnect();
      }
      // The engine creates its topics again; the user's checkpointed state (20 events, partition at offset 20) stays.
      engine = await eventually(
        "engine started on the new topics",
        async () => {
          try {
            return await startEngine(config, silentLogger);
          } catch {
            return undefined; // the broker may still be deleting the old topics
          }
        },
        30_000,
        500,
      );
      await post(engine.url, "u1", 3);
      // Offsets 0-2 of the new log were taken for handled (below the checkpoint's 20) and never reached the actor.
      await eventually("the 3 events of the new log handled", async () => {
        return (await eventCount(engine.url, "u1")) === 23 || undefined;
      }, 15_000);
    } finally {
      await engine.stop();
      await db.drop();
    }
  },
});
