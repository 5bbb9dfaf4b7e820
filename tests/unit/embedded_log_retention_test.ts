/**
 * Retention of the embedded log on a real PGlite database: what is deleted (old AND passed by every
 * consuming group), what stays, and that offsets, appends and consumers carry on unchanged.
 */
import assert from "node:assert/strict";
import { type EmbeddedDatabase, openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { EmbeddedLog } from "../../engine/embedded_log.ts";
import { EmbeddedLogRetention } from "../../engine/embedded_log_retention.ts";
import type { EngineEvent } from "../../engine/instrumentation.ts";
import type { LogRecord, PartitionListener, TopicPartition } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { saveGroupOffset } from "../../sql/embedded_log.ts";
import { eventually } from "../helpers/services.ts";
import { remainingOffsets as offsets } from "../helpers/read_topic.ts";

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 1);

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Reads a partition through a consumer of `groupId` until it has seen `count` records. */
async function consume(log: EmbeddedLog, groupId: string, topic: string, count: number): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  const listener: PartitionListener = {
    assigned: (_: readonly TopicPartition[]) => Promise.resolve(new Map()),
    revoked: () => Promise.resolve(),
    batch: (batch) => (records.push(...batch.records), Promise.resolve()),
  };
  const consumer = log.consumer({ groupId, pollIntervalMs: 20 });
  await consumer.start([topic], listener);
  try {
    await eventually(`${count} records`, () => Promise.resolve(records.length >= count ? true : undefined), 5_000, 10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    return records;
  } finally {
    await consumer.stop();
  }
}

