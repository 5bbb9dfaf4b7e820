/**
 * Configuration: every setting is read once from the environment, validated, and frozen.
 *
 * This is the only module that reads `Deno.env`. Everything else receives the `Config` object
 * (or the part of it that it needs) as an argument.
 */
import { z } from "zod";
import { DEFAULT_MAX_FUTURE_MS, MAX_AHEAD_OF_RECEIPT_MS } from "../actors/events.ts";
import { domainSettingsConflicts, domainSettingsShape, fromDigits, TEN_YEARS } from "../actors/settings.ts";
import { databaseUrlProblem, parsePort, redactUrl } from "./database_url.ts";
import { isHostNameOrIpv4, isIpv6 } from "./host.ts";
import { ConfigError } from "./errors.ts";
import { DEFAULT_SESSION_TIMEOUT_MS, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS } from "./kafka_session.ts";

const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** The longest duration in milliseconds a setting may have: ten years, as the domain's durations. */
const TEN_YEARS_MS = TEN_YEARS.seconds * 1000;
/** `all`: ingestion, actors and queries; `ingest`: HTTP only (ingestion, and queries forwarded to the owners). */
const ROLES = ["all", "ingest"] as const;

/** An integer setting in decimal digits (spaces around ignored) within [min, max]. */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const allowed = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  const error = `must be ${allowed}, in decimal digits`;
  return z.preprocess(fromDigits, z.number({ error }).int({ error }).min(min, { error }).max(max, { error }));
};

const HOST_RULE = "must be a hostname or an IPv4 or IPv6 address, e.g. 0.0.0.0, ::, 127.0.0.1 or localhost";
/** Whether `value` is something the HTTP server can bind to: a hostname, an IPv4 or an IPv6 literal. */
function isHost(value: string): boolean {
  return value.includes(":") ? isIpv6(value) : isHostNameOrIpv4(value);
}

const ADVERTISED_URL_RULE = "must be an http:// or https:// URL without path, query or credentials, " +
  "e.g. http://engine-1:8080";

/** Whether `value` is an http(s) origin: queries are forwarded to absolute paths under it. */
function isHttpOrigin(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (url.protocol === "http:" || url.protocol === "https:") && url.pathname === "/" && !url.search &&
    !url.hash && !url.username && !url.password;
}

/** Hosts a URL normalises the unspecified addresses to: dialled, they reach the dialling host itself. */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "[::]"]);

const ADVERTISED_WILDCARD_RULE = "must name an address other instances can dial, not a wildcard (0.0.0.0, ::) " +
  "that each of them would take for itself; e.g. http://engine-1:8080";

/** Whether an http(s) origin names a host other instances can dial (a malformed one is ADVERTISED_URL_RULE's). */
function isDialable(value: string): boolean {
  return !URL.canParse(value) || !WILDCARD_HOSTS.has(new URL(value).hostname);
}

const ADVERTISED_PORT_RULE = "must name a port from 1 to 65535 that other instances can dial, not 0 " +
  "(PORT=0 binds a free port, which only the bound address knows); e.g. http://engine-1:8080";

/** Whether an http(s) origin names a port other than 0, which no connection reaches (a malformed one: see above). */
function hasDialablePort(value: string): boolean {
  return !URL.canParse(value) || new URL(value).port !== "0";
}

/**
 * A session idle this long inside a transaction is ended by the server. Under a second ends the
 * engine's own checkpoints between two statements (a pause for a slow append or a garbage
 * collection), and the partition checkpoints again and again.
 */
const IDLE_TIMEOUT_RULE = "must be 0 (never) or an integer from 1000 to 86400000, in decimal digits";

const BROKERS_RULE = "each broker must be host:port with a port from 1 to 65535, comma-separated, " +
  "e.g. kafka-1:9092,kafka-2:9092";

/**
 * Whether `value` is a list of brokers kafkajs can connect to: it splits each at its first colon
 * into host and port, so an IPv6 address, a scheme or a missing port fail only when it connects.
 */
