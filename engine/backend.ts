/**
 * The log and database a mode runs on. Production: Kafka and PostgreSQL. Embedded: a durable log
 * kept in PGlite (issue 7). Everything above this module sees only the interfaces.
 */
import { type Config, type Topics, topicSpecs } from "./config.ts";
import { connectDatabase, type Sql } from "./database.ts";
import { ConfigError } from "./errors.ts";
import { createKafka, KafkaAdmin, KafkaConsumer, KafkaProducer } from "./kafka_log.ts";
import type { LogAdmin, LogConsumer, LogProducer } from "./log.ts";
import type { Logger } from "./logger.ts";

/** Connections the engine keeps open to PostgreSQL. */
const DATABASE_POOL_SIZE = 10;

/** The log and database of one running engine. */
export interface Backend {
  readonly sql: Sql;
  readonly admin: LogAdmin;
  readonly producer: LogProducer;
  /** Creates the group consumer (one per engine). */
  readonly consumer: LogConsumer;
  /** Where the data lives, for the start-up banner. */
  readonly describe: string;
  /** Closes the log clients and the database, in that order. */
  close(): Promise<void>;
}

/** Opens the backend for the configured mode; topics are created when missing. */
export async function openBackend(config: Config, topics: Topics, logger: Logger): Promise<Backend> {
  if (config.mode !== "production" || !config.KAFKA_BROKERS || !config.DATABASE_URL) {
    throw new ConfigError(
      "Cannot start: embedded mode is not available yet; set KAFKA_BROKERS and DATABASE_URL (see README)",
    );
  }
  const sql = connectDatabase({ url: config.DATABASE_URL, maxConnections: DATABASE_POOL_SIZE });
  const kafkaOptions = {
    brokers: config.KAFKA_BROKERS.split(",").map((b) => b.trim()),
    clientId: config.KAFKA_CLIENT_ID,
    logger,
    publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
  };
  const kafka = createKafka(kafkaOptions);
  const admin = new KafkaAdmin(kafka);
  await admin.ensureTopics(topicSpecs(config, topics), config.REPLICATION_FACTOR);
  const producer = new KafkaProducer(kafka, kafkaOptions);
  const consumer = new KafkaConsumer(kafka, { groupId: config.GROUP_ID }, logger);
  return {
    sql,
    admin,
    producer,
    consumer,
    describe: `Kafka at ${config.KAFKA_BROKERS}, PostgreSQL at ${redactUrl(config.DATABASE_URL)}`,
    async close() {
      await producer.close();
      await admin.close();
      await sql.end({ timeout: 5 });
    },
  };
}

/** A URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable URL)";
  }
}
