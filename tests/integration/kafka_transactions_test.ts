/**
 * Storefront services may produce to `events` with Kafka transactions. A read_committed consumer never sees the
 * transaction markers (one offset after each transaction) nor the records of aborted transactions, so the offsets it
 * is handed have holes and a partition's end lies past its last record. The engine must go on past the holes, and its
 * checkpoints reach the end: a partition with nothing left to handle (its only content aborted, say) holds nothing
 * back (engine/source_watermark.ts, the watermarks of the business alerts).
 */
import assert from "node:assert/strict";
import { Kafka, logLevel, type Producer } from "kafkajs";
import postgres from "postgres";
import { startEngine } from "../../engine/engine.ts";
import { expandBundle, isBundle } from "../../engine/fact_bundle.ts";
import { KafkaConsumer } from "../../engine/kafka_consumer.ts";
import { HighWatermarks, readUncommittedCluster } from "../../engine/kafka_high_watermarks.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { deploy, type Deployment, onlyOn } from "../helpers/modes.ts";
import { readKafkaTopic } from "../helpers/read_topic.ts";
import { eventually, uniqueName } from "../helpers/services.ts";

const PARTITIONS = 3;

/** A user id whose records go to `partition` of `events`. */
function userOn(partition: number, prefix: string): string {
  for (let i = 0;; i++) if (partitionForKey(`${prefix}-${i}`, PARTITIONS) === partition) return `${prefix}-${i}`;
}

/** A product view by `userId`, as a storefront service would produce it. */
function view(userId: string, productId: string): { key: string; value: string } {
  return { key: userId, value: JSON.stringify({ type: "product_viewed", userId, properties: { productId } }) };
}

/** Sends `records` to `topic` in one transaction, committed or aborted. */
async function inTransaction(
  producer: Producer,
  topic: string,
  records: { key: string; value: string }[],
  outcome: "commit" | "abort",
): Promise<void> {
  const transaction = await producer.transaction();
  await transaction.send({ topic, messages: records });
  await transaction[outcome]();
}

/** A storefront service's Kafka clients: a transactional producer and a plain one, both connected. */
interface Storefront {
  readonly kafka: Kafka;
  readonly transactional: Producer;
  readonly plain: Producer;
}

/** A fresh Kafka deployment's settings, and how long Kafka lets a transaction stay open before it aborts it. */
interface StorefrontOptions {
  readonly settings?: Record<string, string>;
  /** kafkajs's default when absent: 60 s. */
  readonly transactionTimeout?: number;
}

/** Runs `fn` on a fresh Kafka deployment (`PARTITIONS` partitions) with a storefront; the engine is `fn`'s to start. */
function storefrontTest(
  name: string,
  options: StorefrontOptions,
  fn: (d: Deployment, storefront: Storefront) => Promise<void>,
): void {
  onlyOn("kafka", {
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const { deployment, remove } = await deploy("kafka", { PARTITIONS: String(PARTITIONS), ...options.settings });
      const kafka = new Kafka({
        clientId: uniqueName("storefront"),
        brokers: [deployment.kafkaBrokers!],
        logLevel: logLevel.NOTHING,
      });
      const transactional = kafka.producer({
        transactionalId: uniqueName("tx"),
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: options.transactionTimeout,
      });
      const plain = kafka.producer();
      try {
        await Promise.all([transactional.connect(), plain.connect()]);
        await fn(deployment, { kafka, transactional, plain });
      } finally {
        await Promise.all([transactional.disconnect(), plain.disconnect()]);
        await remove();
      }
    },
  });
}

/** `storefrontTest` with an engine running throughout, its partitions idle after 0.5 s. */
function transactionTest(
  name: string,
  options: StorefrontOptions,
  fn: (d: Deployment, url: string, storefront: Storefront) => Promise<void>,
): void {
  const settings = { CLOCK_IDLE_MS: "500", ...options.settings };
  storefrontTest(name, { ...options, settings }, async (d, storefront) => {
    const engine = await startEngine(d.config, silentLogger);
    try {
      await fn(d, engine.url, storefront);
    } finally {
      await engine.stop();
    }
  });
}

