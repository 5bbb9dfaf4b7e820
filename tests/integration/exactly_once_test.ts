/**
 * The exactly-once proof on real Kafka and PostgreSQL, with the engine as a real process:
 * while a producer writes events, the engine is killed with SIGKILL at random moments and
 * restarted (or, in the failover test, one of two instances is killed and the other takes over).
 * Afterwards every actor's checkpointed state must equal a sequential fold of the same logic over
 * that partition's records (tests/helpers/replay.ts), and no output id may carry two payloads.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { createDomainLogics } from "../../actors/domain.ts";
import type { AnyActorLogic } from "../../engine/actor.ts";
import { parseConfig, topicNames } from "../../engine/config.ts";
import type { LogRecord } from "../../engine/log.ts";
import { uuidv7 } from "../../engine/uuid.ts";
import { type EngineProcess, startEngineProcess } from "../helpers/engine_process.ts";
import { replayPartition } from "../helpers/replay.ts";
import { freshDatabase, services, uniqueName } from "../helpers/services.ts";
import { prng } from "../helpers/prng.ts";

const PARTITIONS = 6;
const PRODUCE_BATCH = 500;

/** A realistic mix of stored events over `users` shoppers, in event-time order. */
function workload(total: number, users: number, random: () => number): { key: string; value: string }[] {
  const base = Date.UTC(2026, 10, 1, 8);
  const out: { key: string; value: string }[] = [];
  for (let i = 0; i < total; i++) {
    const userId = `u${Math.floor(random() * users)}`;
    const at = new Date(base + i * 200).toISOString();
    const productId = `p${Math.floor(random() * 300)}`;
    const roll = random();
    const price = Math.round(random() * 20000) / 100;
    let event: Record<string, unknown>;
    if (roll < 0.55) event = { type: "product_viewed", properties: { productId, price, category: "c" } };
    else if (roll < 0.65) event = { type: "page_viewed", properties: { url: "/", loadTime: random() * 4 } };
    else if (roll < 0.72) event = { type: "search_performed", properties: { query: "shoes" } };
    else if (roll < 0.85) event = { type: "product_added_to_cart", properties: { productId, price, quantity: 1 } };
    else if (roll < 0.9) event = { type: "product_removed_from_cart", properties: { productId } };
    else if (roll < 0.95) event = { type: "checkout_started", properties: {} };
    else {
      event = {
        type: "order_completed",
        properties: {
          orderId: `o${i}`,
          items: [{ productId, quantity: 1, price }],
          total: price,
          currency: "USD",
          paymentMethod: random() < 0.5 ? "card" : "paypal",
        },
      };
    }
    const stored = { ...event, eventId: uuidv7(base + i), userId, occurredAt: at, receivedAt: at };
    out.push({ key: userId, value: JSON.stringify(stored) });
  }
  return out;
}

interface Scenario {
  readonly env: Record<string, string>;
  readonly topics: ReturnType<typeof topicNames>;
  readonly groupId: string;
  readonly databaseUrl: string;
  readonly kafka: Kafka;
  readonly cleanup: () => Promise<void>;
}

async function scenario(): Promise<Scenario> {
  const { kafkaBrokers } = services();
  const db = await freshDatabase();
  const id = uniqueName("eo");
  const env = {
    KAFKA_BROKERS: kafkaBrokers,
    DATABASE_URL: db.url,
    TOPIC_PREFIX: `${id}.`,
    GROUP_ID: `${id}-group`,
    PARTITIONS: String(PARTITIONS),
    CHECKPOINT_INTERVAL_MS: "300",
    CLOCK_IDLE_MS: String(86_400_000),
    LOG_LEVEL: "warn",
  };
  const topics = topicNames(parseConfig(env));
  const kafka = new Kafka({ clientId: id, brokers: [kafkaBrokers], logLevel: logLevel.NOTHING });
  return { env, topics, groupId: env.GROUP_ID, databaseUrl: db.url, kafka, cleanup: db.drop };
}

