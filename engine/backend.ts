/**
 * The log and database a mode runs on. Production: Kafka and PostgreSQL. Embedded: a durable log
 * kept in PGlite on disk under DATA_DIR (embedded_log.ts, embedded_database.ts), which one engine
 * at a time may open (data_dir_lock.ts). Everything above this module sees only the interfaces.
 */
import { type Config, type Topics, topicSpecs } from "./config.ts";
import { lockDataDir } from "./data_dir_lock.ts";
import { startStallWatchdog } from "./stall_watchdog.ts";
import { connectDatabase, type Sql } from "./database.ts";
import { whileDatabaseAnswers } from "./database_probe.ts";
import { refusedDatabaseStep } from "./database_refusal.ts";
import { redactUrl } from "./database_url.ts";
import { openEmbeddedDatabase } from "./embedded_database.ts";
import { EmbeddedLog } from "./embedded_log.ts";
import { EmbeddedLogRetention } from "./embedded_log_retention.ts";
import { ConfigError } from "./errors.ts";
import { KafkaAdmin } from "./kafka_admin.ts";
import { explainUnansweredBroker } from "./kafka_unanswered.ts";
import { createKafka } from "./kafka_client.ts";
import { KafkaConsumer } from "./kafka_consumer.ts";
import { KafkaProducer } from "./kafka_producer.ts";
import type { Instrumentation } from "./instrumentation.ts";
import type { LogAdmin, LogConsumer, LogProducer } from "./log.ts";
import type { LogFields, Logger } from "./logger.ts";

/** Connections the engine keeps open to PostgreSQL. */
const DATABASE_POOL_SIZE = 10;
const MS_PER_HOUR = 3_600_000;
/** Seconds a closing backend gives the database queries still running (postgres.js `end({ timeout })`). */
const CLOSE_QUERIES_S = 1;

/** The log and database of one running engine. */
export interface Backend {
  readonly sql: Sql;
  readonly admin: LogAdmin;
  readonly producer: LogProducer;
  /** The engine's consumer, in GROUP_ID. */
  readonly consumer: LogConsumer;
  /** Another consumer, in its own group (tools such as the DLQ replay). */
  createConsumer(groupId: string): LogConsumer;
  /**
   * Declares `groupId` the consumer of `topics`, once start-up has checked that it may consume them (a GROUP_ID
   * refused for another group's state must not hold the log): the embedded log keeps from then on every record the
   * group has not committed past, and its retention starts. Nothing to do on Kafka.
   */
  registerGroup(groupId: string, topics: readonly string[]): Promise<void>;
  /**
   * `step`, a start-up's later ask of the log (partition counts): its failure stops start-up naming the log's setting,
   * as opening the log does (a ConfigError; kafkajs's bare "Request Metadata(key: 3, version: 6) timed out" of a broker
   * that hung after the topics were created said neither, exit code 1).
   */
  startupStep<T>(step: Promise<T>): Promise<T>;
  /**
   * `step`, a start-up's step on the database (`what`: migrations, say): on PostgreSQL, while the server answers a
   * probe (engine/database_probe.ts); one that stops answering stops start-up naming DATABASE_URL.
   */
  databaseStep<T>(step: Promise<T>, what: string): Promise<T>;
  /** Where the data lives, for the start-up banner. */
  readonly describe: string;
  /** Closes the log clients and the database, in that order. */
  close(): Promise<void>;
}

/** Optional collaborators of a backend. */
export interface BackendOptions {
  /** Receives what the backend's own upkeep does (embedded log retention). */
  readonly instrumentation?: Instrumentation;
  /** Fields of the process's log lines (instance), for the lines the embedded stall watchdog writes from its thread. */
  readonly logFields?: LogFields;
  /**
   * False: missing topics are not created (a tool beside the engine, which reports a missing one: created under a
   * mistyped TOPIC_PREFIX, they looked like an empty log). Default true.
   */
  readonly createTopics?: boolean;
}

/** Opens the backend for the configured mode; topics are created when missing. */
export function openBackend(
  config: Config,
  topics: Topics,
  logger: Logger,
  options: BackendOptions = {},
): Promise<Backend> {
  return config.mode === "embedded"
    ? openEmbeddedBackend(config, topics, logger, options)
    : openProductionBackend(config, topics, logger, options);
}

