/**
 * The walking skeleton, once per run mode: POST an event → log (Kafka with acks=all, or the
 * embedded log in PGlite) → consumer → user actor → checkpoint (state + next offset, one
 * transaction) → GET; then a restart resumes from the checkpoint without counting twice.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { type Config, parseConfig, topicNames, type Topics } from "../../engine/config.ts";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { eventually, freshDatabase, services, testConfig } from "../helpers/services.ts";

const view = (userId: string, productId: string) => ({
  type: "product_viewed",
  userId,
  occurredAt: "2026-11-01T10:00:00.000Z",
  properties: { productId, price: 19.99, category: "shoes" },
});

/** What differs between the run modes. */
interface Mode {
  readonly config: Config;
  /** A connection to the engine's database while it runs, where the mode allows a second one. */
  readonly liveSql?: Sql;
  /** Checks that the log holds the posted event keyed by its user; returns its partition. */
  assertLogged(topics: Topics, eventId: string, userId: string): Promise<number>;
  /** Runs `fn` on the engine's database; called while the engine is stopped. */
  withStoppedDatabase<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  cleanup(): Promise<void>;
}

/** Kafka and PostgreSQL from scripts/services.sh, isolated by prefix, group and database. */
async function productionMode(): Promise<Mode> {
  const db = await freshDatabase();
  const config = testConfig(db.url);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  return {
    config,
    liveSql: sql,
    async assertLogged(topics, eventId, userId) {
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
      assert.equal(record.key, userId);
      assert.equal(record.value.eventId, eventId);
      assert.equal(record.value.type, "product_viewed");
      return record.partition;
    },
    withStoppedDatabase: (fn) => fn(sql),
    async cleanup() {
      await sql.end();
      await db.drop();
    },
  };
}

/** PGlite and the embedded log in a temporary DATA_DIR; nothing else running. */
async function embeddedMode(): Promise<Mode> {
  const dataDir = await Deno.makeTempDir({ prefix: "walking-skeleton-" });
  const config = parseConfig({
    DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    PARTITIONS: "3",
    CHECKPOINT_INTERVAL_MS: "200",
    LOG_LEVEL: "warn",
  });
  assert.equal(config.mode, "embedded");
  let logged: { eventId: string; userId: string; partition: number } | undefined;
  return {
    config,
    assertLogged(_topics, eventId, userId) {
      // Checked in the log table once the engine stops (PGlite serves one connection).
      logged = { eventId, userId, partition: partitionForKey(userId, config.PARTITIONS) };
      return Promise.resolve(logged.partition);
    },
    async withStoppedDatabase(fn) {
      const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger });
      try {
        if (logged) {
          const [record] = await db.sql<{ key: string; partition: number; event: Record<string, unknown> }[]>`
            select key, partition, convert_from(value, 'UTF8')::jsonb as event
              from embedded_log_records where topic = ${topicNames(config).events} and record_offset = 0
               and partition = ${logged.partition}`;
          assert.equal(record.key, logged.userId);
          assert.equal(record.event.eventId, logged.eventId);
          assert.equal(record.event.type, "product_viewed");
        }
        return await fn(db.sql);
      } finally {
        await db.close();
      }
    },
    cleanup: () => Deno.remove(dataDir, { recursive: true }),
  };
}

async function walkingSkeleton(mode: Mode): Promise<void> {
  const { config } = mode;
  const topics = topicNames(config);
  let engine = await startEngine(config, silentLogger);
  let running = true;
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

    const partition = await mode.assertLogged(topics, accepted.eventIds[0], "alice");

    // The actor handled it and GET answers from live state.
    const user = await eventually("alice's state", async () => {
      const response = await fetch(`${engine.url}/v1/users/alice`);
      const body = await response.json();
      return response.status === 200 && body.productViews === 1 ? body : undefined;
    });
    assert.deepEqual(user.recentProducts, ["sku-1"]);
    assert.equal(user.source, "memory");

    // The checkpoint holds the state and the partition's next offset: while running where the
    // database can be read meanwhile, and in any case once the engine stopped.
    const checkpointOf = (sql: Sql) => async () => {
      const [row] = await sql`
        select c.next_offset, s.state from partition_checkpoints c, actor_states s
         where c.topic = ${topics.events} and c.partition = ${partition}
           and s.kind = 'user' and s.key = 'alice' and c.next_offset > 0`;
      return row;
    };
    if (mode.liveSql) await eventually("the checkpoint", checkpointOf(mode.liveSql));
    await engine.stop();
    running = false;
    const checkpoint = await mode.withStoppedDatabase((sql) => checkpointOf(sql)());
    assert.ok(checkpoint, "a checkpoint was written");
    assert.equal(Number(checkpoint.next_offset), 1);
    assert.equal(checkpoint.state.productViews, 1);

    // A restarted engine resumes from the checkpoint: the first event is not counted twice.
    engine = await startEngine(config, silentLogger);
    running = true;
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
    if (running) await engine.stop();
    await mode.cleanup();
  }
}

Deno.test("walking skeleton on Kafka and PostgreSQL: POST → log → user actor → checkpoint → GET, resumed after a restart", async () => {
  await walkingSkeleton(await productionMode());
});

Deno.test("walking skeleton in embedded mode: POST → log → user actor → checkpoint → GET, resumed after a restart", async () => {
  await walkingSkeleton(await embeddedMode());
});
