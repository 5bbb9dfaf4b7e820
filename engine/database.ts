/** The PostgreSQL connection: postgres.js for both PostgreSQL and embedded PGlite. */
import postgres from "postgres";
import { parseJson } from "./json_parse.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;
/** A postgres.js client inside `sql.begin`. */
export type TransactionSql = postgres.TransactionSql;

/** Connection settings. */
export interface DatabaseOptions {
  readonly url: string;
  /** Pool size; PGlite's socket server needs exactly one. */
  readonly maxConnections: number;
  readonly connectTimeoutS?: number;
  /**
   * PostgreSQL ends a session that stays this long idle inside a transaction
   * (`idle_in_transaction_session_timeout`); 0 or unset: never.
   */
  readonly idleInTransactionTimeoutMs?: number;
}

/** First and longest wait before a closed connection connects again (postgres.js's `backoff`, in seconds). */
const RECONNECT_INITIAL_S = 0.05;
const RECONNECT_MAX_S = 2;

/**
 * Seconds before a connection the server closed with an error connects again, by failures in a row
 * (counted across the pool). postgres.js's default grows to 10–20 s after seven, so after an outage
 * the engine's queries waited that long for a server that was back; partitions already retry with
 * their own backoff, so the pool reconnects within a second or two.
 */
export function reconnectDelayS(failures: number): number {
  return Math.min(RECONNECT_INITIAL_S * 2 ** failures, RECONNECT_MAX_S);
}

/** Opens a pool; connections are made lazily on first query. */
export function connectDatabase(options: DatabaseOptions): Sql {
  return postgres(options.url, {
    max: options.maxConnections,
    connect_timeout: options.connectTimeoutS ?? 5,
    backoff: reconnectDelayS,
    connection: options.idleInTransactionTimeoutMs
      ? { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }
      : {},
    onnotice: () => {},
    // json and jsonb columns (states, timers, alert details) hold client-supplied ids as names.
    types: {
      json: { to: 114, from: [114, 3802], serialize: (value: unknown) => JSON.stringify(value), parse: parseJson },
    },
  });
}
