/**
 * `dlq replay` records what it re-injected by DLQ partition and offset (`dlq_replays`). A DLQ topic created again
 * (deleted to clear it, and created by the next start-up) numbers its records from 0 again, and another
 * TOPIC_PREFIX's DLQ has offsets of its own: neither holds the records an earlier run re-injected.
 */
import assert from "node:assert/strict";
import { deadLetter } from "../../engine/dead_letter.ts";
import { replayDlq } from "../../engine/dlq_replay.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { ValidationError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import type { Sql } from "../../engine/database.ts";
import { migrate } from "../../sql/migrations.ts";

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);

/** A log whose `dlqTopic` holds a dead letter of each of `users`' page views, appended at `at`. */
async function logWithDeadLetters(dlqTopic: string, users: readonly string[], at: number): Promise<MemoryLog> {
  const log = new MemoryLog(() => at);
  await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: dlqTopic, partitions: 1 }]);
  for (const userId of users) {
    const value = JSON.stringify({ type: "page_viewed", userId, properties: { url: "/" } });
    const [source] = log.appendNow([{ topic: "events", key: userId, value }]);
    log.appendNow([deadLetter(dlqTopic, source, new ValidationError("invalid event: fixed since"))]);
  }
  return log;
}

/** Replays `log`'s DLQ into its `events`; returns the summary and the users re-injected. */
async function replay(sql: Sql, log: MemoryLog, dlqTopic: string) {
  const before = log.all("events").length;
  const summary = await replayDlq({
    consumer: log.consumer(),
    producer: log.producer(),
    sql,
    dlqTopic,
    groupId: "g",
    idleMs: 300,
  });
  return { summary, users: log.all("events").slice(before).map((r) => r.key) };
}

Deno.test("dlq replay re-injects the records of a DLQ created again, and of another prefix's DLQ, once each", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dlq-recreated-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const first = await replay(db.sql, await logWithDeadLetters("dlq", ["a", "b"], T0), "dlq");
    assert.deepEqual(first.users, ["a", "b"]);

    // The DLQ deleted and created again: its new records are at offsets 0 and 1 as the replayed ones were.
    const recreated = await logWithDeadLetters("dlq", ["c", "d"], T0 + 86_400_000);
    const second = await replay(db.sql, recreated, "dlq");
    assert.deepEqual(second.users, ["c", "d"], "the new DLQ's records were taken for those replayed before");
    assert.equal(second.summary.alreadyReplayed, 0);
    const again = await replay(db.sql, recreated, "dlq");
    assert.deepEqual(again.users, [], "each is re-injected once");
    assert.equal(again.summary.alreadyReplayed, 2);

    // Another TOPIC_PREFIX on the same database and group.
    const prefixed = await replay(db.sql, await logWithDeadLetters("shop.dlq", ["e"], T0), "shop.dlq");
    assert.deepEqual(prefixed.users, ["e"]);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
