/**
 * Dead-lettering and `dlq replay`, on each log: records are written beside the engine with its own
 * producer, the DLQ is read with a consumer of its own group, and the replay runs as the command
 * runs it (a consumer in `<GROUP_ID>.dlq-replay`, the log's producer, the engine's database).
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { type Backend, openBackend } from "../../engine/backend.ts";
import { restoreUser } from "../../actors/user_state.ts";
import { deadLetter, DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { replayDlq, REPLAYED_FROM_HEADER, type ReplaySummary } from "../../engine/dlq_replay.ts";
import { startEngine } from "../../engine/engine.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { OutgoingRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { collect, type Collector } from "../helpers/collector.ts";
import { deploy, forEachLog, onlyOn } from "../helpers/modes.ts";
import { eventually, services } from "../helpers/services.ts";
import { undecodable } from "../helpers/undecodable.ts";
import { migrate } from "../../sql/migrations.ts";

forEachLog(
  "bad records go to the DLQ with their reason; dlq replay re-injects them once, optionally by error code",
  async ({ config, topics }) => {
    const engine = await startEngine(config, silentLogger);
    const { sql, producer, createConsumer } = engine.clients;
    let dlq: Collector | undefined;
    const replay = (errorCode?: string) =>
      replayDlq({
        consumer: createConsumer(`${config.GROUP_ID}.dlq-replay`),
        producer,
        sql,
        dlqTopic: topics.dlq,
        groupId: config.GROUP_ID,
        errorCode,
        idleMs: 2_000,
      });
    const dlqRecords = () =>
      dlq!.records.map((r) => ({ key: r.key, value: new TextDecoder().decode(r.value!), headers: r.headers }));
    try {
      dlq = await collect(createConsumer(`${config.GROUP_ID}.dlq-reader`), [topics.dlq]);
      // A record the engine cannot decode.
      await producer.append([{ topic: topics.events, key: "bob", value: "{oops" }]);
      // A valid event that an earlier version rejected with a terminal error, as it sits in the DLQ.
      const event = {
        eventId: crypto.randomUUID(),
        type: "product_viewed",
        userId: "alice",
        occurredAt: "2026-11-01T10:00:00.000Z",
        receivedAt: "2026-11-01T10:00:00.000Z",
        properties: { productId: "sku-9" },
      };
      await producer.append([{
        topic: topics.dlq,
        key: "alice",
        value: JSON.stringify(event),
        headers: {
          [DLQ_HEADERS.errorCode]: "terminal",
          [DLQ_HEADERS.topic]: topics.events,
          [DLQ_HEADERS.partition]: "0",
          [DLQ_HEADERS.offset]: "0",
        },
      }]);
      const initial = await eventually("the bad record in the DLQ", () => {
        const records = dlqRecords();
        return Promise.resolve(records.length === 2 ? records : undefined);
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
      const after = await eventually("the re-failed record back in the DLQ", () => {
        const records = dlqRecords();
        return Promise.resolve(records.length >= 3 ? records : undefined);
      });
      const refailed = after.filter((r) => r.headers[REPLAYED_FROM_HEADER] !== undefined);
      assert.equal(refailed.length, 1);
      assert.equal(refailed[0].key, "bob");
      assert.match(refailed[0].headers[REPLAYED_FROM_HEADER], new RegExp(`^${topics.dlq.replaceAll(".", "\\.")}/`));
      const final = await (await fetch(`${engine.url}/v1/users/alice`)).json();
      assert.equal(final.productViews, 1, "alice's event was not re-injected twice");
      assert.equal(dlqRecords().length, 3, "nothing else was dead-lettered");
    } finally {
      await dlq?.stop();
      await engine.stop();
    }
  },
);

forEachLog(
  "records PostgreSQL could not store are dead-lettered, and their partitions go on checkpointing",
  async ({ config, topics }) => {
    const engine = await startEngine(config, silentLogger);
    const { sql, producer, createConsumer } = engine.clients;
    let dlq: Collector | undefined;
    const stored = (kind: string, key: string) =>
      sql<{ state: Record<string, unknown> }[]>`select state from actor_states where kind = ${kind} and key = ${key}`;
    const event = (fields: Record<string, unknown>) =>
      JSON.stringify({
        eventId: crypto.randomUUID(),
        occurredAt: "2026-11-01T10:00:00.000Z",
        receivedAt: "2026-11-01T10:00:00.000Z",
        ...fields,
      });
    try {
      dlq = await collect(createConsumer(`${config.GROUP_ID}.dlq-reader`), [topics.dlq]);
      // Each was accepted once and then failed every checkpoint of its partition (or corrupted a state).
      await producer.append([
        // jsonb refuses an unpaired surrogate ("\ud800" in the JSON text).
        {
          topic: topics.events,
          key: "carol",
          value: event({ type: "product_viewed", userId: "carol", properties: { productId: "sku-\ud800" } }),
        },
        // 1e306 made the user's revenue null and dead-lettered the order's product facts.
        {
          topic: topics.events,
          key: "carol",
          value: event({
            type: "order_completed",
            userId: "carol",
            properties: { orderId: "o-1", items: [{ productId: "sku-1", quantity: 1, price: 1e306 }], total: 1e306 },
          }),
        },
        {
          topic: topics.events,
          key: "carol",
          value: event({ type: "product_viewed", userId: "carol", properties: { productId: "sku-1" } }),
        },
        // PostgreSQL has no year 0: the out-of-stock alert could not be stored.
        {
          topic: topics.productEvents,
          key: "sku-0",
          value: event({
            type: "inventory_updated",
            occurredAt: "0000-01-01T00:00:00Z",
            properties: { productId: "sku-0", stock: 0 },
          }),
        },
        {
          topic: topics.productEvents,
          key: "sku-0",
          value: event({ type: "inventory_updated", properties: { productId: "sku-0", stock: 7 } }),
        },
      ]);
      const dead = await eventually("three records in the DLQ", () => {
        const records = dlq!.records;
        return Promise.resolve(records.length >= 3 ? records : undefined);
      });
      assert.deepEqual(dead.map((r) => r.headers[DLQ_HEADERS.errorCode]), Array(3).fill("validation_failed"));
      assert.deepEqual(dead.map((r) => r.key).sort(), ["carol", "carol", "sku-0"]);
      // Only a checkpoint past the bad records writes these states.
      const carol = await eventually("carol's checkpointed state", async () => (await stored("user", "carol"))[0]);
      assert.equal(carol.state.productViews, 1);
      // A checkpoint leaves out the fields at their initial value (no order yet): restoring fills them.
      assert.deepEqual(restoreUser(carol.state).orders.count, 0);
      const product = await eventually("sku-0's checkpointed state", async () => (await stored("product", "sku-0"))[0]);
      assert.equal(product.state.stock, 7);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal(
        dlq!.records.length,
        3,
        "each bad record dead-lettered once: no checkpoint failed and replayed them",
      );
    } finally {
      await dlq?.stop();
      await engine.stop();
    }
  },
);

/** What the retention tests see of a Kafka deployment whose DLQ holds four dead letters. */
interface DeadLetters {
  readonly backend: Backend;
  /** `dlq replay` as the command runs it, in the deployment's replay group. */
  readonly replay: (dryRun?: boolean) => Promise<ReplaySummary>;
  /** Retention (here DeleteRecords) takes the two oldest of partition 0 and all of partition 1. */
  readonly retention: () => Promise<void>;
}