/** Kafka and PostgreSQL. */
async function openProductionBackend(
  config: Config,
  topics: Topics,
  logger: Logger,
  options: BackendOptions,
): Promise<Backend> {
  if (!config.KAFKA_BROKERS || !config.DATABASE_URL) {
    throw new ConfigError("Cannot start in production mode: KAFKA_BROKERS and DATABASE_URL must both be set");
  }
  const sql = connectDatabase({
    url: config.DATABASE_URL,
    maxConnections: DATABASE_POOL_SIZE,
    // A stopped or frozen instance frees the partition row its checkpoint holds locked.
    idleInTransactionTimeoutMs: config.TRANSACTION_IDLE_TIMEOUT_MS,
  });
  const kafkaOptions = {
    brokers: config.KAFKA_BROKERS.split(","), // trimmed by the config
    clientId: config.KAFKA_CLIENT_ID,
    logger,
    publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
  };
  const kafka = createKafka(kafkaOptions);
  const admin = new KafkaAdmin(kafka);
  const broker = `Kafka at KAFKA_BROKERS="${config.KAFKA_BROKERS}"`;
  const database = `PostgreSQL at DATABASE_URL="${redactUrl(config.DATABASE_URL)}"`;
  try {
    // The database first: it fails at once, where the broker is retried for half a minute.
    await usable(sql`select 1`, database);
    await usable<unknown>(
      (options.createTopics === false
        ? admin.missingTopics([]) // the broker answers: usable
        : admin.ensureTopics(topicSpecs(config, topics), config.REPLICATION_FACTOR)).catch((error) => {
          throw explainUnansweredBroker(error);
        }),
      broker,
      `the missing topics are created with PARTITIONS=${config.PARTITIONS}, REPLICATION_FACTOR=${config.REPLICATION_FACTOR}`,
    );
  } catch (error) {
    await admin.close().catch(() => {});
    await sql.end({ timeout: 1 }).catch(() => {});
    throw error;
  }
  const producer = new KafkaProducer(kafka, kafkaOptions);
  const sessionTimeoutMs = config.KAFKA_SESSION_TIMEOUT_MS;
  const consumer = new KafkaConsumer(kafka, { groupId: config.GROUP_ID, sessionTimeoutMs }, logger);
  return {
    sql,
    admin,
    producer,
    consumer,
    createConsumer: (groupId) => new KafkaConsumer(kafka, { groupId, sessionTimeoutMs }, logger),
    registerGroup: () => Promise.resolve(),
    startupStep: (step) => usable(step, broker),
    databaseStep: (step, what) =>
      whileDatabaseAnswers(sql, step, database, what).catch((error) => {
        throw refusedDatabaseStep(error, database, what);
      }),
    describe: `Kafka at ${config.KAFKA_BROKERS}, PostgreSQL at ${redactUrl(config.DATABASE_URL)}`,
    async close() {
      await producer.close();
      await admin.close();
      // Seconds for the queries still running: none that matter once the runtime and HTTP stopped, and a database
      // that stopped answering held the stop for 5 s, into main.ts's deadline.
      await sql.end({ timeout: CLOSE_QUERIES_S });
    },
  };
}

/**
 * Start-up's first use of a service: a failure names the service and its setting (the bare client
 * error, e.g. `connect ECONNREFUSED 127.0.0.1:5432`, said neither), and stops start-up as a bad
 * setting does (ConfigError: exit code 2, plain text).
 */
async function usable<T>(first: Promise<T>, service: string, itemsMade = ""): Promise<T> {
  try {
    return await first;
  } catch (error) {
    const items = perItemReasons(error);
    const why = items ? `${(error as Error).message}: ${items}${itemsMade && ` (${itemsMade})`}` : message(error);
    throw new ConfigError(`Cannot start: ${service} cannot be used: ${why}`, { cause: error });
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The per-item errors of an aggregate (kafkajs's "Topic creation errors" says neither which topics
 * nor why): each distinct reason once, with the topics it concerns; undefined for any other error.
 */
function perItemReasons(error: unknown): string | undefined {
  const items = error instanceof Error ? (error as { errors?: unknown }).errors : undefined;
  if (!Array.isArray(items) || items.length === 0) return undefined;
  const topics = new Map<string, string[]>();
  for (const item of items) {
    const why = message(item);
    const names = topics.get(why) ?? [];
    const topic = (item as { topic?: unknown }).topic;
    if (typeof topic === "string") names.push(topic);
    topics.set(why, names);
  }
  return [...topics].map(([why, names]) => names.length > 0 ? `${why} (${names.join(", ")})` : why).join("; ");
}

/**
 * PGlite under DATA_DIR with the embedded log in it: locks DATA_DIR (failing at once if another
 * engine holds it), opens the database and creates the topics. `registerGroup` registers the
 * engine's group on the topics it consumes (so that retention never deletes what it has not
 * consumed, even before its first commit), then starts the log's retention unless
 * EMBEDDED_LOG_RETENTION_HOURS is 0. Whatever was opened is closed again if a later step fails.
 */
async function openEmbeddedBackend(
  config: Config,
  topics: Topics,
  logger: Logger,
  options: BackendOptions,
): Promise<Backend> {
  const lock = await lockDataDir(config.DATA_DIR);
  const stopWatchdog = startStallWatchdog({ fields: options.logFields ?? {}, level: config.LOG_LEVEL });
  let database;
  try {
    database = await openEmbeddedDatabase(lock.dir, { logger });
    const log = await EmbeddedLog.open(database.sql, { logger, appendTimeoutMs: config.PUBLISH_TIMEOUT_MS });
    if (options.createTopics !== false) await log.ensureTopics(topicSpecs(config, topics));
    const producer = log.producer();
    const consumer = log.consumer({ groupId: config.GROUP_ID });
    const db = database;
    const retention = config.EMBEDDED_LOG_RETENTION_HOURS > 0
      ? new EmbeddedLogRetention(db.sql, {
        retentionMs: config.EMBEDDED_LOG_RETENTION_HOURS * MS_PER_HOUR,
        checkpointedTopics: [topics.productEvents, topics.analytics],
        logger,
        instrumentation: options.instrumentation,
      })
      : undefined;
    let retaining = false;
    return {
      sql: db.sql,
      admin: log,
      producer,
      consumer,
      createConsumer: (groupId) => log.consumer({ groupId }),
      async registerGroup(groupId, consumed) {
        await log.registerGroup(groupId, consumed);
        if (retaining) return;
        retaining = true;
        retention?.start();
      },
      startupStep: (step) => step,
      databaseStep: (step) => step,
      describe: `embedded log and PGlite in ${db.pgdata}`,
      async close() {
        try {
          await retention?.stop();
          await producer.close();
          await db.close();
        } finally {
          stopWatchdog();
          lock.release();
        }
      },
    };
  } catch (error) {
    await database?.close().catch(() => {});
    stopWatchdog();
    lock.release();
    throw error;
  }
}