/** The user's product views, once the engine has them (404: not yet). */
async function productViews(url: string, userId: string): Promise<number | undefined> {
  const response = await fetch(`${url}/v1/users/${userId}`);
  if (response.status !== 200) {
    await response.body?.cancel();
    return undefined;
  }
  return (await response.json()).productViews;
}

/** Waits until every partition of `events` is checkpointed at its end offset; returns the offsets. */
async function checkpointedToTheEnd(d: Deployment, kafka: Kafka): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  const sql = postgres(d.config.DATABASE_URL!, { max: 1, onnotice: () => {} });
  try {
    // The ends once no transaction is open: the coordinator writes a transaction's markers after commit() or abort()
    // returned, and until then the admin's ends (read_committed: the last stable offset) stop before the transaction,
    // below the high watermark (read_uncommitted) (seen under load: partition 0 taken as checkpointed at 2 of 4).
    const highs = new HighWatermarks(() => readUncommittedCluster(kafka));
    const ends = await eventually("no transaction open on any events partition", async () => {
      const stable = new Map(
        (await admin.fetchTopicOffsets(d.topics.events)).map((o) => [o.partition, Number(o.high)]),
      );
      const high = await highs.of(d.topics.events);
      return [...stable].every(([p, end]) => high.get(p) === end) ? stable : undefined;
    }).finally(() => highs.close());
    let last = "";
    return await eventually("every events partition checkpointed at its end offset", async () => {
      const rows = await sql<{ partition: number; next_offset: string }[]>`
        select partition, next_offset from partition_checkpoints where topic = ${d.topics.events}`;
      const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
      last = JSON.stringify({ ends: [...ends], stored: [...stored] });
      return [...ends].every(([p, end]) => stored.get(p) === end) ? stored : undefined;
    }).catch((error) => {
      throw new Error(`${error.message}; last seen ${last}`);
    });
  } finally {
    await sql.end();
    await admin.disconnect();
  }
}

transactionTest(
  "events produced in committed transactions are all handled, and each partition is checkpointed at its end",
  {},
  async (d, url, { transactional: producer, kafka }) => {
    const user = userOn(1, "tx");
    // One transaction at a time, each handled before the next is produced: the engine reads each transaction's
    // marker after its records, and the next transaction's records one offset past where it stood.
    for (let i = 1; i <= 3; i++) {
      await inTransaction(producer, d.topics.events, [view(user, `sku-${i}`)], "commit");
      await eventually(`the view of transaction ${i}`, async () => (await productViews(url, user)) === i || undefined);
    }
    const stored = await checkpointedToTheEnd(d, kafka);
    assert.equal(stored.get(1), 6, "three records and their three markers");
  },
);

transactionTest(
  "an events partition whose only content is aborted transactions holds nothing back",
  {},
  async (d, url, { transactional: producer, kafka }) => {
    const live = userOn(0, "live");
    const ghost = userOn(2, "ghost");
    await inTransaction(producer, d.topics.events, [view(ghost, "sku-1"), view(ghost, "sku-2")], "abort");
    await inTransaction(producer, d.topics.events, [view(live, "sku-1")], "commit");
    await eventually("the committed view", async () => (await productViews(url, live)) === 1 || undefined);
    // Aborted after a committed one: partition 0's tail is an aborted transaction.
    await inTransaction(producer, d.topics.events, [view(live, "sku-2")], "abort");
    const stored = await checkpointedToTheEnd(d, kafka);
    assert.equal(stored.get(2), 3, "two aborted records and their marker");
    assert.equal(stored.get(0), 4, "a committed and an aborted record, each with its marker");
    // The partition says it never had a record: the business alerts do not wait for it.
    await eventually("partition 2's watermark saying it holds nothing back", async () => {
      const analytics = await readKafkaTopic(kafka, d.topics.analytics);
      const said = [...analytics.values()].flat().flatMap((r) => isBundle(r) ? expandBundle(r) : [r]).some((r) => {
        const value = JSON.parse(new TextDecoder().decode(r.value!));
        return value.fact === "watermark" && value.partition === 2 && value.clock === null;
      });
      return said || undefined;
    });
    const response = await fetch(`${url}/v1/users/${ghost}`);
    await response.body?.cancel();
    assert.equal(response.status, 404, "nothing of the aborted transaction was handled");
    assert.equal(await productViews(url, live), 1, "the aborted view did not count");
  },
);