/** A fresh Kafka deployment, migrated, whose DLQ holds three dead letters in partition 0 and one in partition 1. */
async function withFourDeadLetters(fn: (d: DeadLetters) => Promise<void>): Promise<void> {
  const { deployment: d, remove } = await deploy("kafka");
  const { config, topics } = d;
  const backend = await openBackend(config, topics, silentLogger);
  const admin = new Kafka({ brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING }).admin();
  try {
    await migrate(backend.sql);
    const source = (key: string, offset: number) => undecodable(topics.events, { offset, key });
    await backend.producer.append([
      ...[0, 1, 2].map((offset) => ({
        ...deadLetter(topics.dlq, source(`a${offset}`, offset), new ValidationError("invalid JSON")),
        partition: 0,
      })),
      { ...deadLetter(topics.dlq, source("b", 3), new ValidationError("invalid JSON")), partition: 1 },
    ]);
    await fn({
      backend,
      replay: (dryRun) =>
        replayDlq({
          consumer: backend.createConsumer(`${config.GROUP_ID}.dlq-replay`),
          producer: backend.producer,
          sql: backend.sql,
          dlqTopic: topics.dlq,
          groupId: config.GROUP_ID,
          dryRun,
          idleMs: 5_000,
        }),
      retention: async () => {
        await admin.connect();
        await admin.fetchTopicMetadata({ topics: [topics.dlq] });
        await admin.deleteTopicRecords({
          topic: topics.dlq,
          partitions: [{ partition: 0, offset: "2" }, { partition: 1, offset: "1" }],
        });
      },
    });
  } finally {
    await admin.disconnect();
    await backend.close();
    await remove();
  }
}

