/**
 * The engine's error taxonomy. Every error has a stable `code`; the HTTP layer maps codes to
 * problem responses in one place, and the runtime decides between dead-lettering (terminal)
 * and retrying (transient) by class, never by message text.
 */

/** The `type` of the problem response an error with `code` becomes (RFC 9457): one spelling for the edge and for forwarding. */
export function problemType(code: string): string {
  return `urn:actor-engine:problem:${code}`;
}

/** Base class: a stable machine-readable code plus the original cause. */
export abstract class EngineError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting is missing or invalid; start-up stops with this message. */
export class ConfigError extends EngineError {
  readonly code = "config_invalid";
}

/** Another process (an engine, `dlq replay`) holds the embedded DATA_DIR's lock; start-up stops with this message. */
export class DataDirInUseError extends ConfigError {
  constructor(readonly dir: string, readonly holder: string | undefined) {
    super(
      `Cannot start: DATA_DIR ${dir} is in use by another engine${holder ? ` (pid ${holder})` : ""}; ` +
        "stop it, or set DATA_DIR to another directory",
    );
  }
}

/**
 * Start-up's migrations waited MIGRATION_LOCK_TIMEOUT_MS for a lock another PostgreSQL session holds (the migration
 * lock of another start-up, or a table a migration changes); start-up stops with this message, naming the sessions.
 */
export class MigrationLockTimeoutError extends ConfigError {}

/**
 * The database was migrated by a newer version than this one (a rollback): this version must not run on that schema;
 * start-up stops with this message, as for any database it cannot use.
 */
export class DatabaseTooNewError extends ConfigError {}

/** The engine was asked to stop (a signal) while it was starting; what it had opened is closed again. */
export class StartAbortedError extends EngineError {
  readonly code = "start_aborted";
}

/**
 * The running engine can no longer do its work and stops (main.ts exits with code 1, for a supervisor to restart it):
 * the log's consumer stopped for good (kafkajs gave up on it), so that the partitions it held belong to others now.
 */
export class EngineFailedError extends EngineError {
  readonly code = "engine_failed";
}

/** A request arrived while the engine is still starting, before it serves the API (HTTP 503). */
export class EngineStartingError extends EngineError {
  readonly code = "starting";
}

/** One offending field of an input, by path. */
export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

/**
 * Most problems a ValidationError of a request lists: each costs some 100–250 bytes of answer, and a body can make
 * one per 1–3 bytes of its own (order items of `{}`), so that 1 MiB of them answered 100 MB after seconds of work.
 */
export const MAX_LISTED_PROBLEMS = 1000;

/** Input that can never succeed as sent (HTTP 400, or a DLQ record with the reason). */
export class ValidationError extends EngineError {
  readonly code = "validation_failed";
  constructor(message: string, readonly problems: readonly FieldProblem[] = []) {
    super(message);
  }
}

/** A request body or batch exceeds a configured limit (HTTP 413). */
export class PayloadTooLargeError extends EngineError {
  readonly code = "payload_too_large";
}

/** The client stopped sending the request body before its end, without closing the connection (HTTP 408). */
export class RequestTimeoutError extends EngineError {
  readonly code = "request_timeout";
}

/** The request's content type is not one the route accepts (HTTP 415). */
export class UnsupportedMediaTypeError extends EngineError {
  readonly code = "unsupported_media_type";
  /**
   * For a body in a content coding the route does not read: the codings it does, which the answer names in
   * Accept-Encoding (RFC 9110 §15.5.16), so that a client that compresses by default knows to send it as is.
   */
  readonly acceptEncoding?: string;
  constructor(message: string, options?: { acceptEncoding?: string }) {
    super(message);
    this.acceptEncoding = options?.acceptEncoding;
  }
}

/** The key or resource does not exist (HTTP 404). */
export class NotFoundError extends EngineError {
  readonly code = "not_found";
}

/** The log (Kafka or embedded) did not acknowledge in time; retry later (HTTP 503). */
export class LogUnavailableError extends EngineError {
  readonly code = "log_unavailable";
}

/**
 * The consumer is leaving its group (a stop), so kafkajs may not join it again; `retriable: false` makes kafkajs give
 * the join up instead of retrying it (engine/kafka_group_leave.ts).
 */
export class ConsumerLeavingError extends EngineError {
  readonly code = "consumer_leaving";
  readonly retriable = false;
}

/** The installed kafkajs lacks an internal the Kafka adapter relies on (it is written for kafkajs 2.2.4); start-up stops. */
export class KafkaClientMismatchError extends EngineError {
  readonly code = "kafka_client_mismatch";
}

/**
 * Ingestion holds as many bytes of events waiting for the log's acknowledgement as it may
 * (MAX_INGEST_PENDING_BYTES); the request is refused whole, retry later (HTTP 429).
 */
export class IngestOverloadedError extends EngineError {
  readonly code = "ingest_overloaded";
}

/** The database is unreachable or failing; retry later (HTTP 503). */
export class DatabaseUnavailableError extends EngineError {
  readonly code = "database_unavailable";
}

/** A handler decided that a message can never be processed; it goes to the DLQ. */
export class TerminalError extends EngineError {
  readonly code = "terminal";
}

/** Wraps anything thrown into an Error so that logs and causes are uniform. */
export function ensureError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value));
}
