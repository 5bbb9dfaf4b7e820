/**
 * A replay whose consumer the group drops and takes back mid-run (Kafka: a new member id, every partition revoked and
 * assigned again) goes on from where it got: it read each partition from its start again, so a dry run counted those
 * records twice, a real run counted the ones it had just re-injected as "already replayed earlier", and records
 * dead-lettered since it started (re-injected ones failing again) were re-injected in the same run.
 */
import assert from "node:assert/strict";
import { deadLetter } from "../../engine/dead_letter.ts";
import { replayDlq, REPLAYED_FROM_HEADER } from "../../engine/dlq_replay.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { ValidationError } from "../../engine/errors.ts";
import {
  type AppendOptions,
  type LogConsumer,
  type OutgoingRecord,
  type PartitionListener,
  tpKey,
} from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { Sql } from "../../engine/database.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { migrate } from "../../sql/migrations.ts";

const DLQ = { topic: "dlq", partition: 0 };

/** A DLQ of `count` dead letters of users u0…, and one record without headers (not the engine's). */
async function logWithDeadLetters(count: number): Promise<MemoryLog> {
  const log = new MemoryLog();
  await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 1 }]);
  for (let i = 0; i < count; i++) {
    const [source] = log.appendNow([{ topic: "events", key: `u${i}`, value: "{oops" }]);
    log.appendNow([deadLetter("dlq", source, new ValidationError("invalid JSON"))]);
  }
  log.appendNow([{ topic: "dlq", key: "x", value: "{}", headers: {} }]);
  return log;
}