onlyOn("kafka", {
  name: "dlq replay reads a DLQ partition from where retention left its records, and is done with one it emptied",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withFourDeadLetters(async ({ replay, retention }) => {
      await retention();
      const summary = await replay(true);
      assert.equal(summary.replayed, 1, "the one record left");
      // Partition 1 delivers nothing: it used to be waited for, and the run said it stopped short (exit code 1).
      assert.equal(summary.complete, true);
    }),
});

onlyOn("kafka", {
  name: "dlq replay forgets what it re-injected once retention deleted it from the DLQ, and re-injects nothing again",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withFourDeadLetters(async ({ backend, replay, retention }) => {
      const rows = async () =>
        (await backend.sql<{ partition: number; offset: string }[]>`
          select partition, "offset" from dlq_replays order by partition, "offset"`).map((r) =>
          `${r.partition}/${r.offset}`
        );
      assert.equal((await replay()).replayed, 4);
      assert.deepEqual(await rows(), ["0/0", "0/1", "0/2", "1/0"]);
      await retention();
      const again = await replay();
      assert.equal(again.replayed, 0, "the record still in the DLQ is not re-injected again");
      assert.equal(again.alreadyReplayed, 1);
      assert.equal(again.complete, true);
      assert.deepEqual(await rows(), ["0/2"], "the rows of the deleted records are gone");
    }),
});

onlyOn("kafka", {
  name: "`deno task dlq replay` with a TOPIC_PREFIX no engine used refuses, naming it, and creates no topics",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka");
    const admin = new Kafka({ brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING }).admin();
    const run = async (prefix: string) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", "scripts/dlq.ts", "replay"],
        cwd: new URL("../../", import.meta.url).pathname,
        env: { ...d.env, TOPIC_PREFIX: prefix, LOG_LEVEL: "warn" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
      return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
    };
    try {
      const engine = await startEngine(d.config, silentLogger); // creates the deployment's topics
      await engine.stop();
      const right = await run(d.config.TOPIC_PREFIX);
      assert.equal(right.code, 0, right.stderr);
      assert.equal(right.stdout, `replayed 0 record(s) from ${d.topics.dlq}`);

      const wrong = `${d.config.TOPIC_PREFIX}typo.`;
      const refused = await run(wrong);
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(refused.stdout, "");
      assert.equal(
        refused.stderr.split("\n").at(-1),
        `dlq: the log has no topic "${wrong}events.dlq" (TOPIC_PREFIX="${wrong}"): no engine ran with this ` +
          "TOPIC_PREFIX on it; set TOPIC_PREFIX to the engine's",
      );
      await admin.connect();
      assert.deepEqual((await admin.listTopics()).filter((t) => t.startsWith(wrong)), [], "no topic was created");
    } finally {
      await admin.disconnect();
      await remove();
    }
  },
});