/** Produces `records` in paced batches (acks=all) over roughly `durationMs`. */
async function produce(kafka: Kafka, topic: string, records: { key: string; value: string }[], durationMs: number) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const batches = Math.ceil(records.length / PRODUCE_BATCH);
  const started = Date.now();
  for (let b = 0; b < batches; b++) {
    await producer.send({ topic, acks: -1, messages: records.slice(b * PRODUCE_BATCH, (b + 1) * PRODUCE_BATCH) });
    const due = started + (durationMs * (b + 1)) / batches;
    if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
  }
  await producer.disconnect();
}

/** Every record of `topic`, by partition, up to the end offsets at call time. */
async function readTopic(kafka: Kafka, topic: string): Promise<Map<number, LogRecord[]>> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  await admin.disconnect();
  const byPartition = new Map<number, LogRecord[]>([...ends.keys()].map((p) => [p, []]));
  const remaining = new Set([...ends].filter(([, end]) => end > 0).map(([p]) => p));
  if (remaining.size === 0) return byPartition;
  const consumer = kafka.consumer({ groupId: uniqueName("reader"), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = Promise.withResolvers<void>();
  await consumer.run({
    eachBatch: ({ batch }) => {
      const list = byPartition.get(batch.partition)!;
      for (const m of batch.messages) {
        if (Number(m.offset) >= ends.get(batch.partition)!) continue;
        list.push({
          topic,
          partition: batch.partition,
          offset: Number(m.offset),
          key: m.key?.toString() ?? null,
          value: m.value ? new Uint8Array(m.value) : null,
          headers: {},
          timestamp: Number(m.timestamp),
        });
      }
      if (list.length >= ends.get(batch.partition)!) remaining.delete(batch.partition);
      if (remaining.size === 0) done.resolve();
      return Promise.resolve();
    },
  });
  await done.promise;
  await consumer.disconnect();
  return byPartition;
}

/** Waits until the checkpoints of the consumed topics reach the ends of those topics, twice in a row. */
async function drained(s: Scenario, timeoutMs = 120_000): Promise<void> {
  const sql = postgres(s.databaseUrl, { max: 1, onnotice: () => {} });
  const admin = s.kafka.admin();
  await admin.connect();
  const consumed = [s.topics.events, s.topics.productEvents, s.topics.analytics];
  try {
    const deadline = Date.now() + timeoutMs;
    let stable = 0;
    while (Date.now() < deadline) {
      let ends = 0;
      for (const topic of consumed) {
        for (const o of await admin.fetchTopicOffsets(topic)) ends += Number(o.high);
      }
      const [row] = await sql`
        select coalesce(sum(next_offset), 0) as done from partition_checkpoints
         where group_id = ${s.groupId} and topic = any(${consumed}::text[])`;
      stable = Number(row.done) === ends ? stable + 1 : 0;
      if (stable >= 3) return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error("the engine did not catch up with the log in time");
  } finally {
    await admin.disconnect();
    await sql.end();
  }
}

/** Compares every checkpointed state with the reference fold, and checks output ids. */
async function verify(s: Scenario, expectedEvents: number): Promise<{ actors: number; outputs: number }> {
  const logics = createDomainLogics();
  const byTopic: [string, AnyActorLogic][] = [
    [s.topics.events, logics.user],
    [s.topics.productEvents, logics.product],
    [s.topics.analytics, logics.global],
  ];
  const expected = new Map<string, unknown>();
  let events = 0;
  for (const [topic, logic] of byTopic) {
    for (const records of (await readTopic(s.kafka, topic)).values()) {
      if (topic === s.topics.events) events += records.length;
      const { states } = await replayPartition(logic, records);
      for (const [key, state] of states) {
        expected.set(`${logic.kind}/${key}`, JSON.parse(JSON.stringify(logic.persist(state))));
      }
    }
  }
  assert.equal(events, expectedEvents, "every produced event is in the log once");

  const sql = postgres(s.databaseUrl, { max: 1, onnotice: () => {} });
  const rows = await sql<{ kind: string; key: string; state: unknown }[]>`select kind, key, state from actor_states`;
  // Product minutes are added to by checkpoints: their sums must equal the fold's totals exactly.
  const minutes = await sql<{ product_id: string; sums: string }[]>`
    select product_id, concat_ws(',', sum(views), sum(cart_adds), sum(orders), sum(units), sum(revenue_millis)) as sums
      from product_minutes group by product_id`;
  await sql.end();
  const actual = new Map(rows.map((r) => [`${r.kind}/${r.key}`, r.state]));
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), "the same actors exist");
  for (const [id, state] of expected) assert.deepEqual(actual.get(id), state, `state of ${id}`);
  const totals = new Map<string, string>();
  for (const [id, state] of expected) {
    if (!id.startsWith("product/")) continue;
    const p = state as { views: number; cartAdds: number; orders: number; unitsSold: number; revenueMillis: number };
    if (p.views + p.cartAdds + p.orders === 0) continue;
    totals.set(id.slice("product/".length), [p.views, p.cartAdds, p.orders, p.unitsSold, p.revenueMillis].join(","));
  }
  assert.deepEqual(
    new Map(minutes.map((r) => [r.product_id, r.sums])),
    totals,
    "product minutes add up to the products' totals, each fact once",
  );

  // No output id with two different payloads, across every output topic.
  const payloads = new Map<string, string>();
  let outputs = 0;
  for (const topic of [s.topics.alerts, s.topics.recommendations, s.topics.productEvents, s.topics.analytics]) {
    for (const records of (await readTopic(s.kafka, topic)).values()) {
      for (const record of records) {
        const text = new TextDecoder().decode(record.value!);
        const value = JSON.parse(text);
        const id = value.alertId ?? value.recommendationId ?? value.factId;
        if (typeof id !== "string") continue;
        outputs++;
        const seen = payloads.get(id);
        if (seen !== undefined) assert.equal(text, seen, `output ${id} re-published with a different payload`);
        payloads.set(id, text);
      }
    }
  }
  return { actors: actual.size, outputs };
}