storefrontTest(
  "records around an aborted transaction are handled once, and a restart resumes past its marker",
  {},
  async (d, { kafka, transactional, plain }) => {
    const user = userOn(1, "mixed");
    let engine = await startEngine(d.config, silentLogger);
    try {
      // An aborted record first, then another service's record inside the open transaction's span: the consumer is
      // handed the second alone, one offset past its position.
      const transaction = await transactional.transaction();
      await transaction.send({ topic: d.topics.events, messages: [view(user, "sku-aborted")] });
      await plain.send({ topic: d.topics.events, messages: [view(user, "sku-1")] });
      await transaction.abort();
      await eventually(
        "the view beside the aborted one",
        async () => (await productViews(engine.url, user)) === 1 || undefined,
      );
      assert.equal((await checkpointedToTheEnd(d, kafka)).get(1), 3, "aborted record, plain record, marker");
      await engine.stop();
      engine = await startEngine(d.config, silentLogger);
      await inTransaction(transactional, d.topics.events, [view(user, "sku-2")], "commit");
      await eventually(
        "the view after the restart",
        async () => (await productViews(engine.url, user)) === 2 || undefined,
      );
      assert.equal((await checkpointedToTheEnd(d, kafka)).get(1), 5, "and a committed record with its marker");
    } finally {
      await engine.stop();
    }
  },
);

storefrontTest(
  "records deleted before they were handled, followed only by an aborted transaction: the partition reaches its end",
  {},
  async (d, { kafka, transactional, plain }) => {
    const admin = kafka.admin();
    const user = userOn(1, "gone");
    // Creates the topics, and stops: what follows happens while no engine runs.
    await (await startEngine(d.config, silentLogger)).stop();
    let engine;
    try {
      await admin.connect();
      await plain.send({ topic: d.topics.events, messages: [view(user, "sku-1"), view(user, "sku-2")] });
      await inTransaction(transactional, d.topics.events, [view(user, "sku-aborted")], "abort");
      // Retention, or an operator, deletes the two records before any engine handled them: offset 2 (the aborted
      // record) and 3 (its marker) are all the partition has left.
      await admin.fetchTopicMetadata({ topics: [d.topics.events] }); // deleteTopicRecords needs it loaded
      await admin.deleteTopicRecords({ topic: d.topics.events, partitions: [{ partition: 1, offset: "2" }] });
      engine = await startEngine(d.config, silentLogger);
      assert.equal((await checkpointedToTheEnd(d, kafka)).get(1), 4, "past the deleted records and the aborted one");
      const response = await fetch(`${engine.url}/v1/users/${user}`);
      await response.body?.cancel();
      assert.equal(response.status, 404, "nothing deleted or aborted was handled");
    } finally {
      await admin.disconnect();
      await engine?.stop();
    }
  },
);

/** A cart add by `userId`, as a storefront service would produce it. */
function cartAdd(userId: string): { key: string; value: string } {
  return {
    key: userId,
    value: JSON.stringify({
      type: "product_added_to_cart",
      userId,
      properties: { productId: "sku-1", quantity: 1, price: 10 },
    }),
  };
}

/** The order closing `cartAdd`'s cart. */
function order(userId: string): { key: string; value: string } {
  const properties = { orderId: "o-1", items: [{ productId: "sku-1", quantity: 1, price: 10 }], total: 10 };
  return { key: userId, value: JSON.stringify({ type: "order_completed", userId, properties }) };
}

/** Whether the engine has raised `cart_abandoned` for `userId`. */
async function cartAbandoned(url: string, userId: string): Promise<boolean> {
  const response = await fetch(`${url}/v1/alerts?type=cart_abandoned`);
  const body = await response.json();
  return body.items.some((a: { subject: { id: string } }) => a.subject.id === userId);
}

/** The user's event count, once the engine has them (0: none yet). */
async function eventCount(url: string, userId: string): Promise<number> {
  const response = await fetch(`${url}/v1/users/${userId}`);
  return response.status === 200 ? (await response.json()).eventCount : (await response.body?.cancel(), 0);
}

