/**
 * The embedded durable log on a real PGlite database in a temporary DATA_DIR. The steps share one
 * database (opening a fresh one costs an initdb), each on its own topics.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { EmbeddedConsumer } from "../../engine/embedded_consumer.ts";
import { type EmbeddedDatabase, openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { EmbeddedLog } from "../../engine/embedded_log.ts";
import { LogUnavailableError } from "../../engine/errors.ts";
import type { LogRecord, PartitionListener, RecordBatch, TopicPartition } from "../../engine/log.ts";
import { tpKey } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { appendRecords, loadGroupOffsets } from "../../sql/embedded_log.ts";
import { eventually } from "../helpers/services.ts";

const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A listener that records every batch; `onBatch` runs inside the batch (it may await or seek). */
class Recorder implements PartitionListener {
  readonly batches: RecordBatch[] = [];
  readonly inFlight = new Map<string, number>();
  overlapped = false;
  assignedWith: TopicPartition[] = [];

  constructor(
    private readonly offsets: Map<string, number> = new Map(),
    private readonly onBatch: (batch: RecordBatch) => Promise<void> | void = () => {},
  ) {}

  assigned(partitions: readonly TopicPartition[]): Promise<Map<string, number>> {
    this.assignedWith = [...partitions];
    return Promise.resolve(this.offsets);
  }

  revoked(): Promise<void> {
    return Promise.resolve();
  }

  async batch(batch: RecordBatch): Promise<void> {
    const key = tpKey(batch);
    const running = (this.inFlight.get(key) ?? 0) + 1;
    if (running > 1) this.overlapped = true;
    this.inFlight.set(key, running);
    try {
      await this.onBatch(batch);
      this.batches.push(batch);
    } finally {
      this.inFlight.set(key, running - 1);
    }
  }

  /** Every delivered record, in delivery order. */
  records(tp?: TopicPartition): LogRecord[] {
    return this.batches.filter((b) => !tp || tpKey(b) === tpKey(tp)).flatMap((b) => b.records);
  }

