// deno-lint-ignore-file no-console
/**
 * `deno task dlq replay [--error CODE] [--dry-run]`: re-injects dead-lettered records into the
 * topic they came from, after a fix. Uses the same configuration as the engine (environment);
 * in embedded mode, stop the engine first (it holds DATA_DIR).
 */
import { loadConfig, topicNames } from "../engine/config.ts";
import { openBackend } from "../engine/backend.ts";
import { replayDlq } from "../engine/dlq_replay.ts";
import { createLogger } from "../engine/logger.ts";
import { migrate } from "../sql/migrations.ts";

const USAGE = "usage: deno task dlq replay [--error CODE] [--dry-run]";

const [command, ...rest] = Deno.args;
if (command !== "replay") {
  console.error(USAGE);
  Deno.exit(2);
}
const errorAt = rest.indexOf("--error");
const errorCode = errorAt >= 0 ? rest[errorAt + 1] : undefined;
if (errorAt >= 0 && !errorCode) {
  console.error(`--error needs an error code, e.g. validation_failed or terminal\n${USAGE}`);
  Deno.exit(2);
}
const dryRun = rest.includes("--dry-run");

const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL);
const topics = topicNames(config);
const backend = await openBackend(config, topics, logger);
try {
  await migrate(backend.sql);
  const summary = await replayDlq({
    consumer: backend.createConsumer(`${config.GROUP_ID}.dlq-replay`),
    producer: backend.producer,
    sql: backend.sql,
    dlqTopic: topics.dlq,
    groupId: config.GROUP_ID,
    errorCode,
    dryRun,
  });
  console.log(`${dryRun ? "would replay" : "replayed"} ${summary.replayed} record(s) from ${topics.dlq}`);
  for (const [code, count] of Object.entries(summary.byCode)) console.log(`  ${code}: ${count}`);
  if (summary.skipped > 0) console.log(`  skipped (other error codes): ${summary.skipped}`);
  if (summary.alreadyReplayed > 0) console.log(`  already replayed earlier: ${summary.alreadyReplayed}`);
  if (summary.unusable > 0) console.log(`  without a source topic header: ${summary.unusable}`);
  if (!summary.complete) {
    console.error(`stopped before the end of ${topics.dlq} (the log or database kept failing); run it again`);
    Deno.exitCode = 1;
  }
} finally {
  await backend.close();
}