function isBrokerList(value: string): boolean {
  return value.split(",").every((broker) => {
    const [host, port] = broker.trim().split(/:(.*)/s, 2);
    return isHostNameOrIpv4(host) && port !== undefined && !Number.isNaN(parsePort(port));
  });
}

/**
 * Bytes of event records that ingestion may hold waiting for the log's acknowledgement: about 30
 * requests of 1,000 events at once, some seventy times what `deno task bench ingest`'s 16 clients
 * posting batches of 100 hold, for about 2.5 times that in heap (records and parsed events, measured).
 */
const DEFAULT_MAX_INGEST_PENDING_BYTES = 32 * 1024 * 1024;

/** ALERT_RETENTION_DAYS unset: also what GET /v1/alerts lists when not told (tests' routes). */
export const DEFAULT_ALERT_RETENTION_DAYS = 90;

/** One table of settings: environment variable name → schema with its default. */
const settings = {
  PORT: int(0, 65535).default(8080),
  HOST: z.string().trim().refine(isHost, { error: HOST_RULE }).default("0.0.0.0"),
  ADVERTISED_URL: z.string().trim().refine(isHttpOrigin, { error: ADVERTISED_URL_RULE })
    .refine(isDialable, { error: ADVERTISED_WILDCARD_RULE })
    .refine(hasDialablePort, { error: ADVERTISED_PORT_RULE })
    .transform((value) => new URL(value).origin).optional(),
  KAFKA_BROKERS: z.string().trim().refine(isBrokerList, { error: BROKERS_RULE })
    .transform((value) => value.split(",").map((broker) => broker.trim()).join(",")).optional(),
  KAFKA_CLIENT_ID: z.string().trim().min(1).default("actor-engine"),
  GROUP_ID: z.string().trim().min(1).default("actor-engine"),
  KAFKA_SESSION_TIMEOUT_MS: int(MIN_SESSION_TIMEOUT_MS, MAX_SESSION_TIMEOUT_MS).default(DEFAULT_SESSION_TIMEOUT_MS),
  TOPIC_PREFIX: z.string().trim().regex(/^[A-Za-z0-9._-]*$/, "only letters, digits, '.', '_' and '-'")
    .max(200, "at most 200 characters: Kafka refuses topic names over 249").default(""),
  PARTITIONS: int(1, 10_000).default(12),
  REPLICATION_FACTOR: int(1, 32).default(1),
  DATABASE_URL: z.string().trim().superRefine((value, context) => {
    const problem = databaseUrlProblem(value);
    if (problem) context.addIssue({ code: "custom", message: problem });
  }).optional(),
  DATA_DIR: z.string().min(1).default("./data"),
  EMBEDDED_LOG_RETENTION_HOURS: int(0, 87_600).default(168),
  CHECKPOINT_INTERVAL_MS: int(10, 3_600_000).default(1000),
  CHECKPOINT_MAX_MESSAGES: int(1, 10_000_000).default(10_000),
  MAX_ACTORS: int(1).default(100_000),
  ACTOR_IDLE_MS: int(1000, TEN_YEARS_MS).default(5 * 60_000),
  ACTOR_PACK_MS: int(0, TEN_YEARS_MS).default(30_000),
  STATE_TTL_DAYS: int(0, 36_500).default(90),
  ALERT_RETENTION_DAYS: int(0, 36_500).default(DEFAULT_ALERT_RETENTION_DAYS),
  CLOCK_IDLE_MS: int(100, TEN_YEARS_MS).default(10_000),
  PUBLISH_TIMEOUT_MS: int(100, 120_000).default(5000),
  TRANSACTION_IDLE_TIMEOUT_MS: z.preprocess(
    fromDigits,
    z.number({ error: IDLE_TIMEOUT_RULE }).int({ error: IDLE_TIMEOUT_RULE })
      .refine((ms) => ms === 0 || (ms >= 1000 && ms <= 86_400_000), { error: IDLE_TIMEOUT_RULE }),
  ).default(10_000),
  MIGRATION_LOCK_TIMEOUT_MS: int(100, 86_400_000).default(30_000),
  MAX_BATCH_EVENTS: int(1, 100_000).default(1000),
  MAX_BODY_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  MAX_INGEST_PENDING_BYTES: int(1024, 64 * 1024 * 1024 * 1024).default(DEFAULT_MAX_INGEST_PENDING_BYTES),
  MAX_EVENT_FUTURE_MS: int(0, MAX_AHEAD_OF_RECEIPT_MS).default(DEFAULT_MAX_FUTURE_MS),
  LOG_LEVEL: z.string().trim().pipe(z.enum(LOG_LEVELS)).default("info"),
  ROLE: z.string().trim().pipe(z.enum(ROLES)).default("all"),
} as const;

