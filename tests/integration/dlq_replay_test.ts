/** Dead-lettering and `dlq replay` on real Kafka and PostgreSQL. */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { topicNames } from "../../engine/config.ts";
import { connectDatabase } from "../../engine/database.ts";
import { DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { replayDlq, REPLAYED_FROM_HEADER } from "../../engine/dlq_replay.ts";
import { startEngine } from "../../engine/engine.ts";
import { createKafka, KafkaConsumer, KafkaProducer } from "../../engine/kafka_log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { eventually, freshDatabase, services, testConfig } from "../helpers/services.ts";

Deno.test("bad records go to the DLQ with their reason; dlq replay re-injects them once, optionally by error code", async () => {
  const db = await freshDatabase();
  const config = testConfig(db.url);
  const topics = topicNames(config);
  const engine = await startEngine(config, silentLogger);
  const raw = new Kafka({ clientId: "test", brokers: [services().kafkaBrokers], logLevel: logLevel.NOTHING });
  const producer = raw.producer();
  await producer.connect();
  const sql = connectDatabase({ url: db.url, maxConnections: 2 });
  const options = {
    brokers: [services().kafkaBrokers],
    clientId: "replay",
    logger: silentLogger,
    publishTimeoutMs: 5000,
  };
  const kafka = createKafka(options);
  const replayProducer = new KafkaProducer(kafka, options);
  const replay = (errorCode?: string) =>
    replayDlq({
      consumer: new KafkaConsumer(kafka, { groupId: `${config.GROUP_ID}.dlq-replay` }, silentLogger),
      producer: replayProducer,
      sql,
      dlqTopic: topics.dlq,
      groupId: config.GROUP_ID,
      errorCode,
      idleMs: 2_000,
    });
  const dlqRecords = async () => {
    const reader = raw.consumer({ groupId: `reader-${crypto.randomUUID()}` });
    await reader.connect();
    await reader.subscribe({ topic: topics.dlq, fromBeginning: true });
    const admin = raw.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(topics.dlq);
    await admin.disconnect();
    const total = offsets.reduce((n, o) => n + Number(o.high), 0);
    const seen: { key: string; value: string; headers: Record<string, string> }[] = [];
    const done = Promise.withResolvers<void>();
    if (total === 0) done.resolve();
    await reader.run({
      eachMessage: ({ message }) => {
        const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
        seen.push({ key: message.key!.toString(), value: message.value!.toString(), headers });
        if (seen.length >= total) done.resolve();
        return Promise.resolve();
      },
    });
    await done.promise;
    await reader.disconnect();
    return seen;
  };
  try {
    // A record the engine cannot decode.
    await producer.send({ topic: topics.events, messages: [{ key: "bob", value: "{oops" }] });
    // A valid event that an earlier version rejected with a terminal error, as it sits in the DLQ.
    const event = {
      eventId: crypto.randomUUID(),
      type: "product_viewed",
      userId: "alice",
      occurredAt: "2026-11-01T10:00:00.000Z",
      receivedAt: "2026-11-01T10:00:00.000Z",
      properties: { productId: "sku-9" },
    };
    await producer.send({
      topic: topics.dlq,
      messages: [{
        key: "alice",
        value: JSON.stringify(event),
        headers: {
          [DLQ_HEADERS.errorCode]: "terminal",
          [DLQ_HEADERS.topic]: topics.events,
          [DLQ_HEADERS.partition]: "0",
          [DLQ_HEADERS.offset]: "0",
        },
      }],
    });
    const initial = await eventually("the bad record in the DLQ", async () => {
      const records = await dlqRecords();
      return records.length === 2 ? records : undefined;
    });
    const bad = initial.find((r) => r.key === "bob")!;
    assert.equal(bad.value, "{oops", "original bytes");
    assert.equal(bad.headers[DLQ_HEADERS.errorCode], "validation_failed");
    assert.equal(bad.headers[DLQ_HEADERS.topic], topics.events);
    assert.match(bad.headers[DLQ_HEADERS.errorMessage], /JSON/);

    const first = await replay("terminal");
    assert.equal(first.replayed, 1);
    assert.equal(first.skipped, 1);
    const alice = await eventually("alice's replayed view", async () => {
      const response = await fetch(`${engine.url}/v1/users/alice`);
      return response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
    });
    assert.equal(alice.productViews, 1);

    const again = await replay("terminal");
    assert.equal(again.replayed, 0);
    assert.equal(again.alreadyReplayed, 1);

    const all = await replay();
    assert.equal(all.replayed, 1, "only the record not replayed yet");
    const after = await eventually("the re-failed record back in the DLQ", async () => {
      const records = await dlqRecords();
      return records.length === 3 ? records : undefined;
    });
    assert.match(after[2].headers[REPLAYED_FROM_HEADER], new RegExp(`^${topics.dlq.replaceAll(".", "\\.")}/`));
    const final = await (await fetch(`${engine.url}/v1/users/alice`)).json();
    assert.equal(final.productViews, 1, "alice's event was not re-injected twice");
  } finally {
    await producer.disconnect();
    await replayProducer.close();
    await sql.end();
    await engine.stop();
    await db.drop();
  }
});
