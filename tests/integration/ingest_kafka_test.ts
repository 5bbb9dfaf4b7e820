/**
 * Ingestion on real Kafka: a mixed batch lands on the right topics, keys and partitions, in order
 * per key; and with the broker down requests get 503 + Retry-After with nothing reported accepted,
 * then ingestion recovers by itself when the broker returns (no engine restart).
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { type Config, topicNames } from "../../engine/config.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { BUNDLE_HEADER } from "../../engine/fact_bundle.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { startPrivateBroker } from "../helpers/kafka_broker.ts";
import { eventually, freshDatabase, testConfig } from "../helpers/services.ts";
import { onlyOn } from "../helpers/modes.ts";

const PARTITIONS = 3;
const PUBLISH_TIMEOUT_MS = 1_500;
const READ_TIMEOUT_MS = 20_000;

/** A record as read back from Kafka. */
interface ReadRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string;
  // deno-lint-ignore no-explicit-any
  readonly value: Record<string, any>;
}

/** Reads `topics` from the beginning with a throwaway group until `enough` says so. */
async function readBack(
  config: Config,
  topics: string[],
  enough: (records: readonly ReadRecord[]) => boolean,
): Promise<ReadRecord[]> {
  const kafka = new Kafka({
    clientId: "ingest-test-reader",
    brokers: [config.KAFKA_BROKERS!],
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `${config.GROUP_ID}-reader-${crypto.randomUUID()}` });
  const records: ReadRecord[] = [];
  const done = Promise.withResolvers<void>();
  try {
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        // Fact bundles (binary) that user checkpoints write to product-events are not ingested events.
        if (message.headers?.[BUNDLE_HEADER] !== undefined) return Promise.resolve();
        records.push({
          topic,
          partition,
          offset: Number(message.offset),
          key: message.key!.toString(),
          value: JSON.parse(message.value!.toString()),
        });
        if (enough(records)) done.resolve();
        return Promise.resolve();
      },
    });
    const timer = setTimeout(() => done.reject(new Error(`only ${records.length} records arrived`)), READ_TIMEOUT_MS);
    await done.promise.finally(() => clearTimeout(timer));
  } finally {
    await consumer.disconnect();
  }
  return records;
}

function post(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Interleaved events of three users and two products: every type, several per key. */
function mixedBatch(): Record<string, unknown>[] {
  const batch: Record<string, unknown>[] = [];
  const users = ["ana", "bo", "chen"];
  for (const [round, stock] of [[1, 40], [2, 7]]) {
    for (const userId of users) {
      const productId = `sku-${userId}`;
      batch.push(
        { type: "page_viewed", userId, properties: { url: `/r${round}` } },
        { type: "search_performed", userId, properties: { query: `q${round}` } },
        { type: "product_viewed", userId, properties: { productId, price: 10 } },
        { type: "product_added_to_cart", userId, properties: { productId, price: 10 } },
        { type: "product_removed_from_cart", userId, properties: { productId } },
        { type: "checkout_started", userId },
        {
          type: "order_completed",
          userId,
          properties: { orderId: `o-${userId}-${round}`, items: [{ productId, quantity: 1, price: 10 }], total: 10 },
        },
      );
    }
    batch.push({ type: "inventory_updated", properties: { productId: "sku-1", stock } });
    batch.push({ type: "inventory_updated", properties: { productId: "sku-2", stock: stock + 1 } });
  }
  return batch;
}

onlyOn(
  "kafka",
  "a mixed batch of every event type lands in Kafka in order per key, on the right topic, key and partition",
  async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url, { PARTITIONS: String(PARTITIONS) });
    const topics = topicNames(config);
    const engine = await startEngine(config, silentLogger);
    try {
      const batch = mixedBatch();
      const response = await post(engine.url, batch);
      assert.equal(response.status, 202);
      const { accepted, eventIds } = await response.json();
      assert.equal(accepted, batch.length);

      // product-events also carries the facts user actors forward; only the ingested events count here.
      const wanted = new Set<string>(eventIds);
      const ingested = (all: readonly ReadRecord[]) => all.filter((r) => wanted.has(r.value.eventId));
      const all = await readBack(
        config,
        [topics.events, topics.productEvents],
        (r) => ingested(r).length >= batch.length,
      );
      const records = ingested(all);
      const byId = new Map(records.map((r) => [r.value.eventId as string, r]));
      assert.equal(records.length, batch.length, "every event once");
      assert.equal(byId.size, batch.length, "every event once");
      const perKey = new Map<string, { expected: string[]; records: ReadRecord[] }>();
      batch.forEach((event, index) => {
        const record = byId.get(eventIds[index]);
        assert.ok(record, `event ${index} is in Kafka`);
        const inventory = event.type === "inventory_updated";
        const key = inventory ? (event.properties as { productId: string }).productId : event.userId as string;
        assert.equal(record.topic, inventory ? topics.productEvents : topics.events, `topic of event ${index}`);
        assert.equal(record.key, key, `key of event ${index}`);
        assert.equal(record.partition, partitionForKey(key, PARTITIONS), `murmur2 partition of key ${key}`);
        assert.equal(record.value.type, event.type);
        const entry = perKey.get(`${record.topic}/${key}`) ?? { expected: [], records: [] };
        entry.expected.push(eventIds[index]);
        entry.records.push(record);
        perKey.set(`${record.topic}/${key}`, entry);
      });
      for (const [key, { expected, records: keyed }] of perKey) {
        const inLogOrder = [...keyed].sort((a, b) => a.offset - b.offset).map((r) => r.value.eventId);
        assert.deepEqual(inLogOrder, expected, `order of ${key}`);
      }
      // What was stored is the validated event with server-filled fields and defaults.
      const cartAdd = records.find((r) => r.value.type === "product_added_to_cart")!;
      assert.equal(cartAdd.value.properties.quantity, 1);
      assert.equal(records.find((r) => r.value.type === "order_completed")!.value.properties.currency, "USD");
      for (const record of records) {
        assert.match(record.value.receivedAt, /^\d{4}-\d\d-\d\dT/);
        assert.match(record.value.occurredAt, /^\d{4}-\d\d-\d\dT/);
      }
    } finally {
      await engine.stop();
      await db.drop();
    }
  },
);