/** Engine settings plus every domain threshold (actors/settings.ts), one flat table. */
const schema = z.object({ ...settings, ...domainSettingsShape });

/** The engine's validated, immutable configuration. */
export type Config = Readonly<z.output<typeof schema>> & { readonly mode: "embedded" | "production" };

/** Names of every setting, for documentation and tests. */
export const SETTING_NAMES = Object.keys(schema.shape) as (keyof typeof schema.shape)[];

/**
 * Builds the configuration from an environment map; throws ConfigError naming every bad variable.
 * A variable that is empty or only whitespace counts as unset.
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const values = parseSettings(schema, env);
  if (values.KAFKA_BROKERS && !values.DATABASE_URL) {
    throw new ConfigError(
      "Cannot start: KAFKA_BROKERS is set but DATABASE_URL is not; production mode needs both (unset KAFKA_BROKERS for embedded mode)",
    );
  }
  if (values.DATABASE_URL && !values.KAFKA_BROKERS) {
    throw new ConfigError(
      "Cannot start: DATABASE_URL is set but KAFKA_BROKERS is not; production mode needs both (unset DATABASE_URL for embedded mode)",
    );
  }
  if (values.ROLE === "ingest" && !values.KAFKA_BROKERS) {
    throw new ConfigError(
      'Cannot start: ROLE="ingest" needs production mode (KAFKA_BROKERS and DATABASE_URL): in embedded mode one process holds the log',
    );
  }
  const conflicts = [...engineSettingsConflicts(values), ...domainSettingsConflicts(values)];
  if (conflicts.length > 0) throw new ConfigError(conflicts.join("; "));
  return Object.freeze({ ...values, mode: values.KAFKA_BROKERS ? "production" : "embedded" });
}

/** Validates the variables `settings` names; throws ConfigError naming every bad one. */
function parseSettings<T extends z.ZodObject>(
  settings: T,
  env: Record<string, string | undefined>,
): z.output<T> {
  const input: Record<string, string> = {};
  for (const name of Object.keys(settings.shape)) {
    const value = env[name];
    // Empty or only whitespace: unset, so the default applies (PORT="  " must not become port 0).
    if (value !== undefined && value.trim() !== "") input[name] = value;
  }
  const result = settings.safeParse(input);
  if (result.success) return result.data;
  const problems = new Set(result.error.issues.map((issue) => {
    const name = String(issue.path[0]);
    return `${name}=${JSON.stringify(shown(name, input[name]))}: ${issue.message}`;
  }));
  throw new ConfigError(`Cannot start: invalid configuration: ${[...problems].join("; ")}`);
}

/** The settings of a client reading the engine's topics beside it (`deno task tail`), which needs no database. */
const logClientSchema = schema.pick({ KAFKA_BROKERS: true, KAFKA_CLIENT_ID: true, GROUP_ID: true, TOPIC_PREFIX: true });

/** The validated settings of a log client beside the engine. */
export type LogClientConfig = Readonly<z.output<typeof logClientSchema>>;

/** Builds a log client's settings with the engine's rules (tail read them raw: a bad broker list retried for ever). */
export function parseLogClientConfig(env: Record<string, string | undefined>): LogClientConfig {
  return Object.freeze(parseSettings(logClientSchema, env));
}