/** Runs `fn` on a migrated embedded database in a temporary folder and a DLQ of six dead letters (logWithDeadLetters). */
async function withDeadLetters(fn: (log: MemoryLog, sql: Sql) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dlq-rejoin-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await fn(await logWithDeadLetters(6), db.sql);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A consumer of DLQ partition 0 of `log` whose `start` is `deliver` (`stopped` says whether it was stopped since). */
function dlqConsumer(
  log: MemoryLog,
  deliver: (listener: PartitionListener, stopped: () => boolean) => Promise<void>,
): LogConsumer {
  let stopped = false;
  return {
    start: (_topics: readonly string[], listener: PartitionListener) => deliver(listener, () => stopped),
    seek: () => {},
    commit: () => Promise.resolve(),
    earliestOffset: (tp) => Promise.resolve(log.earliest(tp)),
    endOffset: (tp) => Promise.resolve(log.endOffset(tp)),
    endOffsets: () => Promise.resolve(new Map([[0, log.endOffset(DLQ)]])),
    pause: () => {},
    resume: () => {},
    stop: () => (stopped = true, Promise.resolve()),
  };
}

/**
 * Reads DLQ partition 0 in batches of two; after the second, the group drops the member and assigns the partition
 * again, as KafkaConsumer reports a rejoin (revoked, then assigned: it seeks to the offset the listener returns).
 * `onRejoin` runs in between.
 */
function rejoiningConsumer(log: MemoryLog, onRejoin: () => void = () => {}): LogConsumer {
  return dlqConsumer(log, async (listener, stopped) => {
    let position = (await listener.assigned([DLQ])).get(tpKey(DLQ)) ?? 0;
    (async () => {
      for (let delivered = 1; !stopped() && position < log.endOffset(DLQ); delivered++) {
        const records = log.read(DLQ, position, 2);
        await listener.batch({ ...DLQ, records, highWatermark: log.endOffset(DLQ) }, () => Promise.resolve());
        position = records.at(-1)!.offset + 1;
        if (delivered === 2) {
          onRejoin();
          await listener.revoked([DLQ]);
          position = (await listener.assigned([DLQ])).get(tpKey(DLQ)) ?? 0;
        }
      }
    })();
  });
}

Deno.test("dlq replay whose consumer rejoins mid-run counts and re-injects each record once, and none dead-lettered since", async () => {
  await withDeadLetters(async (log, sql) => {
    const options = { producer: log.producer(), sql, dlqTopic: "dlq", groupId: "g", idleMs: 1_000 };

    const dry = await replayDlq({ ...options, consumer: rejoiningConsumer(log), dryRun: true });
    assert.deepEqual(
      { replayed: dry.replayed, unusable: dry.unusable, alreadyReplayed: dry.alreadyReplayed, complete: dry.complete },
      { replayed: 6, unusable: 1, alreadyReplayed: 0, complete: true },
      "a dry run counts each record once",
    );
    assert.equal(log.endOffset({ topic: "events", partition: 0 }), 6, "a dry run appends nothing");

    // While the group rebalances, the engine dead-letters again a record the replay re-injected.
    const again = () => {
      const [source] = log.appendNow([{ topic: "events", key: "u0", value: "{still" }]);
      log.appendNow([deadLetter("dlq", source, new ValidationError("invalid JSON"))]);
    };
    const real = await replayDlq({ ...options, consumer: rejoiningConsumer(log, again) });
    assert.deepEqual(
      {
        replayed: real.replayed,
        unusable: real.unusable,
        alreadyReplayed: real.alreadyReplayed,
        complete: real.complete,
      },
      { replayed: 6, unusable: 1, alreadyReplayed: 0, complete: true },
      "the records this run re-injected are not 'already replayed earlier'",
    );
    const replayed = log.all("events").filter((r) => r.headers[REPLAYED_FROM_HEADER] !== undefined).map((r) => r.key);
    assert.deepEqual(
      replayed,
      ["u0", "u1", "u2", "u3", "u4", "u5"],
      "each record re-injected once, and the one dead-lettered since left for a later run",
    );
  });
});

/**
 * As KafkaConsumer on a rejoin: the lane of the batch in hand is dropped, not waited for, so the partition assigned
 * again delivers its next batch while that one's append is still pending (until `release`).
 */
function rejoiningMidAppendConsumer(log: MemoryLog, appending: Promise<void>, release: () => void): LogConsumer {
  return dlqConsumer(log, async (listener, stopped) => {
    const deliver = (position: number) =>
      listener.batch(
        { ...DLQ, records: log.read(DLQ, position, 2), highWatermark: log.endOffset(DLQ) },
        () => Promise.resolve(),
      );
    let position = (await listener.assigned([DLQ])).get(tpKey(DLQ)) ?? 0;
    await deliver(position);
    position += 2;
    const inHand = deliver(position).catch(() => {});
    await appending;
    await listener.revoked([DLQ]);
    position = (await listener.assigned([DLQ])).get(tpKey(DLQ)) ?? 0;
    const next = deliver(position).catch(() => {});
    release();
    await Promise.all([inHand, next]);
    (async () => {
      for (position = log.read(DLQ, position, 2).at(-1)!.offset + 1; !stopped() && position < log.endOffset(DLQ);) {
        const records = log.read(DLQ, position, 2);
        await listener.batch({ ...DLQ, records, highWatermark: log.endOffset(DLQ) }, () => Promise.resolve());
        position = records.at(-1)!.offset + 1;
      }
    })();
  });
}

Deno.test("dlq replay whose consumer rejoins while a batch's append is pending re-injects that batch's records once", async () => {
  await withDeadLetters(async (log, sql) => {
    const inner = log.producer();
    const appending = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    let held = false;
    // The append of the second batch (u2, u3) waits for the rejoin.
    const producer = {
      async append(records: readonly OutgoingRecord[], options?: AppendOptions) {
        if (!held && records.some((r) => r.key === "u2")) {
          held = true;
          appending.resolve();
          await gate.promise;
        }
        return inner.append(records, options);
      },
      close: () => inner.close(),
    };
    const summary = await replayDlq({
      consumer: rejoiningMidAppendConsumer(log, appending.promise, gate.resolve),
      producer,
      sql,
      dlqTopic: "dlq",
      groupId: "g",
      idleMs: 1_000,
    });
    const replayed = log.all("events").filter((r) => r.headers[REPLAYED_FROM_HEADER] !== undefined).map((r) => r.key);
    assert.deepEqual(replayed, ["u0", "u1", "u2", "u3", "u4", "u5"], "each record re-injected once");
    assert.deepEqual(
      { replayed: summary.replayed, alreadyReplayed: summary.alreadyReplayed, complete: summary.complete },
      { replayed: 6, alreadyReplayed: 0, complete: true },
    );
  });
});
