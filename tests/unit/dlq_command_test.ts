import assert from "node:assert/strict";
import { openBackend } from "../../engine/backend.ts";
import { consumedTopics, parseConfig, topicNames } from "../../engine/config.ts";
import { lockDataDir } from "../../engine/data_dir_lock.ts";
import { deadLetter } from "../../engine/dead_letter.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { ValidationError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";
import { claimStateOwner } from "../../sql/state_owner.ts";
import { undecodable } from "../helpers/undecodable.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs scripts/dlq.ts (`deno task dlq`) with `args` in embedded mode on `dataDir` (no broker, no database URL inherited). */
async function runDlq(
  dataDir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const inherited = Deno.env.toObject();
  for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "DATA_DIR", "GROUP_ID", "TOPIC_PREFIX"]) delete inherited[name];
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "scripts/dlq.ts", ...args],
    cwd: ROOT,
    env: { ...inherited, ...env, DATA_DIR: dataDir },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr).trim() };
}

Deno.test("dlq replay while the embedded engine holds DATA_DIR says to stop it first, not to pick another DATA_DIR", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-command-" });
  const engine = await lockDataDir(dataDir); // as a running engine does
  try {
    const { code, stderr } = await runDlq(dataDir, ["replay", "--dry-run"]);
    assert.equal(code, 1, stderr);
    assert.equal(
      stderr,
      `dlq: an engine (pid ${Deno.pid}) holds DATA_DIR ${engine.dir}: stop it first, then run the replay ` +
        "(it re-injects into that DATA_DIR's log, which one process at a time may open)",
    );
  } finally {
    engine.release();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dlq replay on a DATA_DIR no engine has run on refuses, naming it, instead of replaying an empty new log", async () => {
  const parent = await Deno.makeTempDir({ prefix: "dlq-command-" });
  try {
    // A mistyped path, and an existing folder without a database (the engine runs with another DATA_DIR).
    const missing = `${parent}/dta`;
    const empty = `${parent}/empty`;
    await Deno.mkdir(empty);
    for (const dataDir of [missing, empty]) {
      const { code, stdout, stderr } = await runDlq(dataDir, ["replay"]);
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "", "nothing reported as replayed");
      assert.equal(
        stderr,
        `dlq: DATA_DIR ${JSON.stringify(dataDir)} holds no embedded database (no engine has run on it): set DATA_DIR ` +
          "to the engine's (default ./data, relative to the folder the engine was started in)",
      );
    }
    await assert.rejects(Deno.stat(missing), Deno.errors.NotFound, "the mistyped DATA_DIR was not created");
    assert.deepEqual([...Deno.readDirSync(empty)], [], "no database was created in the empty folder");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("dlq replay with a GROUP_ID other than the one owning DATA_DIR's state refuses instead of re-injecting again", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-command-" });
  try {
    // An engine ran with GROUP_ID=shop and dead-lettered one record.
    const config = parseConfig({ DATA_DIR: dataDir, GROUP_ID: "shop" });
    const topics = topicNames(config);
    const backend = await openBackend(config, topics, silentLogger);
    try {
      await migrate(backend.sql);
      assert.deepEqual(await claimStateOwner(backend.sql, "shop", consumedTopics(topics)), []);
      const source = undecodable(topics.events);
      await backend.producer.append([deadLetter(topics.dlq, source, new ValidationError("invalid JSON"))]);
    } finally {
      await backend.close();
    }
    const first = await runDlq(dataDir, ["replay"], { GROUP_ID: "shop" });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^replayed 1 record\(s\)/);
    // The operator's shell lacks the engine's GROUP_ID: the record replayed under "shop" must not go in again.
    const second = await runDlq(dataDir, ["replay"]);
    assert.equal(second.code, 2, `${second.stdout}\n${second.stderr}`);
    assert.equal(second.stdout, "", "nothing re-injected");
    assert.equal(
      second.stderr.split("\n").at(-1), // after the log lines of opening the database
      `dlq: GROUP_ID="actor-engine" is not the group that owns DATA_DIR's state ("shop"): set GROUP_ID to the engine's ` +
        "(the records already replayed are recorded under it)",
    );
    // Nor did the refused run leave its group registered on the engine's topics, holding them from retention.
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      const groups = await db.sql<{ group_id: string }[]>`select distinct group_id from embedded_log_group_offsets`;
      assert.deepEqual(groups.map((g) => g.group_id), [], "only the engine registers its group");
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dlq replay on a DATA_DIR the engine would refuse reports it as the engine does, exit code 2", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-command-" });
  try {
    // Initialised once, then its pgdata moved away (left out of a restore).
    await Deno.writeTextFile(`${dataDir}/pgdata.initialised`, "2026-12-01T00:00:00.000Z\n");
    const { code, stdout, stderr } = await runDlq(dataDir, ["replay"]);
    assert.equal(stdout, "");
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`^Cannot start: DATA_DIR ${dataDir} holds pgdata.initialised but no pgdata`));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dlq replay takes an inline --error value whole: a value with '=' in it is not cut to a known code", async () => {
  const { code, stdout, stderr } = await runDlq("/nonexistent-dlq-data-dir", ["replay", "--error=terminal=x"]);
  assert.equal(stdout, "");
  assert.equal(code, 2, stderr);
  assert.equal(
    stderr.split("\n")[0],
    "--error terminal=x is not an error code of dead letters: validation_failed or terminal",
  );
});

