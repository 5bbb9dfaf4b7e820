/**
 * A replay interrupted (Ctrl-C, SIGTERM) stops once the records in hand are re-injected and recorded, so that the next
 * run re-injects the rest and none again: killed at once, the records appended but not yet recorded went in twice.
 */
import assert from "node:assert/strict";
import { openBackend } from "../../engine/backend.ts";
import { consumedTopics, parseConfig, topicNames } from "../../engine/config.ts";
import { deadLetter } from "../../engine/dead_letter.ts";
import { replayDlq } from "../../engine/dlq_replay.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { TerminalError, ValidationError } from "../../engine/errors.ts";
import type { LogProducer } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { migrate } from "../../sql/migrations.ts";
import { claimStateOwner } from "../../sql/state_owner.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("dlq replay stopped by its signal records the batch in hand and stops; the next run re-injects the rest once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dlq-interrupt-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const log = new MemoryLog();
    await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 1 }]);
    for (let i = 0; i < 10; i++) {
      const [source] = log.appendNow([{ topic: "events", key: `u${i}`, value: "{oops" }]);
      log.appendNow([deadLetter("dlq", source, new ValidationError("invalid JSON"))]);
    }
    const stop = new AbortController();
    let appends = 0;
    const inner = log.producer();
    // Ctrl-C arrives while the second batch is being appended.
    const producer: LogProducer = {
      append: (records, options) => (++appends === 2 && stop.abort(), inner.append(records, options)),
      close: () => inner.close(),
    };
    const replay = (signal?: AbortSignal) =>
      replayDlq({
        consumer: log.consumer({ maxBatch: 2 }),
        producer,
        sql: db.sql,
        dlqTopic: "dlq",
        groupId: "g",
        idleMs: 1_000,
        signal,
      });
    const replayedKeys = () => log.all("events").slice(10).map((r) => r.key);

    const first = await replay(stop.signal);
    assert.equal(first.interrupted, true);
    assert.equal(first.complete, false);
    assert.equal(first.replayed, 4, "the two batches it appended");
    assert.deepEqual(replayedKeys(), ["u0", "u1", "u2", "u3"], "no batch after the signal");
    const recorded = await db.sql`select "offset" from dlq_replays`;
    assert.equal(recorded.length, 4, "the batch in hand when interrupted is recorded");

    const second = await replay();
    assert.equal(second.interrupted, false);
    assert.equal(second.complete, true);
    assert.equal(second.replayed, 6);
    assert.equal(second.alreadyReplayed, 4);
    assert.deepEqual(replayedKeys(), Array.from({ length: 10 }, (_, i) => `u${i}`), "each re-injected once");
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("`deno task dlq replay` interrupted by Ctrl-C says so, exits 130, and the next run re-injects none twice", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-interrupt-" });
  const COUNT = 5_000; // ten batches of the embedded consumer
  try {
    // An engine ran on DATA_DIR and dead-lettered COUNT events (an earlier version's handler rejected them).
    const config = parseConfig({ DATA_DIR: dataDir });
    const topics = topicNames(config);
    const backend = await openBackend(config, topics, silentLogger);
    try {
      await migrate(backend.sql);
      await claimStateOwner(backend.sql, config.GROUP_ID, consumedTopics(topics));
      await backend.producer.append(Array.from({ length: COUNT }, (_, i) =>
        deadLetter(topics.dlq, {
          topic: topics.events,
          partition: 0,
          offset: i,
          key: `u${i}`,
          value: new TextEncoder().encode(JSON.stringify({ type: "page_viewed", userId: `u${i}` })),
          headers: {},
          timestamp: Date.now(),
        }, new TerminalError("fixed since"))));
    } finally {
      await backend.close();
    }
    const inherited = Deno.env.toObject();
    for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "GROUP_ID", "TOPIC_PREFIX"]) delete inherited[name];
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", "scripts/dlq.ts", "replay"],
        cwd: ROOT,
        env: { ...inherited, DATA_DIR: dataDir, LOG_LEVEL: "info" },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const text = async (stream: ReadableStream<Uint8Array>) => {
      let out = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) out += chunk;
      return out;
    };

    const first = run();
    const stdout = text(first.stdout);
    // Ctrl-C once the replay has its partitions, as its batches are being re-injected.
    let stderr = "";
    for await (const chunk of first.stderr.pipeThrough(new TextDecoderStream())) {
      if (!stderr.includes("partitions assigned") && (stderr + chunk).includes("partitions assigned")) {
        first.kill("SIGINT");
      }
      stderr += chunk;
    }
    const status = await first.status;
    assert.equal(status.code, 130, stderr);
    assert.match(stderr, /interrupted before the end of events\.dlq: run it again/);
    assert.match(await stdout, /^replayed \d+ record\(s\) from events\.dlq/);

    const second = run();
    const [out, err, end] = await Promise.all([text(second.stdout), text(second.stderr), second.status]);
    assert.equal(end.code, 0, err);
    assert.match(out, /^replayed \d+ record\(s\) from events\.dlq/);
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      const [row] = await db.sql<{ n: number; keys: number }[]>`
        select count(*)::int as n, count(distinct key)::int as keys from embedded_log_records where topic = 'events'`;
      assert.deepEqual(row, { n: COUNT, keys: COUNT }, "each dead letter re-injected once over both runs");
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