/** Carts abandoned after 6 s. */
const ABANDON_SOON = { CART_ABANDON_MINUTES: "0.1" };

transactionTest(
  "an idle partition's clock waits for a transaction still open: an order inside it cancels the cart's timer",
  { settings: ABANDON_SOON, transactionTimeout: 60_000 },
  async (d, url, { transactional, plain, kafka }) => {
    const buyer = userOn(0, "buyer");
    const other = userOn(1, "other");
    await plain.send({ topic: d.topics.events, messages: [cartAdd(buyer)] });
    await eventually("the buyer's cart", async () => (await eventCount(url, buyer)) === 1 || undefined);
    // The order, a moment after the cart, in a transaction the storefront has not committed yet.
    const transaction = await transactional.transaction();
    await transaction.send({ topic: d.topics.events, messages: [order(buyer)] });
    // Another cart, later, on another partition: once its abandonment is out, the wall is past the buyer's deadline.
    await plain.send({ topic: d.topics.events, messages: [cartAdd(other)] });
    await eventually("the other cart abandoned", async () => (await cartAbandoned(url, other)) || undefined);
    await transaction.commit();
    await eventually("the buyer's order", async () => (await eventCount(url, buyer)) === 2 || undefined);
    await checkpointedToTheEnd(d, kafka);
    assert.equal(await cartAbandoned(url, buyer), false, "the buyer ordered a moment after the cart change");
  },
);

transactionTest(
  "a transaction never committed holds an idle partition's clock until Kafka aborts it, then the cart is abandoned",
  { settings: ABANDON_SOON, transactionTimeout: 4_000 },
  async (d, url, { transactional, plain, kafka }) => {
    const buyer = userOn(0, "buyer");
    await plain.send({ topic: d.topics.events, messages: [cartAdd(buyer)] });
    await eventually("the buyer's cart", async () => (await eventCount(url, buyer)) === 1 || undefined);
    // A storefront that died inside its transaction: Kafka aborts it after its timeout (4 s here), at its next check
    // for timed-out transactions (every 10 s by default).
    const transaction = await transactional.transaction();
    await transaction.send({ topic: d.topics.events, messages: [order(buyer)] });
    await eventually("the cart abandoned once the transaction is aborted", async () => {
      return (await cartAbandoned(url, buyer)) || undefined;
    }, 60_000);
    assert.equal(await eventCount(url, buyer), 1, "the aborted order was not handled");
    // The clock waited for the abort: its marker was in the log before the cart was abandoned (the clock followed the
    // wall past the open transaction, and the cart was abandoned 6 s after its change, before Kafka aborted it).
    assert.equal((await checkpointedToTheEnd(d, kafka)).get(0), 3, "the cart, the aborted order and its marker");
  },
);

transactionTest(
  "a partition's end offset counts the records of a transaction still open (the idle clocks' records left to handle)",
  {},
  async (d, _url, { transactional: producer, kafka }) => {
    const user = userOn(1, "open");
    const consumer = new KafkaConsumer(kafka, { groupId: uniqueName("ends") }, silentLogger);
    const admin = kafka.admin();
    await admin.connect();
    const transaction = await producer.transaction();
    try {
      await transaction.send({ topic: d.topics.events, messages: [view(user, "sku-1"), view(user, "sku-2")] });
      const lastStable = (await admin.fetchTopicOffsets(d.topics.events)).find((o) => o.partition === 1)?.high;
      assert.equal(lastStable, "0", "kafkajs's admin lists the last stable offset, before the open transaction");
      assert.equal((await consumer.endOffsets(d.topics.events)).get(1), 2, "past the open transaction's two records");
      assert.equal(await consumer.endOffset({ topic: d.topics.events, partition: 1 }), 2);
      await transaction.abort();
      // The coordinator writes the marker after it answered the abort.
      await eventually("the abort marker", async () => {
        return (await consumer.endOffset({ topic: d.topics.events, partition: 1 })) === 3 || undefined;
      });
    } finally {
      await admin.disconnect();
      await consumer.stop().catch(() => {});
    }
  },
);
