/**
 * The two logs the integration scenarios run on, so that one scenario body serves both:
 *
 *   forEachLog("a scripted day yields the predicted alerts", async (d) => {
 *     const engine = await startEngine(d.config, silentLogger);            // in-process, or
 *     const proc = await startEngineProcess({ dataDir: d.dataDir, env: d.env }); // as a process
 *   });
 *
 * registers one Deno.test per log, its name prefixed with the log: "[kafka] …" runs on Kafka and
 * PostgreSQL from scripts/services.sh, "[embedded] …" on the embedded log in PGlite under a fresh
 * DATA_DIR. `onlyOn` registers a single-log scenario the same way. TEST_LOGS=embedded (or kafka)
 * runs one log's scenarios only, the others are reported as ignored; so the embedded ones run
 * without the services.
 *
 * Scenarios that stay on one log, and why:
 * - [kafka]
 *   - ingest_kafka_test.ts: partition placement read back with an independent Kafka client,
 *     produce requests shared by concurrent requests, and 503 while the broker is stopped: Kafka
 *     producer behaviour, and only Kafka has a broker to stop. (The embedded log's placement is
 *     checked in tests/unit/embedded_log_test.ts.)
 *   - operations_test.ts, /readyz while PostgreSQL is unreachable: it cuts a TCP proxy between the
 *     engine and its PostgreSQL server; PGlite lives in the engine's process, there is nothing to cut.
 *   - the outage test in exactly_once_test.ts: it crashes PostgreSQL and kills the broker under a
 *     running engine, on servers of its own (`deployOnServers`); the embedded log has neither.
 *   - routing_test.ts, ingest_role_test.ts and the failover test in exactly_once_test.ts: two
 *     instances share one consumer group (or one Kafka cluster); an embedded engine owns its
 *     DATA_DIR alone, and ROLE=ingest needs production mode.
 *   - query_api_test.ts's analytics history replay and its fenced-checkpoint ranking test: they
 *     write checkpoints through a second connection; PGlite serves the engine's connection only.
 *   - startup_test.ts's group scenarios: a second instance on a busy port, and a start-up aborted after
 *     joining, beside a running first instance in one consumer group (on the embedded log, the same start-ups
 *     are checked by reusing DATA_DIR in the same process).
 *   - kafka_consumer_test.ts, kafka_producer_test.ts, log_retention_gap_test.ts: the Kafka adapter
 *     itself (groups, request sizes, reconnects, DeleteRecords); the embedded log has unit tests.
 *   - kafka_transactions_test.ts: events appended in Kafka transactions (markers, aborted records); the
 *     embedded log has no transactions, its offsets have no holes.
 * - [postgresql] checkpoint_store_test.ts: the checkpoint store on a PostgreSQL server, no log; the
 *   same SQL runs on PGlite under every embedded scenario. postgres_client_test.ts: the client
 *   under a server crash (PGlite runs inside the engine's process).
 * - [embedded]
 *   - embedded_lock_test.ts: one engine per DATA_DIR.
 *   - embedded_retention_test.ts: the embedded log's retention (Kafka's belongs to the broker).
 *   - tools_test.ts: import and loadgen only talk HTTP, so one log is enough; `tail` is tested in its
 *     embedded form (polling GET /v1/alerts), its Kafka form (a consumer) only for leaving its group when its
 *     output pipe closes ([kafka]).
 *   - import_recount_test.ts: the real data imported over HTTP and recounted; the same actors, partitioner and
 *     global actor run on Kafka, so one log is enough.
 *   - engine_stop_test.ts: the engine's own shutdown (a second signal, a stalled upload) and its URL.
 *   - startup_test.ts's in-process scenarios: a start-up that fails or is aborted releases DATA_DIR (its lock and
 *     PGlite) and the port, so that the same process starts on them again; the Kafka counterpart is the group.
 * - [no log] lifecycle_test.ts's bad-configuration test stops before any log is opened, and so do startup_test.ts's
 *   busy PORT and unknown HOST, and its start-up waiting for an unreachable broker; tools_test.ts's
 *   argument checks and its tools against a stand-in engine (503s, refusals) need no log either.
 */
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { type Config, parseConfig, topicNames, type Topics } from "../../engine/config.ts";
import type { Sql } from "../../engine/database.ts";
import { lockDataDir } from "../../engine/data_dir_lock.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import type { RunningEngine } from "../../engine/engine.ts";
import type { LogRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { installRequestQueueFix } from "../../engine/kafkajs_request_queue.ts";
import { readEmbeddedTopic, readKafkaTopic } from "./read_topic.ts";
import { freshDatabase, services, uniqueName } from "./services.ts";

// The test process's own kafkajs clients (producers, admins, readers) get the engine's fix for
// kafkajs's idle 1 ms polling loop, which would otherwise take CPU from the engines under test.
installRequestQueueFix();

/** The logs a scenario can run on. */
export type LogName = "kafka" | "embedded";

const LOGS: readonly LogName[] = ["kafka", "embedded"];

/** An isolated place for engines to run: their log, their database, their settings. */
export interface Deployment {
  readonly log: LogName;
  /** Settings of an in-process engine (`startEngine`). */
  readonly config: Config;
  /** The same settings as the environment of an engine process (`startEngineProcess({ dataDir, env })`). */
  readonly env: Readonly<Record<string, string>>;
  /** DATA_DIR of the embedded log; an empty folder on Kafka. */
  readonly dataDir: string;
  readonly topics: Topics;
  /** Kafka's brokers, where a producer other than the engine may write to the log while it runs. */
  readonly kafkaBrokers?: string;
  /**
   * Runs `fn` on the deployment's database and log. Kafka and PostgreSQL accept other clients at
   * any time. The embedded log is read through `running` (an in-process engine's own connection,
   * PGlite serves one) or, when no engine runs, by opening DATA_DIR.
   */
  inspect<T>(fn: (view: LogView) => Promise<T>, running?: RunningEngine): Promise<T>;
}

/** The database and the log of a deployment, as a test reads them. */
export interface LogView {
  readonly sql: Sql;
  /** Every record of `topic` up to its end at call time, per partition, in offset order. */
  records(topic: string): Promise<Map<number, LogRecord[]>>;
}

/** What a scenario may adjust. */
export interface ScenarioOptions {
  /** Settings beyond the defaults (3 partitions, checkpoints every 200 ms, LOG_LEVEL=warn). */
  readonly settings?: Record<string, string>;
  readonly sanitizeOps?: boolean;
  readonly sanitizeResources?: boolean;
}

/** Registers `fn` once per log, each on a fresh deployment that is removed afterwards. */
export function forEachLog(name: string, fn: (d: Deployment) => Promise<void>): void;
export function forEachLog(name: string, options: ScenarioOptions, fn: (d: Deployment) => Promise<void>): void;
export function forEachLog(
  name: string,
  optionsOrFn: ScenarioOptions | ((d: Deployment) => Promise<void>),
  maybeFn?: (d: Deployment) => Promise<void>,
): void {
  const options = typeof optionsOrFn === "function" ? {} : optionsOrFn;
  const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn!;
  const selected = selectedLogs();
  for (const log of LOGS) {
    Deno.test({
      name: `[${log}] ${name}`,
      ignore: !selected.has(log),
      sanitizeOps: options.sanitizeOps ?? false,
      sanitizeResources: options.sanitizeResources ?? false,
      fn: async () => {
        const { deployment, remove } = await deploy(log, options.settings ?? {});
        try {
          await fn(deployment);
        } finally {
          await remove();
        }
      },
    });
  }
}

/**
 * Where a single-log scenario runs: one of the logs, "postgresql" for the production database
 * alone (selected with kafka: it needs the services), or "no log" for what fails before either opens.
 */
export type SingleTarget = LogName | "postgresql" | "no log";

/** Registers a scenario that runs on one log only (see the list above for why), named and selected like the others. */
export function onlyOn(target: SingleTarget, test: Deno.TestDefinition): void;
export function onlyOn(target: SingleTarget, name: string, fn: (t: Deno.TestContext) => Promise<void>): void;
export function onlyOn(
  target: SingleTarget,
  testOrName: Deno.TestDefinition | string,
  fn?: (t: Deno.TestContext) => Promise<void>,
): void {
  const test = typeof testOrName === "string" ? { name: testOrName, fn: fn! } : testOrName;
  const log: LogName | undefined = target === "postgresql" ? "kafka" : target === "no log" ? undefined : target;
  const otherLog = log !== undefined && !selectedLogs().has(log);
  Deno.test({ ...test, name: `[${target}] ${test.name}`, ignore: otherLog || test.ignore === true });
}

/** A fresh deployment on `log`, and the function that removes it. */
export function deploy(
  log: LogName,
  settings: Record<string, string> = {},
): Promise<{ deployment: Deployment; remove: () => Promise<void> }> {
  return log === "kafka" ? kafkaDeployment(settings) : embeddedDeployment(settings);
}

/** TEST_LOGS, a comma-separated list of logs; both when unset. */
function selectedLogs(): Set<LogName> {
  const value = Deno.env.get("TEST_LOGS")?.trim();
  if (!value) return new Set(LOGS);
  const names = value.split(",").map((s) => s.trim());
  const unknown = names.filter((n) => !LOGS.includes(n as LogName));
  if (unknown.length > 0) throw new Error(`TEST_LOGS names unknown logs ${unknown.join(", ")}; use ${LOGS.join(", ")}`);
  return new Set(names as LogName[]);
}

/** Settings every scenario starts from: few partitions, frequent checkpoints, quiet logs. */
const BASE_SETTINGS = { PARTITIONS: "3", CHECKPOINT_INTERVAL_MS: "200", LOG_LEVEL: "warn" };

/** An in-process engine listens on a free loopback port; a process gets its port and DATA_DIR from the helper. */
function inProcess(env: Record<string, string>, dataDir: string): Config {
  return parseConfig({ ...env, DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" });
}

/** Where a Kafka deployment runs when it is not on the shared services: servers the test owns. */
export interface PrivateServers {
  readonly kafkaBrokers: string;
  /** A database of its own: the deployment uses it as it is and leaves it behind. */
  readonly databaseUrl: string;
}

/** A deployment on a broker and a PostgreSQL server the test owns (to stop and restart them), and its removal. */
export function deployOnServers(
  servers: PrivateServers,
  settings: Record<string, string> = {},
): Promise<{ deployment: Deployment; remove: () => Promise<void> }> {
  return kafkaDeployment(settings, servers);
}

/** Kafka and PostgreSQL from scripts/services.sh (or `servers`), kept apart by topic prefix, group and database. */
async function kafkaDeployment(settings: Record<string, string>, servers?: PrivateServers) {
  const kafkaBrokers = servers?.kafkaBrokers ?? services().kafkaBrokers;
  const db = servers ? { url: servers.databaseUrl, drop: () => Promise.resolve() } : await freshDatabase();
  const dataDir = await Deno.makeTempDir({ prefix: "kafka-scenario-" });
  const id = uniqueName("t");
  const env = {
    KAFKA_BROKERS: kafkaBrokers,
    DATABASE_URL: db.url,
    TOPIC_PREFIX: `${id}.`,
    GROUP_ID: `${id}-group`,
    ...BASE_SETTINGS,
    ...settings,
  };
  const config = inProcess(env, dataDir);
  const deployment: Deployment = {
    log: "kafka",
    config,
    env,
    dataDir,
    topics: topicNames(config),
    kafkaBrokers,
    async inspect(fn) {
      const sql = postgres(db.url, { max: 2, onnotice: () => {} });
      const kafka = new Kafka({ clientId: uniqueName("inspect"), brokers: [kafkaBrokers], logLevel: logLevel.NOTHING });
      try {
        return await fn({ sql, records: (topic) => readKafkaTopic(kafka, topic) });
      } finally {
        await sql.end();
      }
    },
  };
  return {
    deployment,
    remove: async () => {
      await db.drop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** The embedded log and PGlite in a temporary DATA_DIR. */
async function embeddedDeployment(settings: Record<string, string>) {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-scenario-" });
  const env = { ...BASE_SETTINGS, ...settings };
  const config = inProcess(env, dataDir);
  const deployment: Deployment = {
    log: "embedded",
    config,
    env,
    dataDir,
    topics: topicNames(config),
    async inspect(fn, running) {
      if (running) {
        return await fn({
          sql: running.clients.sql,
          records: (topic) => readEmbeddedTopic(running.clients.sql, topic),
        });
      }
      // Taking the lock first makes a test that inspects while an engine runs fail instead of corrupting PGlite.
      const lock = await lockDataDir(dataDir);
      try {
        const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
        try {
          return await fn({ sql: db.sql, records: (topic) => readEmbeddedTopic(db.sql, topic) });
        } finally {
          await db.close();
        }
      } finally {
        lock.release();
      }
    },
  };
  return { deployment, remove: () => Deno.remove(dataDir, { recursive: true }) };
}
