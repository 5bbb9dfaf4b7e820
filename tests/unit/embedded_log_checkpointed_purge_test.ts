/**
 * Retention of the embedded log's internal topics (product-events, analytics) by checkpoint: their records are deleted
 * as soon as every consuming group's checkpoint (partition_checkpoints, where a partition resumes after a crash) and
 * committed offset have passed them, however recent, and never a record at or past a checkpoint, whatever its age or
 * the group's committed offset.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { type EmbeddedDatabase, openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { EmbeddedLog } from "../../engine/embedded_log.ts";
import { EmbeddedLogRetention } from "../../engine/embedded_log_retention.ts";
import type { EngineEvent } from "../../engine/instrumentation.ts";
import { silentLogger } from "../../engine/logger.ts";
import { purgeCheckpointedRecords, saveGroupOffset } from "../../sql/embedded_log.ts";
import { migrate } from "../../sql/migrations.ts";
import { remainingOffsets as offsets } from "../helpers/read_topic.ts";

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 1);

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Sets `groupId`'s checkpoint of a partition, as a checkpoint's commit leaves it. */
async function checkpoint(sql: Sql, groupId: string, topic: string, partition: number, nextOffset: number) {
  await sql`
    insert into partition_checkpoints (group_id, topic, partition, next_offset, epoch, owner)
    values (${groupId}, ${topic}, ${partition}, ${nextOffset}, 1, 'test')
    on conflict (group_id, topic, partition) do update set next_offset = excluded.next_offset`;
}