Deno.test("dlq replay with a TOPIC_PREFIX no engine used refuses, naming it, instead of creating empty topics", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-command-" });
  try {
    // An engine ran with TOPIC_PREFIX=shop. (its DLQ is shop.events.dlq).
    const config = parseConfig({ DATA_DIR: dataDir, TOPIC_PREFIX: "shop." });
    const backend = await openBackend(config, topicNames(config), silentLogger);
    await backend.close();
    // The operator's shell lacks it.
    const { code, stdout, stderr } = await runDlq(dataDir, ["replay"]);
    assert.equal(stdout, "", "nothing reported as replayed");
    assert.equal(code, 2, stderr);
    assert.equal(
      stderr.split("\n").at(-1), // after the log lines of opening the database
      'dlq: the log has no topic "events.dlq" (TOPIC_PREFIX=""): no engine ran with this TOPIC_PREFIX on it; set ' +
        "TOPIC_PREFIX to the engine's",
    );
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      const created = await db.sql<{ topic: string }[]>`
        select distinct topic from embedded_log_partitions where topic not like 'shop.%'`;
      assert.deepEqual([...created], [], "no topics were created for the mistaken prefix");
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dlq replay prints a DLQ record's error code with its terminal escapes escaped, not sent to the terminal", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dlq-command-" });
  // Anyone who can produce to events.dlq sets its headers: a title change, a screen clear, a C1 CSI.
  const hostile = "\u001b]0;owned\u0007\u001b[2J\u009b31m";
  try {
    const config = parseConfig({ DATA_DIR: dataDir });
    const topics = topicNames(config);
    const backend = await openBackend(config, topics, silentLogger);
    try {
      await migrate(backend.sql);
      assert.deepEqual(await claimStateOwner(backend.sql, config.GROUP_ID, consumedTopics(topics)), []);
      const source = undecodable(topics.events);
      const record = deadLetter(topics.dlq, source, new ValidationError("invalid JSON"));
      await backend.producer.append([
        { ...record, headers: { ...record.headers, "dlq-error-code": hostile } },
        { ...record, headers: { ...record.headers, "dlq-source-topic": `evnts${hostile}` } },
      ]);
    } finally {
      await backend.close();
    }
    const { code, stdout, stderr } = await runDlq(dataDir, ["replay", "--dry-run"]);
    assert.equal(code, 3, stderr); // the record naming no topic the engine reads is left
    // Every control character (C0, DEL, C1) stays out of what reaches the terminal; the code is shown escaped.
    assert.doesNotMatch(stdout, /(?!\n)\p{Cc}/u, JSON.stringify(stdout));
    const lines = stdout.split("\n");
    assert.equal(lines[1], '  "\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m": 1');
    assert.match(
      lines.at(-2)!,
      /^ {4}events\.dlq:\d+:1: source topic "evnts\\u001b\]0;owned\\u0007\\u001b\[2J\\u009b31m" /,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
