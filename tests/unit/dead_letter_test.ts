/**
 * Dead letters on the embedded log: what a dead letter carries must be storable there, and `dlq
 * replay` of a record without a key (a fact bundle is appended with an explicit partition and key "",
 * its entries all belonging to that partition) must go back to the partition its dead letter names,
 * not to the one key "" leads to.
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { EmbeddedLog } from "../../engine/embedded_log.ts";
import { replayDlq } from "../../engine/dlq_replay.ts";
import { deadLetter, DLQ_HEADERS, ORIGIN_HEADERS } from "../../engine/dead_letter.ts";
import { expandBundle, OutputBundler } from "../../engine/fact_bundle.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogConsumer, LogProducer, LogRecord, OutgoingRecord, PartitionListener } from "../../engine/log.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { silentLogger } from "../../engine/logger.ts";
import { purgeOldestRecords } from "../../sql/embedded_log.ts";
import { migrate } from "../../sql/migrations.ts";
import type { Sql } from "../../engine/database.ts";
import { undecodable } from "../helpers/undecodable.ts";

/** Runs `fn` on a fresh embedded log (and its database) in a temporary DATA_DIR, removed afterwards. */
async function withEmbeddedLog(fn: (log: EmbeddedLog, sql: Sql) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dead-letter-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const log = await EmbeddedLog.open(db.sql, { logger: silentLogger });
    try {
      await fn(log, db.sql);
    } finally {
      await log.close();
    }
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("dlq replay: a dead-lettered bundle goes back to the partition it came from", async () => {
  const PARTITIONS = 4;
  const home = (partitionForKey("", PARTITIONS) + 1) % PARTITIONS; // any partition but the one of key ""
  const keys: string[] = [];
  for (let i = 0; keys.length < 3; i++) {
    if (partitionForKey(`product-${i}`, PARTITIONS) === home) keys.push(`product-${i}`);
  }
  const bundler = new OutputBundler(new Map([["product-events", PARTITIONS]]));
  for (const key of keys) bundler.add({ topic: "product-events", key, value: JSON.stringify({ fact: key }) });
  const [bundle] = bundler.records();
  assert.equal(bundle.partition, home);

  await withEmbeddedLog(async (log, sql) => {
    await log.ensureTopics([{ topic: "product-events", partitions: PARTITIONS }, { topic: "dlq", partitions: 1 }]);
    // The bundle as a worker read it from its partition, dead-lettered whole (e.g. by an engine
    // that does not know this bundle version, README "Upgrades").
    const read = {
      topic: "product-events",
      partition: home,
      offset: 0,
      key: bundle.key,
      value: bundle.value as Uint8Array,
      headers: bundle.headers!,
      timestamp: Date.now(),
    };
    await log.append([deadLetter("dlq", read, new ValidationError("unknown bundle version '1'"))]);

    const summary = await replayDlq({
      consumer: log.consumer({ groupId: "g.dlq-replay", pollIntervalMs: 20 }),
      producer: log.producer(),
      sql: sql,
      dlqTopic: "dlq",
      groupId: "g",
      idleMs: 1_000,
    });
    assert.equal(summary.replayed, 1);
    const rows = await sql<{ partition: number; value: Uint8Array; headers: Record<string, string> }[]>`
      select partition, value, headers from embedded_log_records where topic = 'product-events'`;
    assert.equal(rows.length, 1);
    const entries = expandBundle({
      ...read,
      partition: rows[0].partition,
      headers: rows[0].headers,
      value: rows[0].value,
    });
    assert.deepEqual(entries.map((e) => e.key), keys);
    // By its empty key it used to land on another partition, whose worker handled keys it does not own.
    assert.equal(rows[0].partition, home, "the bundle's entries belong to their keys' partition");
  });
});

Deno.test("a dead letter's error message is cut and cleaned so that the embedded log can store it", async () => {
  // Cut at 1,000 UTF-16 units through an emoji, with a NUL quoted from the input: jsonb refused the
  // headers, and the partition retried that append for ever.
  const message = `${"x".repeat(999)}😀 and \u0000`;
  const read = {
    topic: "events",
    partition: 0,
    offset: 7,
    key: "k",
    value: new Uint8Array(),
    headers: {},
    timestamp: 0,
  };
  const letter = deadLetter("dlq", read, new ValidationError(message));
  const stored = letter.headers![DLQ_HEADERS.errorMessage];
  assert.equal(stored, `${"x".repeat(999)}\uFFFD`);
  await withEmbeddedLog(async (log, sql) => {
    await log.ensureTopics([{ topic: "dlq", partitions: 1 }]);
    await log.append([deadLetter("dlq", read, new ValidationError(`NUL \u0000 here`)), letter]);
    const rows = await sql<{ headers: Record<string, string> }[]>`select headers from embedded_log_records`;
    assert.deepEqual(rows.map((r) => r.headers[DLQ_HEADERS.errorMessage]), ["NUL \uFFFD here", stored]);
  });
});

Deno.test("dlq replay counts a batch once when its append failed and was retried, and says when it stopped short", async () => {
  await withEmbeddedLog(async (log, sql) => {
    // Four DLQ partitions for three records: one at least stays empty, and delivers no batch.
    await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 4 }]);
    const read = (offset: number) => undecodable("events", { offset, key: `u${offset}`, timestamp: 0 });
    await log.append([0, 1, 2].map((n) => deadLetter("dlq", read(n), new ValidationError("bad JSON"))));
    const real = log.producer();
    let failures = 1;
    const flaky: LogProducer = {
      ...real,
      append: (records, options) =>
        failures-- > 0 ? Promise.reject(new Error("log unavailable")) : real.append(records, options),
    };
    const replay = (producer: LogProducer, groupId: string) =>
      replayDlq({
        consumer: log.consumer({ groupId: `${groupId}.dlq-replay`, pollIntervalMs: 20 }),
        producer,
        sql: sql,
        dlqTopic: "dlq",
        groupId,
        idleMs: 1_000,
      });
    const summary = await replay(flaky, "g");
    // The failed attempt's records used to be counted as well: validation_failed 6 for 3 replayed.
    assert.deepEqual({ ...summary.byCode, replayed: summary.replayed, complete: summary.complete }, {
      validation_failed: 3,
      replayed: 3,
      complete: true,
    });
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from embedded_log_records where topic = 'events'`;
    assert.equal(n, 3, "each record re-injected once");
    // A log that keeps failing: the replay gives up after idleMs and says it did not finish.
    failures = Infinity;
    const stopped = await replay(flaky, "other-group");
    assert.equal(stopped.replayed, 0);
    assert.equal(stopped.complete, false);
  });
});

/** A DLQ record of partition 0 at `offset`, dead-lettered from `events`. */
function dlqRecord(offset: number): LogRecord {
  return {
    topic: "dlq",
    partition: 0,
    offset,
    key: `k${offset}`,
    value: new TextEncoder().encode("{}"),
    headers: { [DLQ_HEADERS.errorCode]: "terminal", [DLQ_HEADERS.topic]: "events", [DLQ_HEADERS.partition]: "0" },
    timestamp: 0,
  };
}

/**
 * A consumer of a DLQ partition 0 ending at `end` that delivers `batches` (offsets) one after another, each again
 * while the listener rejects it (as the Kafka and embedded consumers do); then nothing more.
 */
function scriptedConsumer(end: number, batches: number[][], record = dlqRecord): LogConsumer {
  return {
    async start(_topics: readonly string[], listener: PartitionListener) {
      await listener.assigned([{ topic: "dlq", partition: 0 }]);
      setTimeout(async () => {
        for (const offsets of batches) {
          const batch = { topic: "dlq", partition: 0, records: offsets.map(record), highWatermark: end };
          for (let attempt = 0; attempt < 5; attempt++) {
            if (await listener.batch(batch, () => Promise.resolve()).then(() => true, () => false)) break;
          }
        }
      }, 10);
    },
    seek: () => {},
    commit: () => Promise.resolve(),
    earliestOffset: () => Promise.resolve(0),
    endOffset: () => Promise.resolve(end),
    endOffsets: () => Promise.resolve(new Map([[0, end]])),
    pause: () => {},
    resume: () => {},
    stop: () => Promise.resolve(),
  };
}

/** A producer that keeps what it is given. */
function keepingProducer(): LogProducer & { appended: OutgoingRecord[] } {
  const appended: OutgoingRecord[] = [];
  return {
    appended,
    append: (r: readonly OutgoingRecord[]) => (appended.push(...r), Promise.resolve()),
    close: () => Promise.resolve(),
  };
}

Deno.test("dlq replay is not complete when a partition that showed records stopped short of them", async () => {
  const producer = keepingProducer();
  // deno-lint-ignore no-explicit-any
  const sql = ((..._args: unknown[]) => Promise.resolve([])) as any;
  // One batch of offsets 0-4 out of 10; then the fetches stop delivering.
  const consumer = scriptedConsumer(10, [[0, 1, 2, 3, 4]]);
  const summary = await replayDlq({ consumer, producer, sql, dlqTopic: "dlq", groupId: "g", idleMs: 300 });
  assert.equal(summary.replayed, 5);
  // Offsets 5-9 were never read; counting only failed batches, the run said complete and exited 0.
  assert.equal(summary.complete, false);
});

Deno.test("dlq replay is not complete when a partition with records never delivered a batch", async () => {
  const producer = keepingProducer();
  // deno-lint-ignore no-explicit-any
  const sql = ((..._args: unknown[]) => Promise.resolve([])) as any;
  const summary = await replayDlq({
    consumer: scriptedConsumer(2, []),
    producer,
    sql,
    dlqTopic: "dlq",
    groupId: "g",
    idleMs: 300,
  });
  assert.equal(summary.replayed, 0);
  // It looked like an empty partition (no batch), and the run said "replayed 0 record(s)", complete.
  assert.equal(summary.complete, false);
  const empty = await replayDlq({ consumer: scriptedConsumer(0, []), producer, sql, dlqTopic: "dlq", groupId: "g" });
  assert.equal(empty.complete, true, "an empty partition is not waited for");
});

Deno.test("dlq replay appends a record once when recording it fails after the append: the batch again only records it", async () => {
  const producer = keepingProducer();
  let failures = 1;
  const recorded: string[] = [];
  const sql = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    if (!strings.join("?").includes("insert into dlq_replays")) return Promise.resolve([]);
    if (failures-- > 0) return Promise.reject(new Error("connection reset"));
    recorded.push(...(values[2] as string[]));
    return Promise.resolve([]);
  }) as unknown as Sql;
  const summary = await replayDlq({
    consumer: scriptedConsumer(2, [[0, 1]]),
    producer,
    sql,
    dlqTopic: "dlq",
    groupId: "g",
    idleMs: 300,
  });
  assert.deepEqual(producer.appended.map((r) => r.key), ["k0", "k1"], "each appended once");
  assert.deepEqual(recorded, ["0", "1"]);
  assert.equal(summary.replayed, 2);
  assert.equal(summary.complete, true);
});

Deno.test("dlq replay leaves the records dead-lettered after its start for a later run, the first one past the end too", async () => {
  const producer = keepingProducer();
  // deno-lint-ignore no-explicit-any
  const sql = ((..._args: unknown[]) => Promise.resolve([])) as any;
  // The DLQ ended at 3 when the run started; offset 3 came since (a re-injected record that failed again).
  const consumer = scriptedConsumer(3, [[0, 1, 2, 3]]);
  const summary = await replayDlq({ consumer, producer, sql, dlqTopic: "dlq", groupId: "g", idleMs: 300 });
  assert.equal(summary.replayed, 3);
  assert.deepEqual(producer.appended.map((r) => r.key), ["k0", "k1", "k2"]);
  assert.equal(summary.complete, true);
});

Deno.test("dlq replay keeps where and when a record was first appended when it was replayed and dead-lettered before", async () => {
  const producer = keepingProducer();
  // deno-lint-ignore no-explicit-any
  const sql = ((..._args: unknown[]) => Promise.resolve([])) as any;
  // Re-injected once (from events:0:7, appended at 123), it failed again: its new dead letter carries both headers.
  const again = (offset: number): LogRecord => {
    const record = dlqRecord(offset);
    return {
      ...record,
      headers: {
        ...record.headers,
        [DLQ_HEADERS.offset]: "40",
        [DLQ_HEADERS.timestamp]: "999",
        [ORIGIN_HEADERS.position]: "events:0:7",
        [ORIGIN_HEADERS.time]: "123",
      },
    };
  };
  const summary = await replayDlq({
    consumer: scriptedConsumer(1, [[0]], again),
    producer,
    sql,
    dlqTopic: "dlq",
    groupId: "g",
    idleMs: 300,
  });
  assert.equal(summary.replayed, 1);
  const [replayed] = producer.appended;
  assert.equal(replayed.headers?.[ORIGIN_HEADERS.position], "events:0:7", "one derived eventId however often");
  assert.equal(replayed.headers?.[ORIGIN_HEADERS.time], "123", "dated when it was first appended");
});

Deno.test("dlq replay is not complete when a partition's end could not be read and it never delivered a batch", async () => {
  const producer = keepingProducer();
  // deno-lint-ignore no-explicit-any
  const sql = ((..._args: unknown[]) => Promise.resolve([])) as any;
  const consumer: LogConsumer = {
    ...scriptedConsumer(2, []),
    endOffset: () => Promise.reject(new Error("log unavailable")),
  };
  const summary = await replayDlq({ consumer, producer, sql, dlqTopic: "dlq", groupId: "g", idleMs: 300 });
  assert.equal(summary.replayed, 0);
  assert.equal(summary.complete, false, "it may hold records: the run cannot say it replayed them all");
});

Deno.test("dlq replay is complete when retention deleted every record of a DLQ partition", async () => {
  await withEmbeddedLog(async (log, sql) => {
    await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 1 }]);
    const source = (offset: number) => undecodable("events", { offset });
    await log.append([0, 1].map((offset) => deadLetter("dlq", source(offset), new ValidationError("invalid JSON"))));
    // A week later: trimmed by age (nothing commits on the DLQ), its end offset stays at 2.
    const purged = await purgeOldestRecords(sql, { topic: "dlq", partition: 0, floor: 2 }, Date.now() + 1, 2_000);
    assert.equal(purged, 2);
    const summary = await replayDlq({
      consumer: log.consumer({ groupId: "g.dlq-replay", pollIntervalMs: 20 }),
      producer: log.producer(),
      sql,
      dlqTopic: "dlq",
      groupId: "g",
      idleMs: 1_000,
    });
    assert.equal(summary.replayed, 0);
    // Nothing is left to read: the run used to wait for the deleted records and say it stopped short (exit code 1),
    // at every run, once the DLQ's records had aged out.
    assert.equal(summary.complete, true);
  });
});
