/**
 * The reference runner agrees with the real runtime: the REES46 sample run through ActorRuntime
 * on the in-memory log (user, product and global actors on their three topics) ends in the same
 * states as tests/helpers/fold.ts.
 */
import assert from "node:assert/strict";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { topicNames, topicSpecs } from "../../engine/config.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { ActorRuntime } from "../../engine/runtime.ts";
import { createDomainLogics, logicsByTopic } from "../../actors/domain.ts";
import { parseCsv, textChunks } from "../../actors/import/csv.ts";
import { importRees46 } from "../../actors/import/rees46.ts";
import type { StoredEvent } from "../../actors/events.ts";
import { fold } from "../helpers/fold.ts";

const PARTITIONS = 4;
const sample = new URL("../../../shared/data/rees46-2019-10-sample.csv", import.meta.url);

Deno.test("the user, product and global actors in ActorRuntime end in the states the reference fold computes", async () => {
  const events: StoredEvent[] = [];
  for await (const e of importRees46(parseCsv(textChunks((await Deno.open(sample)).readable)))) events.push(e);
  // Stock for the purchased products, so inventory goes through the product-events topic too.
  const orders = events.filter((e) => e.type === "order_completed");
  for (const e of orders) {
    const productId = e.properties.items[0].productId;
    const at = new Date(Date.parse(e.occurredAt) - 60_000).toISOString();
    events.push({
      eventId: crypto.randomUUID(),
      type: "inventory_updated",
      occurredAt: at,
      receivedAt: at,
      properties: { productId, stock: 10 },
    } as StoredEvent);
  }
  events.sort((a, b) => a.occurredAt.localeCompare(b.occurredAt));

  const logics = createDomainLogics();
  const topics = topicNames({ TOPIC_PREFIX: "" });
  const log = new MemoryLog();
  await log.ensureTopics(topicSpecs({ PARTITIONS }, topics));
  const store = new MemoryCheckpointStore();
  const consumer = log.consumer({ maxBatch: 64 });
  const runtime = new ActorRuntime({
    store,
    producer: log.producer(),
    consumer,
    topics,
    groupId: "g",
    owner: "test",
    logger: silentLogger,
    logics: logicsByTopic(topics, logics),
    checkpointIntervalMs: 20,
    checkpointMaxMessages: 200,
    idleClockMs: 1e12, // no wall-clock advance: only event time moves the clocks
    retryBackoffMs: { initial: 5, max: 20 },
  });
  runtime.start();
  await consumer.start([topics.events, topics.productEvents, topics.analytics], runtime);
  for (const e of events) {
    const inventory = e.type === "inventory_updated";
    const key = inventory ? e.properties.productId : e.userId;
    log.appendNow([{ topic: inventory ? topics.productEvents : topics.events, key, value: JSON.stringify(e) }]);
  }
  // Drained: every partition of the three topics is checkpointed at its end, twice in a row.
  const all = [topics.events, topics.productEvents, topics.analytics];
  let stable = 0;
  for (let i = 0; i < 1000 && stable < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const behind = log.topicPartitions(all).some((tp) =>
      (store.partitions.get(`g/${tp.topic}:${tp.partition}`)?.nextOffset ?? 0) < log.read(tp, 0).length
    );
    stable = behind ? 0 : stable + 1;
  }
  await consumer.stop();
  await runtime.stop();
  assert.equal(stable, 2, "the runtime drained");

  const reference = await fold(events, { logics, partitions: PARTITIONS });
  assert.equal(
    reference.users.size,
    new Set(events.filter((e) => e.type !== "inventory_updated").map((e) => e.userId)).size,
  );
  const stored = async (kind: string, key: string) => (await store.read(kind, key))?.state;
  for (const userId of reference.users.keys()) {
    assert.deepEqual(await stored("user", userId), reference.persisted("user", userId), userId);
  }
  // Facts of different users reach a product in another order: everything counted must agree;
  // only the dedupe memory (offsets) and how many recommendations were sent may differ.
  const product = (value: unknown) => {
    const { dedupe: _d, recommendationsSent: _r, eventCount: _e, ...rest } = value as Record<string, unknown>;
    return rest;
  };
  for (const productId of reference.products.keys()) {
    assert.deepEqual(
      product(await stored("product", productId)),
      product(reference.persisted("product", productId)),
      productId,
    );
  }
  const minutes = (value: unknown) => (value as { minutes: unknown[] }).minutes;
  assert.deepEqual(minutes(await stored("global", "global")), minutes(reference.persisted("global", "global")));
  const alerts = (records: { type: string; subject: { id: string } }[]) =>
    records.map((a) => `${a.type}:${a.subject.id}`).sort();
  const published = log.all(topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(
    alerts(published.filter((a) => a.subject.kind !== "global")),
    alerts(reference.alerts.filter((a) => a.subject.kind !== "global")),
  );
  assert.ok(reference.alerts.some((a) => a.type === "low_inventory"), "the sample exercises stock alerts");
});