  /** A bound for delivery, not a latency check: a loaded machine (CI) took over 5 s for 3 MB of big records. */
  async waitFor(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.records().length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} records, got ${this.records().length}`);
      await sleep(5);
    }
  }
}

const text = (r: LogRecord) => decoder.decode(r.value!);

/** `sql` behind a gate: while it is shut, queries wait to be sent; `held` gives the first one that waited. */
function gatedSql(sql: Sql) {
  const send = sql as unknown as (strings: TemplateStringsArray, ...values: unknown[]) => Promise<unknown>;
  let gate: PromiseWithResolvers<void> | null = null;
  let held = Promise.withResolvers<{ query: Promise<unknown> }>();
  const gated = (strings: TemplateStringsArray, ...values: unknown[]) => {
    if (!gate) return send(strings, ...values);
    const query = gate.promise.then(() => send(strings, ...values));
    held.resolve({ query }); // wrapped: resolving with the query itself would wait for it
    return query;
  };
  return {
    sql: gated as unknown as Sql,
    shut() {
      gate = Promise.withResolvers();
      held = Promise.withResolvers<{ query: Promise<unknown> }>();
    },
    open() {
      gate?.resolve();
      gate = null;
    },
    held: () => held.promise,
  };
}

Deno.test("EmbeddedLog", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "embedded-log-" });
  let db: EmbeddedDatabase = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 200 });
  let log = await EmbeddedLog.open(db.sql, { logger: silentLogger });
  const consumers: EmbeddedConsumer[] = [];
  const consumer = (options: { pollIntervalMs?: number; maxBatch?: number } = {}) => {
    const c = log.consumer({ groupId: "g", pollIntervalMs: options.pollIntervalMs ?? 50, maxBatch: options.maxBatch });
    consumers.push(c);
    return c;
  };
  /** A step whose consumers are stopped even when it fails: one left running held group g, failing every later step. */
  const step = (name: string, fn: () => Promise<void>) =>
    t.step(name, async () => {
      const before = consumers.length;
      try {
        await fn();
      } finally {
        await Promise.all(consumers.slice(before).map((c) => c.stop()));
      }
    });
  try {
    await step("puts a keyed record in the partition Kafka's default partitioner picks", async () => {
      await log.ensureTopics([{ topic: "keyed", partitions: 7 }]);
      const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      await log.append(keys.map((key) => ({ topic: "keyed", key, value: key })));
      await log.append([{ topic: "keyed", key: "pinned", value: "x", partition: 3 }]);
      const rows = await db.sql<{ key: string; partition: number }[]>`
        select key, partition from embedded_log_records where topic = 'keyed'`;
      assert.equal(rows.length, 201);
      for (const row of rows) {
        assert.equal(row.partition, row.key === "pinned" ? 3 : partitionForKey(row.key, 7), row.key);
      }
      assert.equal(await log.partitionCount("keyed"), 7);
    });

    await step(
      "an append's own deadline overrides the log's (a checkpoint's outputs get more time than ingestion)",
      async () => {
        await log.ensureTopics([{ topic: "deadline", partitions: 2 }]);
        const hasty = await EmbeddedLog.open(db.sql, { logger: silentLogger, appendTimeoutMs: 1 });
        const records = Array.from(
          { length: 3_000 },
          (_, i) => ({ topic: "deadline", key: `k${i}`, value: "x".repeat(200) }),
        );
        await assert.rejects(hasty.producer().append(records), (error: unknown) => {
          assert.ok(error instanceof LogUnavailableError, String(error));
          assert.match(error.message, /^append of 3000 record\(s\) not committed within 1 ms$/);
          return true;
        }, "1 ms is too short for this append");
        await hasty.close();
        const patient = await EmbeddedLog.open(db.sql, { logger: silentLogger, appendTimeoutMs: 1 });
        await patient.producer().append(records, { timeoutMs: 30_000 });
        await patient.close();
      },
    );

    await step("allocates dense, ordered offsets per partition under concurrent appends", async () => {
      await log.ensureTopics([{ topic: "dense", partitions: 3 }]);
      await Promise.all(Array.from({ length: 40 }, (_, call) =>
        log.append(Array.from({ length: 10 }, (_, seq) => ({
          topic: "dense",
          key: `k${(call + seq) % 5}`,
          value: JSON.stringify({ call, seq }),
        })))));
      const rows = await db.sql<{ partition: number; record_offset: string; value: Uint8Array }[]>`
        select partition, record_offset, value from embedded_log_records where topic = 'dense'
         order by partition, record_offset`;
      assert.equal(rows.length, 400);
      for (let partition = 0; partition < 3; partition++) {
        const list = rows.filter((r) => r.partition === partition);
        assert.deepEqual(list.map((r) => Number(r.record_offset)), list.map((_, i) => i), `partition ${partition}`);
        // Within one append, a partition's records keep their input order, contiguously.
        const byCall = new Map<number, { seq: number; offset: number }[]>();
        for (const r of list) {
          const { call, seq } = JSON.parse(decoder.decode(r.value));
          byCall.set(call, [...(byCall.get(call) ?? []), { seq, offset: Number(r.record_offset) }]);
        }
        for (const entries of byCall.values()) {
          const seqs = entries.map((e) => e.seq);
          assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
          assert.equal(entries[entries.length - 1].offset - entries[0].offset, entries.length - 1, "contiguous");
        }
      }
      // Every partition's end in one read, as the analytics partition's idle clock reads its sources'.
      const ends = await consumer().endOffsets("dense");
      assert.deepEqual(
        [0, 1, 2].map((p) => ends.get(p) ?? 0),
        [0, 1, 2].map((p) => rows.filter((r) => r.partition === p).length),
      );
    });

    await step("round-trips binary values, headers and append time", async () => {
      await log.ensureTopics([{ topic: "bytes", partitions: 1 }]);
      const value = new Uint8Array([0, 255, 1, 128, 10, 13, 92, 39]);
      const appendedAt = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
      const clocked = await EmbeddedLog.open(db.sql, { logger: silentLogger, clock: () => appendedAt });
      await clocked.append([{
        topic: "bytes",
        key: "k",
        value,
        headers: { "x-error": 'bad "json"', source: "t:0:1" },
      }]);
      const recorder = new Recorder();
      const c = consumer();
      await c.start(["bytes"], recorder);
      await recorder.waitFor(1);
      await c.stop();
      const [record] = recorder.records();
      assert.deepEqual(record.value, value);
      assert.deepEqual(record.headers, { "x-error": 'bad "json"', source: "t:0:1" });
      assert.equal(record.key, "k");
      assert.equal(record.offset, 0);
      assert.equal(record.timestamp, appendedAt, "the append time, not the delivery time");
    });

    await step("rejects an append to a missing topic and stores nothing of it", async () => {
      await log.ensureTopics([{ topic: "exists", partitions: 2 }]);
      await assert.rejects(() =>
        log.append([{ topic: "exists", key: "a", value: "1" }, { topic: "missing", key: "b", value: "2" }])
      );
      await assert.rejects(() => log.append([{ topic: "exists", key: "a", value: "1", partition: 2 }]));
      // The statement itself refuses a partition without a counter row, all or nothing.
      const row = { topic: "exists", key: "a", valueBase64: "MQ==", headersJson: "{}" };
      await assert.rejects(() => appendRecords(db.sql, [{ ...row, partition: 0 }, { ...row, partition: 9 }], 0));
      const [{ n }] = await db.sql<
        { n: string }[]
      >`select count(*) as n from embedded_log_records where topic = 'exists'`;
      assert.equal(Number(n), 0);
    });

    await step(
      "refuses a partition outside the topic as a programmer error, not an outage, storing nothing",
      async () => {
        await log.ensureTopics([{ topic: "bounds", partitions: 3 }]);
        for (const partition of [3, -1, 0.5, 1.5]) {
          await assert.rejects(
            () => log.append([{ topic: "bounds", key: "a", value: "1", partition }]),
            (error: unknown) => {
              // A LogUnavailableError would be retried as an outage (503, a checkpoint retried for ever).
              assert.ok(!(error instanceof LogUnavailableError), `partition ${partition}: ${error}`);
              assert.equal(
                (error as Error).message,
                `Cannot append to bounds: current partition is ${partition}, the topic has 3`,
              );
              return true;
            },
          );
        }
        const [{ n }] = await db.sql<
          { n: string }[]
        >`select count(*) as n from embedded_log_records where topic = 'bounds'`;
        assert.equal(Number(n), 0);
      },
    );

    await step("keeps an existing topic's partition count when asked for another", async () => {
      await log.ensureTopics([{ topic: "fixed", partitions: 2 }]);
      await log.ensureTopics([{ topic: "fixed", partitions: 5 }]);
      assert.equal(await log.partitionCount("fixed"), 2);
      const reopened = await EmbeddedLog.open(db.sql, { logger: silentLogger });
      assert.equal(await reopened.partitionCount("fixed"), 2, "as stored");
      const keys = Array.from({ length: 20 }, (_, i) => `user-${i}`);
      await log.append(keys.map((key) => ({ topic: "fixed", key, value: key })));
      const rows = await db.sql<{ key: string; partition: number }[]>`
        select key, partition from embedded_log_records where topic = 'fixed'`;
      for (const row of rows) assert.equal(row.partition, partitionForKey(row.key, 2), row.key);
    });

    await step("delivers every partition in offset order, one batch of a partition at a time", async () => {
      await log.ensureTopics([{ topic: "ordered", partitions: 3 }]);
      const recorder = new Recorder(new Map(), () => sleep(2));
      const c = consumer({ maxBatch: 7 });
      await c.start(["ordered"], recorder);
      assert.deepEqual(recorder.assignedWith.map(tpKey), ["ordered:0", "ordered:1", "ordered:2"]);
      for (let i = 0; i < 10; i++) {
        await log.append(
          Array.from({ length: 30 }, (_, j) => ({ topic: "ordered", key: `k${j % 4}`, value: `${i * 30 + j}` })),
        );
      }
      await recorder.waitFor(300);
      await sleep(100);
      await c.stop();
      assert.equal(recorder.records().length, 300, "no record delivered twice");
      assert.equal(recorder.overlapped, false);
      for (let partition = 0; partition < 3; partition++) {
        const records = recorder.records({ topic: "ordered", partition });
        assert.deepEqual(records.map((r) => r.offset), records.map((_, i) => i));
        assert.ok(recorder.batches.every((b) => b.records.length <= 7));
        // Per key, values arrive in the order they were appended.
        for (let k = 0; k < 4; k++) {
          const values = records.filter((r) => r.key === `k${k}`).map((r) => Number(text(r)));
          assert.deepEqual(values, [...values].sort((a, b) => a - b));
        }
      }
    });

    await step("starts each partition at the offset the listener returns", async () => {
      await log.ensureTopics([{ topic: "resume", partitions: 1 }]);
      await log.append(Array.from({ length: 10 }, (_, i) => ({ topic: "resume", key: "k", value: `${i}` })));
      const recorder = new Recorder(new Map([["resume:0", 6]]));
      const c = consumer();
      await c.start(["resume"], recorder);
      await recorder.waitFor(4);
      await sleep(50);
      await c.stop();
      assert.deepEqual(recorder.records().map((r) => r.offset), [6, 7, 8, 9]);
      assert.equal(recorder.batches[0].highWatermark, 10, "the partition's end when fetched, for lag");
    });

    await step("a seek during a batch wins over the batch's natural advance", async () => {
      await log.ensureTopics([{ topic: "seek", partitions: 1 }]);
      await log.append(Array.from({ length: 10 }, (_, i) => ({ topic: "seek", key: "k", value: `${i}` })));
      const tp = { topic: "seek", partition: 0 };
      let rewound = false;
      const recorder = new Recorder(new Map(), async (batch) => {
        if (!rewound && batch.records[0].offset === 0) {
          rewound = true;
          await sleep(20);
          c.seek(tp, 2); // back to 2, although this batch ends at 4
        }
      });
      const c = consumer({ maxBatch: 5 });
      await c.start(["seek"], recorder);
      await recorder.waitFor(13);
      await sleep(50);
      await c.stop();
      assert.deepEqual(recorder.records().map((r) => r.offset), [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    await step("a paused partition gets nothing until it is resumed; the others go on", async () => {
      await log.ensureTopics([{ topic: "pause", partitions: 2 }]);
      const recorder = new Recorder();
      const c = consumer();
      await c.start(["pause"], recorder);
      const p0 = { topic: "pause", partition: 0 };
      c.pause([p0]);
      await log.append([{ topic: "pause", key: "a", value: "0", partition: 0 }, {
        topic: "pause",
        key: "b",
        value: "1",
        partition: 1,
      }]);
      await recorder.waitFor(1);
      await sleep(200);
      assert.deepEqual(recorder.records().map((r) => r.partition), [1]);
      c.resume([p0]);
      await recorder.waitFor(2);
      await c.stop();
      assert.deepEqual(recorder.records().map((r) => r.partition), [1, 0]);
    });

    await step("a batch whose handler fails is delivered again from its first record", async () => {
      await log.ensureTopics([{ topic: "failing", partitions: 1 }]);
      await log.append(Array.from({ length: 5 }, (_, i) => ({ topic: "failing", key: "k", value: `${i}` })));
      let attempts = 0;
      const recorder = new Recorder(new Map(), () => {
        if (attempts++ === 0) throw new Error("the handler failed once");
      });
      const c = log.consumer({ groupId: "g", pollIntervalMs: 50, retryBackoffMs: { initial: 1, max: 1 } });
      consumers.push(c);
      await c.start(["failing"], recorder);
      await recorder.waitFor(5);
      await sleep(50);
      await c.stop();
      assert.equal(attempts, 2);
      assert.deepEqual(recorder.records().map((r) => r.offset), [0, 1, 2, 3, 4], "nothing skipped, nothing twice");
    });

    await step("a batch holds at most 1 MiB of keys and values, but a larger record still comes alone", async () => {
      // One 500-record fetch of big events per partition held gigabytes: 4 partitions of 900 KB records took one 33 s
      // query and 6 GB of memory, during which the engine answered nothing.
      await log.ensureTopics([{ topic: "big", partitions: 2 }]);
      const sizes = [400_000, 400_000, 400_000, 1_500_000, 10, 10];
      for (const partition of [0, 1]) {
        await log.append(sizes.map((n, i) => ({ topic: "big", key: "k", partition, value: `${i}`.padEnd(n, "x") })));
      }
      const recorder = new Recorder();
      const c = consumer();
      await c.start(["big"], recorder);
      await recorder.waitFor(sizes.length * 2);
      await c.stop();
      for (const partition of [0, 1]) {
        const batches = recorder.batches.filter((b) => b.partition === partition);
        assert.deepEqual(batches.map((b) => b.records.map((r) => r.offset)), [[0, 1], [2], [3], [4, 5]]);
      }
    });

    await step("stop waits for the batch being handled", async () => {
      await log.ensureTopics([{ topic: "draining", partitions: 1 }]);
      let finished = false;
      const recorder = new Recorder(new Map(), async () => {
        await sleep(100);
        finished = true;
      });
      const c = consumer();
      await c.start(["draining"], recorder);
      await log.append([{ topic: "draining", key: "k", value: "v" }]);
      await eventually(
        "a batch in flight",
        () => Promise.resolve(recorder.inFlight.get("draining:0") || undefined),
        30_000,
        5,
      );
      await c.stop();
      assert.equal(finished, true, "stop resolved while the batch was still being handled");
    });

    await step("a seek or a resume takes effect at once, not at the next poll", async () => {
      await log.ensureTopics([{ topic: "prompt", partitions: 1 }]);
      const tp = { topic: "prompt", partition: 0 };
      await log.append(Array.from({ length: 3 }, (_, i) => ({ topic: "prompt", key: "k", value: `${i}` })));
      const recorder = new Recorder();
      // Its next poll is an hour away: only the seek's and the resume's own wake-ups deliver within the waits below.
      const c = consumer({ pollIntervalMs: 3_600_000 });
      await c.start(["prompt"], recorder);
      await recorder.waitFor(3);
      c.seek(tp, 1);
      await recorder.waitFor(5);
      c.pause([tp]);
      await log.append([{ topic: "prompt", key: "k", value: "3" }]);
      await sleep(100); // the append's wake-up finds the partition paused; the consumer waits again
      c.resume([tp]);
      await recorder.waitFor(6);
      await c.stop();
      assert.deepEqual(recorder.records().map((r) => r.offset), [0, 1, 2, 1, 2, 3]);
    });

    await step(
      "a fetch that returns after its partition was paused, or the consumer stopped, hands nothing over",
      async () => {
        await log.ensureTopics([{ topic: "racing", partitions: 1 }]);
        const tp = { topic: "racing", partition: 0 };
        const handed: number[][] = [];
        const listener: PartitionListener = {
          assigned: () => Promise.resolve(new Map()),
          revoked: () => Promise.resolve(),
          batch: (batch) => (handed.push(batch.records.map((r) => r.offset)), Promise.resolve()),
        };
        const gated = gatedSql(db.sql);
        const c = new EmbeddedConsumer(gated.sql, log, { groupId: "g", logger: silentLogger, pollIntervalMs: 50 });
        consumers.push(c);
        await c.start(["racing"], listener);
        gated.shut();
        await log.append([{ topic: "racing", key: "k", value: "0" }]);
        let { query: fetch } = await gated.held(); // sent once the gate opens, after the append: it returns offset 0
        c.pause([tp]);
        gated.open();
        await fetch;
        await sleep(20);
        assert.deepEqual(handed, [], "paused while fetching");
        c.resume([tp]);
        await eventually("offset 0", () => Promise.resolve(handed.length === 1 ? true : undefined), 30_000, 5);
        gated.shut();
        await log.append([{ topic: "racing", key: "k", value: "1" }]);
        ({ query: fetch } = await gated.held());
        const stopping = c.stop();
        gated.open();
        await fetch;
        await stopping;
        assert.deepEqual(handed, [[0]], "stopped while fetching");
      },
    );

    await step("an append in this process wakes an idle consumer at once", async () => {
      await log.ensureTopics([{ topic: "wake", partitions: 1 }]);
      const recorder = new Recorder();
      // Its next poll is an hour away: only the append's wake-up can deliver within the wait below, however loaded
      // the machine (a 500 ms threshold after a 50 ms sleep measured the machine, not the wake-up).
      const c = consumer({ pollIntervalMs: 3_600_000 });
      await c.start(["wake"], recorder);
      try {
        await log.append([{ topic: "wake", key: "k", value: "v1" }]);
        await recorder.waitFor(1, 30_000);
        // It has read and found nothing more: idle until woken.
        await log.append([{ topic: "wake", key: "k", value: "v2" }]);
        await recorder.waitFor(2, 30_000);
      } finally {
        await c.stop();
      }
      assert.deepEqual(recorder.records().map(text), ["v1", "v2"]);
    });

    await step("commit records the group's offset, used when the listener returns none", async () => {
      await log.ensureTopics([{ topic: "committed", partitions: 1 }]);
      await log.append(Array.from({ length: 5 }, (_, i) => ({ topic: "committed", key: "k", value: `${i}` })));
      const first = consumer();
      await first.start(["committed"], new Recorder());
      await first.commit({ topic: "committed", partition: 0 }, 1);
      await first.commit({ topic: "committed", partition: 0 }, 3);
      await first.stop();
      assert.equal((await loadGroupOffsets(db.sql, "g")).get("committed:0"), 3, "the latest commit wins");
      const recorder = new Recorder();
      const second = consumer();
      await second.start(["committed"], recorder);
      await recorder.waitFor(2);
      await second.stop();
      assert.deepEqual(recorder.records().map((r) => r.offset), [3, 4]);
      // The listener's offset (its checkpoint, authoritative) wins over the group's committed one.
      const checkpointed = new Recorder(new Map([["committed:0", 1]]));
      const third = consumer();
      await third.start(["committed"], checkpointed);
      await checkpointed.waitFor(4);
      await sleep(50);
      await third.stop();
      assert.deepEqual(checkpointed.records().map((r) => r.offset), [1, 2, 3, 4]);
    });

    await step("a second member of a consuming group is refused, not handed every partition again", async () => {
      await log.ensureTopics([{ topic: "members", partitions: 2 }]);
      await log.append(Array.from({ length: 6 }, (_, i) => ({ topic: "members", key: `k${i}`, value: `${i}` })));
      const first = new Recorder();
      const member = consumer();
      await member.start(["members"], first);
      await first.waitFor(6);
      // Kafka would split the partitions between two members; the embedded group has one, so a second one is refused.
      const second = new Recorder();
      const intruder = consumer();
      await assert.rejects(intruder.start(["members"], second), /group g already has a member in this process/);
      await log.append([{ topic: "members", key: "k0", value: "6" }]);
      await first.waitFor(7);
      assert.equal(second.records().length, 0, "no record is delivered twice in one group");
      // Another group reads alongside, and the group takes a member again once the first one stopped.
      const other = log.consumer({ groupId: "g-other", pollIntervalMs: 50 });
      consumers.push(other);
      const alongside = new Recorder();
      await other.start(["members"], alongside);
      await alongside.waitFor(7);
      await other.stop();
      await member.stop();
      const next = new Recorder(new Map([["members:0", 0], ["members:1", 0]]));
      const successor = consumer();
      await successor.start(["members"], next);
      await next.waitFor(7);
      await successor.stop();
    });

    await step("vacuums the database periodically (PGlite runs no autovacuum)", async () => {
      await eventually(
        "a vacuum",
        async () => {
          const [row] = await db.sql<{ last_vacuum: Date | null }[]>`
          select last_vacuum from pg_stat_user_tables where relname = 'embedded_log_partitions'`;
          return row?.last_vacuum ?? undefined;
        },
        30_000,
        50,
      );
    });

    await step("keeps topics, records and offsets across close and reopen", async () => {
      await log.ensureTopics([{ topic: "durable", partitions: 2 }]);
      await log.append(Array.from({ length: 20 }, (_, i) => ({ topic: "durable", key: `k${i}`, value: `${i}` })));
      await log.close();
      await db.close();
      db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 200 });
      log = await EmbeddedLog.open(db.sql, { logger: silentLogger });
      assert.equal(await log.partitionCount("durable"), 2);
      await log.append(Array.from({ length: 20 }, (_, i) => ({ topic: "durable", key: `k${i}`, value: `${20 + i}` })));
      const recorder = new Recorder();
      const c = consumer();
      await c.start(["durable"], recorder);
      await recorder.waitFor(40);
      await c.stop();
      assert.deepEqual(
        recorder.records().map(text).map(Number).sort((a, b) => a - b),
        Array.from({ length: 40 }, (_, i) => i),
      );
      for (let partition = 0; partition < 2; partition++) {
        const offsets = recorder.records({ topic: "durable", partition }).map((r) => r.offset);
        assert.deepEqual(offsets, offsets.map((_, i) => i), "offsets continue after reopen, none reused");
      }
    });
  } finally {
    await Promise.all(consumers.map((c) => c.stop()));
    await log.close();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("EmbeddedLog.close waits for the appends and commits in flight, so closing the database never cuts them off", async () => {
  // The runtime commits after its final checkpoints without waiting; the backend closes the log, then the database.
  const dir = await Deno.makeTempDir({ prefix: "embedded-log-close-" });
  try {
    let db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
    const log = await EmbeddedLog.open(db.sql, { logger: silentLogger });
    await log.ensureTopics([{ topic: "closing", partitions: 1 }]);
    const consumer = log.consumer({ groupId: "closing" });
    const inFlight = Promise.all([
      db.sql`select pg_sleep(0.2)`, // the connection is busy (a fetch, a retention chunk): the writes queue behind
      log.append(Array.from({ length: 2_000 }, (_, i) => ({ topic: "closing", key: `k${i}`, value: "x".repeat(100) }))),
      consumer.commit({ topic: "closing", partition: 0 }, 5),
    ]);
    await log.close();
    await db.close();
    await inFlight;
    db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      assert.equal((await loadGroupOffsets(db.sql, "closing")).get("closing:0"), 5);
      const [{ n }] = await db.sql<{ n: number }[]>`select count(*)::int as n from embedded_log_records`;
      assert.equal(n, 2_000);
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