onlyOn(
  "kafka",
  "concurrent requests, coalesced into shared produce requests, are all stored once and in order per client",
  async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url, { PARTITIONS: String(PARTITIONS) });
    const topics = topicNames(config);
    const engine = await startEngine(config, silentLogger);
    const clients = 20;
    const requestsPerClient = 10;
    const eventsPerRequest = 10;
    try {
      // Each client posts its own user's events in sequence; the clients run concurrently.
      const acknowledged = await Promise.all(Array.from({ length: clients }, async (_, client) => {
        const ids: string[] = [];
        for (let request = 0; request < requestsPerClient; request++) {
          const batch = Array.from({ length: eventsPerRequest }, (_, i) => ({
            type: "page_viewed",
            userId: `client-${client}`,
            properties: { url: `/${request * eventsPerRequest + i}` },
          }));
          const response = await post(engine.url, batch);
          assert.equal(response.status, 202);
          ids.push(...(await response.json()).eventIds);
        }
        return ids;
      }));
      const total = clients * requestsPerClient * eventsPerRequest;
      const wanted = new Set(acknowledged.flat());
      assert.equal(wanted.size, total, "distinct ids");
      const ingested = (all: readonly ReadRecord[]) => all.filter((r) => wanted.has(r.value.eventId));
      let seen = 0;
      const records = ingested(
        await readBack(
          config,
          [topics.events],
          (r) => (seen += wanted.has(r[r.length - 1].value.eventId) ? 1 : 0) >= total,
        ),
      );
      assert.equal(records.length, total, "nothing lost, nothing duplicated");
      acknowledged.forEach((ids, client) => {
        const inLogOrder = records.filter((r) => r.key === `client-${client}`).sort((a, b) => a.offset - b.offset)
          .map((r) => r.value.eventId);
        assert.deepEqual(inLogOrder, ids, `order of client ${client}`);
      });
    } finally {
      await engine.stop();
      await db.drop();
    }
  },
);

onlyOn("kafka", {
  name: "with the broker down POST /v1/events and /readyz answer 503, and recover by themselves when it returns",
  // kafkajs keeps retrying the timed-out sends in the background for a while after the 503s.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const broker = await startPrivateBroker();
    const db = await freshDatabase();
    const config = testConfig(db.url, {
      KAFKA_BROKERS: broker.brokers,
      PUBLISH_TIMEOUT_MS: String(PUBLISH_TIMEOUT_MS),
      PARTITIONS: String(PARTITIONS),
    });
    const topics = topicNames(config);
    const engine = await startEngine(config, silentLogger);
    try {
      const before = await post(engine.url, { type: "page_viewed", userId: "before", properties: { url: "/" } });
      assert.equal(before.status, 202);
      const beforeIds: string[] = (await before.json()).eventIds;

      await broker.stop("SIGKILL");
      for (
        const body of [
          { type: "page_viewed", userId: "during", properties: { url: "/" } },
          [{ type: "page_viewed", userId: "during", properties: { url: "/a" } }, {
            type: "inventory_updated",
            properties: { productId: "p", stock: 1 },
          }],
        ]
      ) {
        const started = performance.now();
        const response = await post(engine.url, body);
        const elapsed = performance.now() - started;
        const text = await response.text();
        assert.equal(response.status, 503, text);
        assert.equal(response.headers.get("content-type"), "application/problem+json");
        assert.ok(Number(response.headers.get("retry-after")) > 0, "Retry-After");
        const problem = JSON.parse(text);
        assert.equal("accepted" in problem || "eventIds" in problem, false, "nothing reported accepted");
        assert.ok(elapsed < PUBLISH_TIMEOUT_MS * 3, `answered within the publish deadline (${Math.round(elapsed)} ms)`);
      }

      // /readyz names the log while it is down, and is ready again by itself once it is back.
      const readiness = async () => {
        const response = await fetch(`${engine.url}/readyz`);
        return { status: response.status, body: await response.json() };
      };
      const down = await eventually("503 from /readyz", async () => {
        const r = await readiness();
        return r.status === 503 ? r : undefined;
      });
      assert.notEqual(down.body.checks.log, "ok", JSON.stringify(down.body));
      assert.equal(down.body.checks.database, "ok");

      await broker.start();
      await eventually("200 from /readyz", async () => ((await readiness()).status === 200 ? true : undefined), 30_000);
      const recovered = await eventually(
        "ingestion to recover",
        async () => {
          const response = await post(engine.url, { type: "page_viewed", userId: "after", properties: { url: "/" } });
          if (response.status !== 202) {
            await response.body?.cancel();
            return undefined;
          }
          return (await response.json()).eventIds as string[];
        },
        30_000,
        250,
      );

      const acknowledged = [...beforeIds, ...recovered];
      const stored = (records: readonly ReadRecord[]) => new Set(records.map((r) => r.value.eventId));
      const records = await readBack(config, [topics.events], (r) => acknowledged.every((id) => stored(r).has(id)));
      assert.equal(acknowledged.every((id) => stored(records).has(id)), true, "every acknowledged event is in Kafka");
    } finally {
      await engine.stop();
      await broker.destroy();
      await db.drop();
    }
  },
});