Deno.test({
  name: "exactly-once: SIGKILL at random moments during a load leaves every state equal to the reference fold",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const seed = Number(Deno.env.get("EXACTLY_ONCE_SEED") ?? Date.now() % 1_000_000);
    const random = prng(seed);
    const s = await scenario();
    const total = Number(Deno.env.get("EXACTLY_ONCE_EVENTS") ?? 100_000);
    const records = workload(total, 5_000, random);
    let engine: EngineProcess | undefined;
    try {
      engine = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: s.env });
      const producing = produce(s.kafka, s.topics.events, records, 15_000);
      const kills = 4;
      for (let k = 0; k < kills; k++) {
        await new Promise((resolve) => setTimeout(resolve, 1_500 + random() * 3_000));
        await engine.kill("SIGKILL");
        engine = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: s.env });
      }
      await producing;
      await drained(s);
      await engine.kill("SIGTERM");
      engine = undefined;
      const { actors, outputs } = await verify(s, total);
      const users = new Set(records.map((r) => r.key)).size;
      assert.ok(actors > users, `users, products and the global actor are checked (${actors})`);
      assert.ok(outputs > 0);
    } catch (error) {
      const logs = engine?.logs().split("\n").slice(-40).join("\n") ?? "";
      throw new Error(`failed with EXACTLY_ONCE_SEED=${seed}: ${(error as Error).message}\nengine logs:\n${logs}`, {
        cause: error,
      });
    } finally {
      await engine?.kill("SIGKILL");
      await s.cleanup();
    }
  },
});

Deno.test({
  name: "failover: when one of two instances is killed, the survivor takes its partitions and final states are exact",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await scenario();
    const total = 30_000;
    const records = workload(total, 2_000, prng(7));
    const a = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: s.env });
    const b = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: s.env });
    try {
      const producing = produce(s.kafka, s.topics.events, records, 8_000);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await a.kill("SIGKILL");
      await producing;
      await drained(s);
      const sql = postgres(s.databaseUrl, { max: 1, onnotice: () => {} });
      const owners = await sql`select distinct owner from partition_checkpoints where group_id = ${s.groupId}`;
      await sql.end();
      assert.equal(owners.length, 1, "one instance owns every partition after the failover");
      await b.kill("SIGTERM");
      await verify(s, total);
    } finally {
      await a.kill("SIGKILL");
      await b.kill("SIGKILL");
      await s.cleanup();
    }
  },
});
