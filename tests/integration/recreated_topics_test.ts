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

async function post(url: string, userId: string, count: number, productId?: string): Promise<void> {
  const events = Array.from({ length: count }, () => ({
    type: productId === undefined ? "page_viewed" : "product_viewed",
    eventId: crypto.randomUUID(),
    userId,
    occurredAt: new Date().toISOString(),
    properties: productId === undefined ? { url: "/" } : { productId },
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

async function views(url: string, productId: string): Promise<number | undefined> {
  const response = await fetch(`${url}/v1/products/${productId}`);
  const body = await response.json();
  return response.status === 200 ? body.views : undefined;
}

/** Deletes the engine's topics (the engine stopped) and waits until the broker no longer lists them. */
/** Starts an engine once the broker lets it create its topics again (it may still be deleting the old ones). */
function startOnNewTopics(config: Parameters<typeof startEngine>[0]): ReturnType<typeof startEngine> {
  return eventually(
    "engine started on the new topics",
    async () => {
      try {
        return await startEngine(config, silentLogger);
      } catch {
        return undefined;
      }
    },
    30_000,
    500,
  );
}

async function deleteTopics(names: readonly string[]): Promise<void> {
  const kafka = new Kafka({ brokers: services().kafkaBrokers.split(","), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [...names] });
    await eventually("topics deleted", async () => {
      const left = new Set(await admin.listTopics());
      return names.every((t) => !left.has(t)) || undefined;
    });
  } finally {
    await admin.disconnect();
  }
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
      engine = await startOnNewTopics(config);
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

onlyOn("kafka", {
  name:
    "topics deleted and created again: the product facts of the new log count, not taken for replays of the old one's",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url, { PARTITIONS: "1", CHECKPOINT_INTERVAL_MS: "100" });
    let engine = await startEngine(config, silentLogger);
    try {
      // One request at a time, each handled before the next: the product partition checkpoints past several records.
      for (let n = 1; n <= 8; n++) {
        await post(engine.url, "u1", 1, "sku-1");
        await eventually(`view ${n} counted`, async () => (await views(engine.url, "sku-1")) === n || undefined);
      }
      await engine.stop();
      await deleteTopics(Object.values(topicNames(config)));
      engine = await startOnNewTopics(config);
      await post(engine.url, "u1", 3, "sku-1");
      // The new log's views have the old log's first offsets: their facts had the ids of views 1-3, and were dropped.
      await eventually("the 3 views of the new log counted", async () => {
        return (await views(engine.url, "sku-1")) === 11 || undefined;
      }, 15_000);
    } finally {
      await engine.stop();
      await db.drop();
    }
  },
});
