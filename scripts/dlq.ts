// deno-lint-ignore-file no-console
/**
 * `deno task dlq replay [--error CODE] [--dry-run]`: re-injects dead-lettered records into the
 * topic they came from, after a fix. Uses the same configuration as the engine (environment);
 * in embedded mode, stop the engine first (it holds DATA_DIR).
 */
import { consumedTopics, loadConfig, reportConfigError, topicNames } from "../engine/config.ts";
import { openBackend } from "../engine/backend.ts";
import { engineHasRunIn } from "../engine/embedded_database.ts";
import { replayDlq } from "../engine/dlq_replay.ts";
import { ConfigError, DataDirInUseError } from "../engine/errors.ts";
import { DEAD_LETTER_CODES } from "../engine/dead_letter.ts";
import { createLogger } from "../engine/logger.ts";
import { migrate } from "../sql/migrations.ts";
import { stateOwner } from "../sql/state_owner.ts";
import { escapeControls, shownName } from "./terminal_text.ts";

const USAGE = "usage: deno task dlq replay [--error CODE] [--dry-run]";

/** Stops with `message` and the usage (exit 2: a mistake in the command, nothing was done). */
function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

const [command, ...rest] = Deno.args;
if (command === "--help" || command === "-h" || rest.includes("--help") || rest.includes("-h")) {
  console.log(`${USAGE}
  Re-injects the records of the DLQ topic into the topics they came from (all, or those whose
  error code is CODE), each once; --dry-run counts them without re-injecting. Reads the engine's
  configuration from the environment; in embedded mode, stop the engine first. Ctrl-C stops it
  once the records in hand are recorded (exit code 130): run it again for the rest. Records it
  cannot place (no source topic, or one the log lacks) are listed and left (exit code 3).`);
  Deno.exit(0);
}
if (command !== "replay") fail(command === undefined ? "missing command" : `unknown command ${command}`);
let errorCode: string | undefined;
let dryRun = false;
for (let i = 0; i < rest.length; i++) {
  // At the first "=" only: split("=", 2) dropped what followed a second one (--error=terminal=x ran as terminal).
  const at = rest[i].indexOf("=");
  const [name, inline] = at < 0 ? [rest[i], undefined] : [rest[i].slice(0, at), rest[i].slice(at + 1)];
  if (name === "--dry-run" && inline === undefined) {
    dryRun = true;
  } else if (name === "--error") {
    errorCode = inline ?? rest[++i];
    if (!errorCode || errorCode.startsWith("--")) {
      fail(`--error needs an error code: ${DEAD_LETTER_CODES.join(" or ")}`);
    }
    if (!(DEAD_LETTER_CODES as readonly string[]).includes(errorCode)) {
      fail(`--error ${errorCode} is not an error code of dead letters: ${DEAD_LETTER_CODES.join(" or ")}`);
    }
  } else {
    // A mistyped flag (--dryrun) must not run a real replay of everything.
    fail(`unknown option ${rest[i]}`);
  }
}

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  Deno.exit(await reportConfigError(error)); // names the setting, as the engine does
}
const logger = createLogger(config.LOG_LEVEL);
const topics = topicNames(config);
if (config.mode === "embedded" && !(await engineHasRunIn(config.DATA_DIR))) {
  // Opening it would initialise an empty log there and report "replayed 0": a mistyped DATA_DIR looked like an empty DLQ.
  console.error(
    `dlq: DATA_DIR ${JSON.stringify(config.DATA_DIR)} holds no embedded database (no engine has run on it): set ` +
      "DATA_DIR to the engine's (default ./data, relative to the folder the engine was started in)",
  );
  Deno.exit(2);
}
let backend: Awaited<ReturnType<typeof openBackend>>;
try {
  backend = await openBackend(config, topics, logger, { createTopics: false });
} catch (error) {
  if (error instanceof DataDirInUseError) {
    // Another DATA_DIR would be another log: the remedy is to stop the engine.
    console.error(
      `dlq: an engine${error.holder ? ` (pid ${error.holder})` : ""} holds DATA_DIR ${error.dir}: stop it first, ` +
        "then run the replay (it re-injects into that DATA_DIR's log, which one process at a time may open)",
    );
  } else if (error instanceof ConfigError) {
    // A setting found unusable when used (DATA_DIR's database gone, PostgreSQL or Kafka refusing): as the engine says it.
    Deno.exit(await reportConfigError(error));
  } else {
    console.error(`cannot open the log and database: ${error instanceof Error ? error.message : String(error)}`);
  }
  Deno.exit(1);
}
try {
  // A TOPIC_PREFIX no engine used (a shell without the engine's) used to create a set of empty topics and report
  // "replayed 0 record(s)", as if the DLQ were empty.
  if ((await backend.admin.missingTopics([topics.dlq])).length > 0) {
    const prefix = JSON.stringify(config.TOPIC_PREFIX);
    console.error(
      `dlq: the log has no topic ${JSON.stringify(topics.dlq)} (TOPIC_PREFIX=${prefix}): no engine ran with this ` +
        "TOPIC_PREFIX on it; set TOPIC_PREFIX to the engine's",
    );
    await backend.close();
    Deno.exit(2);
  }
  // As start-up does: a database refusing them for good (a role without rights, a server taking no writes) is named.
  await backend.databaseStep(
    migrate(backend.sql, undefined, { lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS }),
    "migrations",
  );
  // What was replayed is recorded per group: under another GROUP_ID (a shell without the engine's) every record
  // re-injected before would go in again, as the engine refuses to fold the log again under another group.
  const owner = await stateOwner(backend.sql);
  if (owner !== null && owner !== config.GROUP_ID) {
    console.error(
      `dlq: GROUP_ID=${JSON.stringify(config.GROUP_ID)} is not the group that owns ${
        config.mode === "embedded" ? "DATA_DIR" : "DATABASE_URL"
      }'s state (${JSON.stringify(owner)}): set GROUP_ID to the engine's (the records already replayed are recorded ` +
        "under it)",
    );
    await backend.close();
    Deno.exit(2);
  }
  // Records go back only to the topics the engine reads, and a record without a key only to a partition its topic has:
  // one naming another failed its whole batch, and every run stopped short of the records behind it.
  const readable = consumedTopics(topics);
  const missing = new Set(await backend.admin.missingTopics(readable));
  const present = readable.filter((topic) => !missing.has(topic));
  const counts = await Promise.all(present.map((topic) => backend.admin.partitionCount(topic)));
  const targets = new Map(present.map((topic, i) => [topic, counts[i]]));
  // Ctrl-C (or SIGTERM) stops the run once the records in hand are re-injected and recorded: killed between an append
  // and its recording, the next run re-injected them again. A second one stops at once.
  const stop = new AbortController();
  let signalled: Deno.Signal | undefined;
  const onSignal = (signal: Deno.Signal) => () => {
    if (signalled !== undefined) Deno.exit(signal === "SIGINT" ? 130 : 143);
    signalled = signal;
    console.error(`dlq: ${signal}: stopping once the records in hand are recorded (again to stop at once)`);
    stop.abort();
  };
  const listeners = (["SIGINT", "SIGTERM"] as const).map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  const summary = await replayDlq({
    consumer: backend.createConsumer(`${config.GROUP_ID}.dlq-replay`),
    producer: backend.producer,
    sql: backend.sql,
    dlqTopic: topics.dlq,
    groupId: config.GROUP_ID,
    targets,
    errorCode,
    dryRun,
    signal: stop.signal,
  }).finally(() => {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  });
  console.log(`${dryRun ? "would replay" : "replayed"} ${summary.replayed} record(s) from ${topics.dlq}`);
  // The code is a header anyone producing to the DLQ sets: its escapes used to reach the terminal raw.
  for (const [code, count] of Object.entries(summary.byCode)) console.log(`  ${shownName(code)}: ${count}`);
  if (summary.skipped > 0) console.log(`  skipped (other error codes): ${summary.skipped}`);
  if (summary.alreadyReplayed > 0) console.log(`  already replayed earlier: ${summary.alreadyReplayed}`);
  if (summary.unusable > 0) {
    console.log(`  cannot be re-injected: ${summary.unusable} (left in ${topics.dlq})`);
    for (const { partition, offset, reason } of summary.unusableListed) {
      console.log(`    ${topics.dlq}:${partition}:${offset}: ${escapeControls(reason)}`); // quotes header values
    }
    const unlisted = summary.unusable - summary.unusableListed.length;
    if (unlisted > 0) console.log(`    and ${unlisted} more`);
  }
  if (summary.interrupted) {
    console.error(`interrupted before the end of ${topics.dlq}: run it again to replay the rest`);
    Deno.exitCode = signalled === "SIGTERM" ? 143 : 130;
  } else if (!summary.complete) {
    console.error(`stopped before the end of ${topics.dlq} (the log or database kept failing); run it again`);
    Deno.exitCode = 1;
  } else if (summary.unusable > 0) {
    // Every other record went in: running again re-injects none of them twice, and reports these again.
    console.error(
      `dlq: ${summary.unusable} record(s) of ${topics.dlq} cannot be re-injected (listed above), every other ` +
        `${dryRun ? "would be" : "was"}; they stay in ${topics.dlq} and are reported at each run, until the log has ` +
        "their topic or partition again or retention deletes them",
    );
    Deno.exitCode = 3;
  }
} catch (error) {
  // A message, not an uncaught stack trace: a migration behind a lock names the setting and the session holding it.
  if (error instanceof ConfigError) Deno.exitCode = await reportConfigError(error);
  else {
    console.error(`dlq: stopped: ${error instanceof Error ? error.message : String(error)}; run it again`);
    Deno.exitCode = 1;
  }
} finally {
  await backend.close();
}