Deno.test("EmbeddedLogRetention", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "embedded-retention-" });
  const db: EmbeddedDatabase = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  let now = T0;
  const log = await EmbeddedLog.open(db.sql, { logger: silentLogger, clock: () => now });
  const events: EngineEvent[] = [];
  const retention = (options: { chunkRecords?: number; intervalMs?: number } = {}) =>
    new EmbeddedLogRetention(db.sql, {
      retentionMs: 24 * HOUR,
      logger: silentLogger,
      clock: () => now,
      instrumentation: { emit: (e) => events.push(e) },
      ...options,
    });
  const append = (topic: string, partition: number, n: number) =>
    log.append(range(0, n).map((i) => ({ topic, key: `k${i}`, value: `${i}`, partition })));
  try {
    await log.ensureTopics([{ topic: "t", partitions: 3 }, { topic: "out", partitions: 1 }]);
    // Two days ago: 10 records in every partition of t, 5 in out.
    now = T0 - 48 * HOUR;
    for (const p of [0, 1, 2]) await append("t", p, 10);
    await append("out", 0, 5);
    // An hour ago: 5 more in t:0 and 3 more in out.
    now = T0 - HOUR;
    await append("t", 0, 5);
    await append("out", 0, 3);
    now = T0;
    // Groups g and h consume t; h has committed nothing on t:2 yet.
    await saveGroupOffset(db.sql, "g", "t", 0, 15);
    await saveGroupOffset(db.sql, "h", "t", 0, 12);
    await saveGroupOffset(db.sql, "g", "t", 1, 4);
    await saveGroupOffset(db.sql, "h", "t", 1, 7);
    await saveGroupOffset(db.sql, "g", "t", 2, 10);

    await t.step("deletes only old records that every consuming group has passed", async () => {
      const deleted = await retention({ chunkRecords: 3 }).purge();
      assert.deepEqual(Object.fromEntries(deleted), { t: 10 + 4, out: 5 });
      assert.deepEqual(await offsets(db.sql, "t"), {
        0: range(10, 15), // 0–9 old and passed by both; 10–14 recent, although g and h passed 10 and 11
        1: range(4, 10), // g has only passed 0–3
        2: range(0, 10), // h consumes t and has passed nothing on t:2
      });
      // No group consumes `out`: trimmed by age alone, as Kafka does.
      assert.deepEqual(await offsets(db.sql, "out"), { 0: range(5, 8) });
      const purged = events.flatMap((e) => e.type === "log_records_purged" ? [e.count] : []);
      assert.equal(purged.reduce((a, b) => a + b, 0), 19);
      // Each statement deletes at most a chunk, so that appends and checkpoints never wait for a whole pass.
      assert.ok(purged.every((n) => n <= 3), `chunks of ${purged.join(", ")}`);
    });

    await t.step("consumers report the first offset kept, so a reader behind it can move on", async () => {
      const consumer = log.consumer({ groupId: "new-group" });
      assert.equal(await consumer.earliestOffset({ topic: "t", partition: 0 }), 10);
      assert.equal(await consumer.earliestOffset({ topic: "t", partition: 1 }), 4);
      assert.equal(await consumer.earliestOffset({ topic: "t", partition: 2 }), 0);
      assert.equal(await consumer.earliestOffset({ topic: "out", partition: 0 }), 5);
    });

    await t.step("a second pass finds nothing more", async () => {
      assert.deepEqual(Object.fromEntries(await retention().purge()), {});
    });

    await t.step("appends after a purge continue each partition's offsets", async () => {
      await append("t", 0, 2);
      await append("t", 1, 1);
      assert.deepEqual((await offsets(db.sql, "t"))[0], range(10, 17));
      assert.deepEqual((await offsets(db.sql, "t"))[1], range(4, 11));
      const [counter] = await db.sql<{ next_offset: string }[]>`
        select next_offset from embedded_log_partitions where topic = 't' and partition = 0`;
      assert.equal(Number(counter.next_offset), 17);
    });

    await t.step("consumers resume at their committed offsets over the purged partitions", async () => {
      const h = await consume(log, "h", "t", 5 + 4 + 10);
      const byPartition = (p: number) => h.filter((r) => r.partition === p).map((r) => r.offset);
      assert.deepEqual(byPartition(0), range(12, 17));
      assert.deepEqual(byPartition(1), range(7, 11));
      assert.deepEqual(byPartition(2), range(0, 10));
      assert.deepEqual(h.filter((r) => r.partition === 0).map((r) => new TextDecoder().decode(r.value!)), [
        "2",
        "3",
        "4",
        "0",
        "1",
      ]);
    });

    await t.step("runs at start and then periodically until stopped", async () => {
      await saveGroupOffset(db.sql, "h", "t", 2, 10);
      now = T0 + 30 * HOUR; // the records appended an hour before T0 are old now
      const scheduled = retention({ intervalMs: 50 });
      scheduled.start();
      try {
        await eventually("t:2 purged", async () => ((await offsets(db.sql, "t"))[2] === undefined ? true : undefined));
        // Later appends, consumed later, go at a later pass.
        await saveGroupOffset(db.sql, "g", "t", 0, 17);
        await saveGroupOffset(db.sql, "h", "t", 0, 17);
        await eventually("t:0 purged", async () => ((await offsets(db.sql, "t"))[0] === undefined ? true : undefined));
      } finally {
        await scheduled.stop();
      }
      assert.equal(
        await log.consumer({ groupId: "g" }).earliestOffset({ topic: "t", partition: 2 }),
        10,
        "an emptied partition starts at its end, not at 0",
      );
      // Every record of t:0 was old and passed; its counter is untouched and the next append gets 17.
      await append("t", 0, 1);
      assert.deepEqual((await offsets(db.sql, "t"))[0], [17]);
    });

    await t.step("a registered group holds its topics' records until it commits past them", async () => {
      await log.ensureTopics([{ topic: "reg", partitions: 1 }]);
      await log.registerGroup("r", ["reg"]);
      now = T0 - 48 * HOUR;
      await append("reg", 0, 5);
      now = T0 + 48 * HOUR;
      assert.equal((await retention().purge()).get("reg"), undefined, "r has passed nothing yet");
      assert.deepEqual((await offsets(db.sql, "reg"))[0], range(0, 5));
      await log.registerGroup("r", ["reg"]); // registering again keeps the group's offsets
      await saveGroupOffset(db.sql, "r", "reg", 0, 3);
      await log.registerGroup("r", ["reg"]);
      assert.equal((await retention().purge()).get("reg"), 3);
      assert.deepEqual((await offsets(db.sql, "reg"))[0], [3, 4]);
    });

    await t.step("a group registered after records were appended still holds them", async () => {
      await log.ensureTopics([{ topic: "late", partitions: 1 }]);
      now = T0 - 48 * HOUR;
      await append("late", 0, 4);
      await log.registerGroup("late-group", ["late"]);
      now = T0 + 48 * HOUR;
      assert.equal((await retention().purge()).get("late"), undefined);
      assert.deepEqual((await offsets(db.sql, "late"))[0], range(0, 4));
    });

    await t.step("a record exactly the retention old is kept; one a millisecond older is deleted", async () => {
      await log.ensureTopics([{ topic: "edge", partitions: 1 }]);
      now = T0 - 24 * HOUR - 1;
      await append("edge", 0, 1);
      now = T0 - 24 * HOUR;
      await append("edge", 0, 1);
      now = T0;
      assert.equal((await retention().purge()).get("edge"), 1);
      assert.deepEqual((await offsets(db.sql, "edge"))[0], [1]);
    });

    await t.step("a pass stopped midway ends after its current chunk", async () => {
      await log.ensureTopics([{ topic: "halted", partitions: 1 }]);
      now = T0 - 48 * HOUR;
      await append("halted", 0, 10);
      now = T0;
      const halted = new EmbeddedLogRetention(db.sql, {
        retentionMs: 24 * HOUR,
        logger: silentLogger,
        clock: () => now,
        chunkRecords: 2,
        instrumentation: { emit: () => void halted.stop() },
      });
      assert.equal((await halted.purge()).get("halted"), 2);
      assert.deepEqual((await offsets(db.sql, "halted"))[0], range(2, 10));
    });

    await t.step("start runs a pass at once, not after the first interval, and stop ends the schedule", async () => {
      await log.ensureTopics([{ topic: "prompt", partitions: 1 }]);
      now = T0 - 48 * HOUR;
      await append("prompt", 0, 3);
      now = T0;
      const scheduled = retention({ intervalMs: HOUR });
      scheduled.start();
      try {
        await eventually(
          "prompt purged",
          async () => (await offsets(db.sql, "prompt"))[0] ? undefined : true,
          5_000,
          10,
        );
      } finally {
        await scheduled.stop();
      }
      // Stopped while its pass runs, a retention schedules no further pass (each pass reads the clock once).
      let passes = 0;
      const stoppedEarly = new EmbeddedLogRetention(db.sql, {
        retentionMs: 24 * HOUR,
        logger: silentLogger,
        intervalMs: 1,
        clock: () => (passes++, now),
      });
      stoppedEarly.start();
      await stoppedEarly.stop();
      const stoppedAfter = passes;
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(passes, stoppedAfter, "a pass ran after stop");
    });

    await t.step("refuses a retention that is not positive", () => {
      assert.throws(() => new EmbeddedLogRetention(db.sql, { retentionMs: 0, logger: silentLogger }), RangeError);
    });
  } finally {
    await log.close();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
