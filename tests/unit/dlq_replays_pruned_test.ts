/**
 * `dlq_replays` over time: a row says a DLQ record was re-injected, and is needed only while that record can still be
 * read. Rows of records retention deleted (below their partition's first offset) go at the next replay, and a replay
 * reads only the rows of the offsets it reads, so that neither the table nor a replay's cost grows with the deployment's
 * age.
 */
import assert from "node:assert/strict";
import { deadLetter } from "../../engine/dead_letter.ts";
import { replayDlq } from "../../engine/dlq_replay.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { EmbeddedLog } from "../../engine/embedded_log.ts";
import { ValidationError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { Sql } from "../../engine/database.ts";
import { purgeOldestRecords } from "../../sql/embedded_log.ts";
import { migrate } from "../../sql/migrations.ts";
import { undecodable } from "../helpers/undecodable.ts";

/** `sql`, counting the rows its reads of `dlq_replays` returned. */
function countingReads(sql: Sql): { sql: Sql; rowsRead: () => number } {
  let rows = 0;
  const spy = new Proxy(sql, {
    apply(target, self, args) {
      const query = Reflect.apply(target, self, args);
      const text = Array.isArray(args[0]) ? (args[0] as string[]).join("?") : "";
      if (/select[\s\S]*from dlq_replays/.test(text)) {
        query.then((result: unknown[]) => void (rows += result.length), () => {});
      }
      return query;
    },
  });
  return { sql: spy, rowsRead: () => rows };
}

Deno.test("dlq replay forgets the records retention deleted, never one still in the DLQ, and reads only its range", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dlq-pruned-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const log = await EmbeddedLog.open(db.sql, { logger: silentLogger });
    try {
      await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 2 }]);
      const source = (key: string, offset: number) => undecodable("events", { offset, key });
      // Four dead letters in partition 0 of the DLQ (offsets 0-3), one in partition 1.
      await log.append([
        ...[0, 1, 2, 3].map((i) => ({
          ...deadLetter("dlq", source(`a${i}`, i), new ValidationError("invalid JSON")),
          partition: 0,
        })),
        { ...deadLetter("dlq", source("b", 4), new ValidationError("invalid JSON")), partition: 1 },
      ]);
      const events = async () =>
        Number(
          (await db.sql<{ n: string }[]>`select count(*) as n from embedded_log_records where topic = 'events'`)[0].n,
        );
      const rows = async () =>
        (await db.sql<{ topic: string; partition: number; offset: string }[]>`
          select topic, partition, "offset" from dlq_replays order by topic, partition, "offset"`)
          .map((r) => `${r.topic}:${r.partition}/${r.offset}`);
      const replay = (sql: Sql, dryRun = false) =>
        replayDlq({
          consumer: log.consumer({ groupId: "g.dlq-replay", pollIntervalMs: 20 }),
          producer: log.producer(),
          sql,
          dlqTopic: "dlq",
          groupId: "g",
          idleMs: 1_000,
          dryRun,
        });

      const first = await replay(db.sql);
      assert.equal(first.replayed, 5);
      assert.equal(await events(), 5);
      // A row recorded before migration 015 (no topic, no time) matches any DLQ: it is kept. So is a row of another
      // prefix's DLQ, and one of an earlier DLQ topic (deleted and created again) at an offset past this one's end.
      await db.sql`insert into dlq_replays (group_id, partition, "offset") values ('g', 0, 0)`;
      await db.sql`insert into dlq_replays (group_id, topic, partition, "offset", record_time)
                   values ('g', 'shop.dlq', 0, 0, 1)`;
      await db.sql`insert into dlq_replays (group_id, topic, partition, "offset", record_time)
                   select 'g', 'dlq', 0, o, 1 from generate_series(100, 1099) as o`;

      // A week later retention (by age alone on the DLQ) deleted offsets 0 and 1 of partition 0, and all of partition 1.
      assert.equal(
        await purgeOldestRecords(db.sql, { topic: "dlq", partition: 0, floor: 2 }, Date.now() + 1, 2_000),
        2,
      );
      assert.equal(
        await purgeOldestRecords(db.sql, { topic: "dlq", partition: 1, floor: 1 }, Date.now() + 1, 2_000),
        1,
      );

      const dry = await replay(db.sql, true);
      assert.equal(dry.replayed, 0);
      assert.equal(dry.alreadyReplayed, 2);
      assert.equal((await rows()).length, 1_007, "a dry run changes nothing");

      const counting = countingReads(db.sql);
      const second = await replay(counting.sql);
      assert.equal(second.replayed, 0, "the records still in the DLQ are not re-injected again");
      assert.equal(second.alreadyReplayed, 2);
      assert.equal(second.complete, true);
      assert.equal(await events(), 5);
      const earlierTopic = /^dlq:0\/\d{3,4}$/;
      assert.equal((await rows()).filter((r) => earlierTopic.test(r)).length, 1_000);
      assert.deepEqual(
        (await rows()).filter((r) => !earlierTopic.test(r)),
        [":0/0", "dlq:0/2", "dlq:0/3", "shop.dlq:0/0"],
        "the rows of the records retention deleted are gone, the others kept",
      );
      // The rows of the two records it read; none of the thousand past the DLQ's end, nor the legacy one below it.
      assert.equal(counting.rowsRead(), 2);

      // Once the DLQ is empty, a third run leaves no row of it behind but the earlier topic's, past its end.
      await purgeOldestRecords(db.sql, { topic: "dlq", partition: 0, floor: 4 }, Date.now() + 1, 2_000);
      const third = await replay(db.sql);
      assert.equal(third.replayed, 0);
      assert.equal(third.complete, true);
      assert.equal((await rows()).filter((r) => r === "dlq:0/2" || r === "dlq:0/3").length, 0);
    } finally {
      await log.close();
    }
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
