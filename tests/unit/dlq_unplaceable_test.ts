/**
 * `dlq replay` against DLQ records it cannot place: a source topic the log does not have (or the engine does not read),
 * a record without a key whose source partition its topic lacks (the topic created again with fewer partitions) or
 * garbled, headers missing (written by something other than the engine). Each is reported by its DLQ partition and
 * offset, counted and left, and every other record is re-injected once: such a record used to fail its whole batch, so
 * that the records behind it were never replayed and every run ended "the log or database kept failing".
 */
import assert from "node:assert/strict";
import { openBackend } from "../../engine/backend.ts";
import { consumedTopics, parseConfig, topicNames } from "../../engine/config.ts";
import { deadLetter, DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { placeDeadLetter } from "../../engine/dlq_placement.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogRecord, OutgoingRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";
import { claimStateOwner } from "../../sql/state_owner.ts";
import { undecodable } from "../helpers/undecodable.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const ENV = { PARTITIONS: "4" };

/** Runs scripts/dlq.ts with `args` in embedded mode on `dataDir` (nothing of the caller's configuration inherited). */
async function runDlq(dataDir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const inherited = Deno.env.toObject();
  for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "DATA_DIR", "GROUP_ID", "TOPIC_PREFIX", "PARTITIONS"]) {
    delete inherited[name];
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "scripts/dlq.ts", ...args],
    cwd: ROOT,
    env: { ...inherited, ...ENV, DATA_DIR: dataDir },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr).trim() };
}

/** The keys of the records of `topic` in `dataDir`'s log, sorted. */
async function keysOf(dataDir: string, topic: string): Promise<(string | null)[]> {
  const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    const rows = await db.sql<{ key: string | null }[]>`
      select key from embedded_log_records where topic = ${topic} order by key`;
    return rows.map((r) => r.key);
  } finally {
    await db.close();
  }
}

Deno.test("dlq replay reports, counts and leaves the records it cannot place, and re-injects every other once", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-unplaceable-" });
  try {
    const config = parseConfig({ DATA_DIR: dataDir, ...ENV });
    const topics = topicNames(config);
    const backend = await openBackend(config, topics, silentLogger);
    try {
      await migrate(backend.sql);
      await claimStateOwner(backend.sql, config.GROUP_ID, consumedTopics(topics));
      const source = (key: string | null, partition: number, topic = topics.events): LogRecord =>
        undecodable(topic, { partition, offset: 7, key });
      const dead = (record: LogRecord, headers: Record<string, string> = {}): OutgoingRecord => {
        const letter = deadLetter(topics.dlq, record, new ValidationError("invalid JSON"));
        return { ...letter, headers: { ...letter.headers, ...headers }, partition: 0 }; // one DLQ partition, in order
      };
      const foreign: OutgoingRecord = { topic: topics.dlq, key: "u4", value: "{}", headers: {}, partition: 0 };
      await backend.producer.append([
        dead(source("u1", 1)), // 0: good
        dead(source("u2", 0, "gone")), // 1: a topic the log does not have
        dead(source(null, 9)), // 2: a bundle of a partition events no longer has (4 now)
        foreign, // 3: written by something else: no headers
        dead(source("u3", 2)), // 4: good
        dead(source(null, 0), { [DLQ_HEADERS.partition]: "x" }), // 5: a bundle whose partition is garbled
        dead(source("u5", 0, topics.alerts)), // 6: a topic the engine does not read
        dead(source(null, 3)), // 7: good bundle, back to its partition
      ]);
    } finally {
      await backend.close();
    }

    const dry = await runDlq(dataDir, ["replay", "--dry-run"]);
    assert.equal(dry.code, 3, `${dry.stdout}\n${dry.stderr}`);
    assert.match(dry.stdout, /^would replay 3 record\(s\) from events\.dlq\n/);
    assert.match(dry.stdout, /\n {2}cannot be re-injected: 5\b/);
    assert.deepEqual(await keysOf(dataDir, topics.events), [], "a dry run appends nothing");

    for (const run of [1, 2]) {
      const { code, stdout, stderr } = await runDlq(dataDir, ["replay"]);
      assert.equal(code, 3, `run ${run}: ${stdout}\n${stderr}`);
      assert.match(stdout, run === 1 ? /^replayed 3 record\(s\)/ : /^replayed 0 record\(s\)/);
      assert.match(stdout, /\n {2}cannot be re-injected: 5\b/);
      for (const [offset, why] of [[1, /"gone"/], [2, /partition 9/], [3, /source topic/], [5, /"x"/], [6, /alerts/]]) {
        assert.match(
          stdout,
          new RegExp(`\\n {4}events\\.dlq:0:${offset}: .*${(why as RegExp).source}`),
          `offset ${offset}`,
        );
      }
      assert.match(stderr, /5 record\(s\) of events\.dlq cannot be re-injected/);
      assert.doesNotMatch(stderr, /kept failing/);
      assert.deepEqual(await keysOf(dataDir, topics.events), ["", "u1", "u3"], `run ${run}: each good record once`);
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("placeDeadLetter: a record without a key goes back to a partition its source topic has, spelled in digits", () => {
  const record = (partition: string | undefined, key: string | null = null): LogRecord => ({
    topic: "dlq",
    partition: 0,
    offset: 0,
    key,
    value: null,
    headers: {
      [DLQ_HEADERS.topic]: "events",
      ...(partition === undefined ? {} : { [DLQ_HEADERS.partition]: partition }),
    },
    timestamp: 0,
  });
  const targets = new Map([["events", 4]]);
  assert.deepEqual(placeDeadLetter(record("3"), targets), { topic: "events", partition: 3 });
  assert.deepEqual(placeDeadLetter(record("x", "u1"), targets), { topic: "events" }, "a keyed one goes by its key");
  for (const garbled of [undefined, "", " ", "1e1", "-1", "0x1", "2.0"]) {
    assert.match(
      placeDeadLetter(record(garbled), targets).reason ?? "",
      /^no key, and (no source partition header|its source partition ".*" is not a number)$/,
      `${garbled}`,
    );
  }
  assert.match(placeDeadLetter(record("4"), targets).reason ?? "", /partition 4 is not one of the 4 of events/);
  assert.deepEqual(placeDeadLetter(record("40")), { topic: "events", partition: 40 }, "unchecked without targets");
});
