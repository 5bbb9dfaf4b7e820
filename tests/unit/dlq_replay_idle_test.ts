/**
 * A replay gives up after `idleMs` without records (the log failing), not while it is still re-injecting a batch: on a
 * slow machine or log, a batch whose append took longer than that ended the run as incomplete, short of the DLQ's end.
 */
import assert from "node:assert/strict";
import { deadLetter } from "../../engine/dead_letter.ts";
import { replayDlq } from "../../engine/dlq_replay.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogProducer } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { migrate } from "../../sql/migrations.ts";
import type { Sql } from "../../engine/database.ts";

/** A migrated database and an in-memory log with `events` and `dlq`, both dropped after `fn`. */
async function withDlq(fn: (log: MemoryLog, sql: Sql) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dlq-idle-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const log = new MemoryLog();
    await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 1 }]);
    await fn(log, db.sql);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("dlq replay: a batch whose append takes longer than idleMs does not end the run short of the DLQ's end", () =>
  withDlq(async (log, sql) => {
    for (let i = 0; i < 6; i++) {
      const [source] = log.appendNow([{ topic: "events", key: `u${i}`, value: "{oops" }]);
      log.appendNow([deadLetter("dlq", source, new ValidationError("invalid JSON"))]);
    }
    const IDLE_MS = 200;
    const inner = log.producer();
    // Each append takes three times the idle limit (a loaded machine, a slow broker).
    const producer: LogProducer = {
      append: async (records, options) => {
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 3));
        return await inner.append(records, options);
      },
      close: () => inner.close(),
    };
    const summary = await replayDlq({
      consumer: log.consumer({ maxBatch: 2 }),
      producer,
      sql,
      dlqTopic: "dlq",
      groupId: "g",
      idleMs: IDLE_MS,
    });
    assert.equal(summary.complete, true, JSON.stringify(summary));
    assert.equal(summary.replayed, 6);
    assert.deepEqual(log.all("events").slice(6).map((r) => r.key), ["u0", "u1", "u2", "u3", "u4", "u5"]);
  }));

Deno.test("dlq replay: a log that delivers nothing for idleMs still ends the run, as incomplete", () =>
  withDlq(async (log, sql) => {
    const [source] = log.appendNow([{ topic: "events", key: "u0", value: "{oops" }]);
    log.appendNow([deadLetter("dlq", source, new ValidationError("invalid JSON"))]);
    const consumer = log.consumer();
    consumer.pause([{ topic: "dlq", partition: 0 }]); // delivers nothing, as a log that keeps failing
    const started = Date.now();
    const summary = await replayDlq({
      consumer,
      producer: log.producer(),
      sql,
      dlqTopic: "dlq",
      groupId: "g",
      idleMs: 200,
    });
    assert.equal(summary.complete, false);
    assert.equal(summary.replayed, 0);
    assert.ok(Date.now() - started < 10_000, "it gave up");
  }));