Deno.test("EmbeddedLogRetention of checkpointed topics", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "embedded-checkpointed-purge-" });
  const db: EmbeddedDatabase = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  let now = T0;
  const log = await EmbeddedLog.open(db.sql, { logger: silentLogger, clock: () => now });
  const events: EngineEvent[] = [];
  const retention = (options: { chunkRecords?: number } = {}) =>
    new EmbeddedLogRetention(db.sql, {
      retentionMs: 24 * HOUR,
      logger: silentLogger,
      clock: () => now,
      checkpointedTopics: ["facts", "lonely"],
      instrumentation: { emit: (e) => events.push(e) },
      ...options,
    });
  const append = (topic: string, partition: number, n: number) =>
    log.append(range(0, n).map((i) => ({ topic, key: `k${i}`, value: `${i}`, partition })));
  try {
    await migrate(db.sql);
    await log.ensureTopics([
      { topic: "facts", partitions: 3 },
      { topic: "src", partitions: 1 },
      { topic: "lonely", partitions: 1 },
    ]);
    await log.registerGroup("g", ["facts", "src"]);
    await log.registerGroup("h", ["facts", "src"]);
    // Ten records in every partition, all appended just now: the age rule deletes none of them.
    for (const p of [0, 1, 2]) await append("facts", p, 10);
    await append("src", 0, 10);
    await append("lonely", 0, 10);
    // facts:0: g committed past everything but its checkpoint stands at 6; h is at 8 in both.
    await saveGroupOffset(db.sql, "g", "facts", 0, 10);
    await checkpoint(db.sql, "g", "facts", 0, 6);
    await saveGroupOffset(db.sql, "h", "facts", 0, 8);
    await checkpoint(db.sql, "h", "facts", 0, 8);
    // facts:1: both committed everything; h has no checkpoint of it (it never claimed the partition).
    await saveGroupOffset(db.sql, "g", "facts", 1, 10);
    await checkpoint(db.sql, "g", "facts", 1, 10);
    await saveGroupOffset(db.sql, "h", "facts", 1, 10);
    // facts:2: both checkpointed everything; g's commit after its checkpoint has not landed yet (it is at 3).
    await saveGroupOffset(db.sql, "g", "facts", 2, 3);
    await checkpoint(db.sql, "g", "facts", 2, 10);
    await saveGroupOffset(db.sql, "h", "facts", 2, 10);
    await checkpoint(db.sql, "h", "facts", 2, 10);
    // src is consumed and checkpointed to its end, but is not a checkpointed topic: kept for the retention.
    for (const group of ["g", "h"]) {
      await saveGroupOffset(db.sql, group, "src", 0, 10);
      await checkpoint(db.sql, group, "src", 0, 10);
    }

    await t.step("deletes recent records below every group's checkpoint and committed offset, no further", async () => {
      const deleted = await retention({ chunkRecords: 2 }).purge();
      assert.deepEqual(Object.fromEntries(deleted), { facts: 6 + 3 });
      assert.deepEqual(await offsets(db.sql, "facts"), {
        0: range(6, 10), // g's checkpoint is at 6, although it committed 10
        1: range(0, 10), // h has no checkpoint: it resumes from 0
        2: range(3, 10), // g's committed offset lags its checkpoint: the lesser bound holds
      });
      assert.deepEqual(await offsets(db.sql, "src"), { 0: range(0, 10) }, "a topic not checkpointed keeps its age");
      // No group consumes `lonely`: nothing tells when it is consumed, so only its age deletes it.
      assert.deepEqual(await offsets(db.sql, "lonely"), { 0: range(0, 10) });
      const purged = events.flatMap((e) => e.type === "log_records_purged" ? [e.count] : []);
      assert.ok(purged.every((n) => n <= 2), `chunks of ${purged.join(", ")}`);
    });

    await t.step("a deletion never passes the checkpoint it finds, whatever floor it was given", async () => {
      // A floor read before a checkpoint moved back (or simply wrong) is bounded by the checkpoint in the statement.
      const n = await purgeCheckpointedRecords(db.sql, { topic: "facts", partition: 0, floor: 10 }, 100);
      assert.equal(n, 0);
      assert.deepEqual((await offsets(db.sql, "facts"))[0], range(6, 10));
      await checkpoint(db.sql, "h", "facts", 1, 4);
      assert.equal(await purgeCheckpointedRecords(db.sql, { topic: "facts", partition: 1, floor: 10 }, 100), 4);
      assert.deepEqual((await offsets(db.sql, "facts"))[1], range(4, 10));
    });

    await t.step("as checkpoints advance, the next pass deletes what they passed", async () => {
      await checkpoint(db.sql, "g", "facts", 0, 9);
      await saveGroupOffset(db.sql, "g", "facts", 2, 10);
      await checkpoint(db.sql, "h", "facts", 1, 10);
      assert.deepEqual(Object.fromEntries(await retention().purge()), { facts: 2 + 6 + 7 });
      assert.deepEqual(await offsets(db.sql, "facts"), { 0: [8, 9] });
    });

    await t.step("an old record at a checkpoint is kept, although every group committed past it", async () => {
      await saveGroupOffset(db.sql, "h", "facts", 0, 10);
      now = T0 + 48 * HOUR;
      const deleted = await retention().purge();
      // The other topics go by age and commits alone, as before.
      assert.deepEqual(Object.fromEntries(deleted), { src: 10, lonely: 10 });
      assert.deepEqual((await offsets(db.sql, "facts"))[0], [8, 9], "h has checkpointed only 8");
    });

    await t.step("appends after a purge continue each partition's offsets", async () => {
      await append("facts", 1, 2);
      assert.deepEqual((await offsets(db.sql, "facts"))[1], [10, 11]);
      const consumer = log.consumer({ groupId: "g" });
      assert.equal(await consumer.earliestOffset({ topic: "facts", partition: 2 }), 10);
    });

    await t.step(
      "a group whose offsets were deleted (stopped for good) holds nothing, whatever its checkpoints",
      async () => {
        // README, Retention: a group that stops for good holds its topics' records until its rows leave
        // embedded_log_group_offsets. h's checkpoints stay in partition_checkpoints; only g bounds the purge now.
        await db.sql`delete from embedded_log_group_offsets where group_id = 'h'`;
        assert.deepEqual(Object.fromEntries(await retention().purge()), { facts: 1 });
        assert.deepEqual(await offsets(db.sql, "facts"), { 0: [9], 1: [10, 11] }, "g's checkpoints: 9 and 10");
      },
    );
  } finally {
    await log.close();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