/**
 * The most records a partition is handed in one batch, as far as the log lets it be known: the
 * embedded consumer reads at most 500 (engine/embedded_consumer.ts); a Kafka fetch brings about 1 MiB
 * per partition (kafkajs's maxBytesPerPartition; more only for a single larger record batch, up to
 * the broker's message.max.bytes, 1 MiB by default), and every event the engine appends is over 100
 * bytes (its eventId and two timestamps alone take 84), so about 10,000 at most. Records under 100
 * bytes that another producer appends could make a batch longer.
 */
export const LARGEST_BATCH_RECORDS = 10_000;

/**
 * Problems between engine settings and domain settings that each pass alone. Facts are told apart
 * by their source offset within FACT_DEDUPE_WINDOW (actors/dedupe.ts): a replay starts at most one
 * checkpoint segment back (CHECKPOINT_MAX_MESSAGES, reached at the end of a batch) and a batch's
 * facts come out of offset order, so a window not above the two together would take a new fact
 * arriving after a replay for a replayed one, and drop it.
 */
function engineSettingsConflicts(values: z.output<typeof schema>): string[] {
  const needed = values.CHECKPOINT_MAX_MESSAGES + LARGEST_BATCH_RECORDS;
  if (values.FACT_DEDUPE_WINDOW > needed) return [];
  return [
    `Cannot tell facts replayed after a crash from new ones with FACT_DEDUPE_WINDOW at or below ` +
    `CHECKPOINT_MAX_MESSAGES (${values.CHECKPOINT_MAX_MESSAGES}) plus the largest batch (${LARGEST_BATCH_RECORDS} ` +
    `records): current value is ${values.FACT_DEDUPE_WINDOW}; set FACT_DEDUPE_WINDOW above ${needed} or lower ` +
    "CHECKPOINT_MAX_MESSAGES",
  ];
}

/** Settings whose value may hold a password: shown with it replaced by `***`. */
const URL_SETTINGS = new Set(["DATABASE_URL", "ADVERTISED_URL"]);

/** A setting's value as a message may show it: never a password. */
function shown(name: string, value: string): string {
  return URL_SETTINGS.has(name) ? redactUrl(value) : value;
}

/** Exit code of a process stopped by a bad setting. */
export const CONFIG_ERROR_EXIT = 2;

/** Reports a bad setting in plain text, not as a JSON log line: it is read by a person fixing their environment. */
export async function reportConfigError(error: ConfigError): Promise<number> {
  await Deno.stderr.write(new TextEncoder().encode(`${error.message}\n`));
  return CONFIG_ERROR_EXIT;
}

/** Reads the process environment; the one place that touches `Deno.env`. */
export function loadConfig(): Config {
  return parseConfig(Deno.env.toObject());
}

/** Reads a log client's settings from the process environment. */
export function loadLogClientConfig(): LogClientConfig {
  return parseLogClientConfig(Deno.env.toObject());
}

/** Kafka topic names with the configured prefix applied. */
export interface Topics {
  readonly events: string;
  readonly productEvents: string;
  readonly alerts: string;
  readonly recommendations: string;
  readonly dlq: string;
  /** Internal one-partition topic feeding the global analytics actor. */
  readonly analytics: string;
}

/** Applies TOPIC_PREFIX to the fixed topic names of the specification. */
export function topicNames(config: Pick<Config, "TOPIC_PREFIX">): Topics {
  const p = config.TOPIC_PREFIX;
  return Object.freeze({
    events: `${p}events`,
    productEvents: `${p}product-events`,
    alerts: `${p}alerts`,
    recommendations: `${p}recommendations`,
    dlq: `${p}events.dlq`,
    analytics: `${p}analytics`,
  });
}

/** The topics the engine's consumer group reads. */
export function consumedTopics(topics: Topics): string[] {
  return [topics.events, topics.productEvents, topics.analytics];
}

/** Every topic with the partition count it is created with: the analytics feed has one. */
export function topicSpecs(
  config: Pick<Config, "PARTITIONS">,
  topics: Topics,
): { topic: string; partitions: number }[] {
  return Object.entries(topics).map(([name, topic]) => ({
    topic,
    partitions: name === "analytics" ? 1 : config.PARTITIONS,
  }));
}