forEachLog(
  "`deno task dlq replay` leaves the records it cannot place, lists them, and re-injects every other once",
  async ({ config, topics, env, dataDir, inspect }) => {
    // An engine's topics, and a DLQ holding, in one partition and in this order, records good and unplaceable.
    const backend = await openBackend(config, topics, silentLogger);
    try {
      const letter = (key: string | null, topic: string, partition: number): OutgoingRecord => ({
        ...deadLetter(
          topics.dlq,
          undecodable(topic, { partition, offset: 5, key }),
          new ValidationError("invalid JSON"),
        ),
        partition: 0,
      });
      await backend.producer.append([
        letter("u1", topics.events, 0),
        letter("u2", `${topics.events}-gone`, 0), // a topic the log does not have
        letter(null, topics.events, 9), // a bundle of a partition events no longer has (3)
        letter("u3", topics.events, 1),
        letter(null, topics.events, 2), // a bundle, back to its partition
      ]);
    } finally {
      await backend.close();
    }
    const run = async (args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", "scripts/dlq.ts", "replay", ...args],
        cwd: new URL("../../", import.meta.url).pathname,
        env: { ...env, DATA_DIR: dataDir, PATH: Deno.env.get("PATH") ?? "" },
        clearEnv: true,
        stdin: "null",
        signal: AbortSignal.timeout(120_000),
      }).output();
      const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
    };
    const replayed = () =>
      inspect(async (view) =>
        [...(await view.records(topics.events)).entries()].flatMap(([partition, records]) =>
          records.map((r) => `${partition}:${r.key}`)
        ).sort()
      );

    const dry = await run(["--dry-run"]);
    assert.equal(dry.code, 3, `${dry.stdout}\n${dry.stderr}`);
    assert.match(dry.stdout, /^would replay 3 record\(s\)/);
    assert.deepEqual(await replayed(), []);
    for (const attempt of [1, 2]) {
      const { code, stdout, stderr } = await run([]);
      assert.equal(code, 3, `run ${attempt}: ${stdout}\n${stderr}`);
      assert.match(stdout, attempt === 1 ? /^replayed 3 record\(s\)/ : /^replayed 0 record\(s\)/);
      assert.match(stdout, /cannot be re-injected: 2 /);
      assert.match(stdout, new RegExp(`${topics.dlq.replaceAll(".", "\\.")}:0:1: source topic .*-gone"`));
      assert.match(stdout, new RegExp(`${topics.dlq.replaceAll(".", "\\.")}:0:2: no key, .*partition 9 `));
      const keys = await replayed();
      assert.equal(keys.length, 3, `run ${attempt}: each placeable record once: ${keys}`);
      assert.ok(keys.includes("2:") || keys.includes("2:null"), `the bundle went back to partition 2: ${keys}`);
    }
  },
);

onlyOn("postgresql", {
  name: "`deno task dlq replay` on a PostgreSQL that takes no writes stops with the engine's message, exit 2",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka");
    const database = new URL(d.env.DATABASE_URL);
    const name = database.pathname.slice(1);
    const admin = postgres(services().databaseUrl, { max: 1, onnotice: () => {} });
    try {
      // The engine ran once: its topics and state exist, as for any replay. Then the database takes no more writes.
      await (await startEngine(d.config, silentLogger)).stop();
      await admin.unsafe(`alter database ${name} set default_transaction_read_only = on`);
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", "scripts/dlq.ts", "replay", "--dry-run"],
        cwd: new URL("../../", import.meta.url).pathname,
        env: { ...d.env, PATH: Deno.env.get("PATH") ?? "" },
        clearEnv: true,
        stdin: "null",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      // It used to say `dlq: stopped: cannot execute CREATE TABLE in a read-only transaction; run it again`, exit 1.
      assert.equal(output.code, 2, stderr);
      assert.match(
        stderr,
        /PostgreSQL at DATABASE_URL="[^"]*" refused start-up \(migrations\): cannot execute .* in a read-only transaction/,
      );
    } finally {
      await admin.unsafe(`alter database ${name} reset default_transaction_read_only`);
      await admin.end();
      await remove();
    }
  },
});
