/**
 * The walking skeleton on real Kafka and PostgreSQL: POST an event → Kafka (acks=all) →
 * consumer group → user actor → checkpoint (state + next offset, one transaction) → GET.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { startEngine } from "../../engine/engine.ts";
import { topicNames } from "../../engine/config.ts";
import { silentLogger } from "../../engine/logger.ts";
import { eventually, freshDatabase, services, testConfig } from "../helpers/services.ts";

const view = (userId: string, productId: string) => ({
  type: "product_viewed",
  userId,
  occurredAt: "2026-11-01T10:00:00.000Z",
  properties: { productId, price: 19.99, category: "shoes" },
});

Deno.test("a product_viewed event posted over HTTP reaches the user actor, its checkpoint and GET /v1/users/{id}", async () => {
  const db = await freshDatabase();
  const config = testConfig(db.url);
  const topics = topicNames(config);
  let engine = await startEngine(config, silentLogger);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const posted = await fetch(`${engine.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(view("alice", "sku-1")),
    });
    assert.equal(posted.status, 202);
    const accepted = await posted.json();
    assert.equal(accepted.accepted, 1);
    assert.equal(accepted.eventIds.length, 1);

    // The record is in Kafka, keyed by userId, with the server-assigned id.
    const kafka = new Kafka({ clientId: "test", brokers: [services().kafkaBrokers], logLevel: logLevel.NOTHING });
    const reader = kafka.consumer({ groupId: `${config.GROUP_ID}-reader` });
    await reader.connect();
    await reader.subscribe({ topic: topics.events, fromBeginning: true });
    const seen = Promise.withResolvers<{ key: string; value: Record<string, unknown>; partition: number }>();
    await reader.run({
      eachMessage: ({ message, partition }) => {
        seen.resolve({ key: message.key!.toString(), value: JSON.parse(message.value!.toString()), partition });
        return Promise.resolve();
      },
    });
    const record = await seen.promise;
    await reader.disconnect();
    assert.equal(record.key, "alice");
    assert.equal(record.value.eventId, accepted.eventIds[0]);
    assert.equal(record.value.type, "product_viewed");

    // The actor handled it and GET answers from live state.
    const user = await eventually("alice's state", async () => {
      const response = await fetch(`${engine.url}/v1/users/alice`);
      const body = await response.json();
      return response.status === 200 && body.productViews === 1 ? body : undefined;
    });
    assert.deepEqual(user.recentProducts, ["sku-1"]);
    assert.equal(user.source, "memory");

    // The checkpoint holds the state and the partition's next offset.
    const checkpoint = await eventually("the checkpoint", async () => {
      const [row] = await sql`
        select c.next_offset, s.state from partition_checkpoints c, actor_states s
         where c.topic = ${topics.events} and c.partition = ${record.partition}
           and s.kind = 'user' and s.key = 'alice' and c.next_offset > 0`;
      return row;
    });
    assert.equal(Number(checkpoint.next_offset), 1);
    assert.equal(checkpoint.state.productViews, 1);

    // A restarted engine resumes from the checkpoint: the first event is not counted twice.
    await engine.stop();
    engine = await startEngine(config, silentLogger);
    const second = await fetch(`${engine.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(view("alice", "sku-2")),
    });
    assert.equal(second.status, 202);
    await second.body?.cancel();
    const after = await eventually("alice's second view", async () => {
      const body = await (await fetch(`${engine.url}/v1/users/alice`)).json();
      return body.productViews >= 2 && body.source === "memory" ? body : undefined;
    });
    assert.equal(after.productViews, 2);
    assert.deepEqual(after.recentProducts, ["sku-2", "sku-1"]);

    const missing = await fetch(`${engine.url}/v1/users/nobody`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get("content-type"), "application/problem+json");
    await missing.body?.cancel();
  } finally {
    await engine.stop();
    await sql.end();
    await db.drop();
  }
});
