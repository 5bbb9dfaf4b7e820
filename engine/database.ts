/** The PostgreSQL connection: postgres.js for both PostgreSQL and embedded PGlite. */
import postgres from "postgres";
import { parseDatabaseUrl } from "./database_url.ts";
import { parseJson } from "./json_parse.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;
/** A postgres.js client inside `sql.begin`. */
export type TransactionSql = postgres.TransactionSql;

/** Connection settings. */
export interface DatabaseOptions {
  /** A `postgres://` URL (engine/database_url.ts), validated by the configuration. */
  readonly url: string;
  /** Pool size; PGlite's socket server needs exactly one. */
  readonly maxConnections: number;
  /** Seconds; the URL's `connect_timeout` takes precedence. */
  readonly connectTimeoutS?: number;
  /**
   * PostgreSQL ends a session that stays this long idle inside a transaction
   * (`idle_in_transaction_session_timeout`); 0 or unset: never.
   */
  readonly idleInTransactionTimeoutMs?: number;
  /**
   * False: a connection is kept for good instead of being replaced after postgres.js's lifetime (30 to 60 minutes).
   * PGlite serves every connection from its one backend, where a replaced connection's prepared statements stay.
   */
  readonly replaceConnections?: boolean;
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

/**
 * Session settings the engine's SQL is written for, which a server, database or role configured otherwise must not
 * change: pinned, after the URL's settings. postgres.js turns timestamps into Dates with `new Date(text)`, which reads
 * PostgreSQL's ISO output only (`SQL, DMY` output, `01/11/2026 11:30:00 CET`, is an Invalid Date, or day and month
 * swapped). PgBouncer tracks both DateStyle and TimeZone, so it passes them on. TimeZone UTC is a default the URL may
 * change (ISO output names the offset). Isolation is stated by each transaction (sql/isolation.ts), not pinned here.
 */
const PINNED_SESSION = { DateStyle: "ISO, MDY" };
const DEFAULT_SESSION = { TimeZone: "UTC" };

/** The URL's server settings without any spelling of the pinned ones (GUC names ignore case). */
function unpinned(settings: Readonly<Record<string, string>>): Record<string, string> {
  const pinned = new Set(Object.keys(PINNED_SESSION).map((name) => name.toLowerCase()));
  return Object.fromEntries(Object.entries(settings).filter(([name]) => !pinned.has(name.toLowerCase())));
}

/** postgres.js's own default lifetime of a connection: 30 to 60 minutes, drawn per connection. */
const connectionLifetimeS = () => 60 * (30 + Math.random() * 30);

/**
 * The postgres.js options of a pool, every one given explicitly. postgres.js takes any option left
 * out from the environment (`PGSSL`, `PGHOST`, `PGPASSWORD`, `PGTARGETSESSIONATTRS`, `PGIDLE_TIMEOUT`,
 * `PGMAX_LIFETIME`, `PGAPPNAME`, … in vendor/postgres/src/index.js), behind the configuration's back:
 * `PGSSL=require` made the embedded database unreachable. So the URL is parsed here and never handed
 * to postgres.js, and every option the engine has no setting for gets postgres.js's default.
 * (`target_session_attrs: null` holds only with the vendored copy's patch 5, vendor/postgres/PATCHED.md.)
 */
export function databaseClientOptions(
  options: DatabaseOptions,
): postgres.Options<Record<string, postgres.PostgresType>> {
  const address = parseDatabaseUrl(options.url);
  const explicit = {
    // Arrays, for a URL naming several hosts (postgres.js tries them in order).
    host: [...address.hosts],
    port: [...address.ports],
    // A Unix socket's file (`<directory>/.s.PGSQL.<port>`); false: TCP.
    path: address.socketPath ?? false,
    database: address.database,
    user: address.user,
    // A function, because postgres.js reads PGPASSWORD for an empty one.
    pass: () => address.password,
    ssl: address.ssl,
    sslnegotiation: address.sslnegotiation,
    target_session_attrs: address.targetSessionAttrs,
    max: options.maxConnections,
    // The URL's connect_timeout, else the caller's, else 5 s.
    connect_timeout: address.connectTimeoutS ?? options.connectTimeoutS ?? 5,
    backoff: reconnectDelayS,
    idle_timeout: null,
    max_lifetime: options.replaceConnections === false ? null : connectionLifetimeS,
    max_pipeline: 100,
    keep_alive: 60,
    prepare: true,
    debug: false,
    fetch_types: true,
    publications: "alltables",
    // Server settings from the URL come last, as postgres.js orders them.
    connection: {
      application_name: "postgres.js",
      ...DEFAULT_SESSION,
      ...(options.idleInTransactionTimeoutMs
        ? { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }
        : {}),
      ...unpinned(address.serverSettings),
      ...PINNED_SESSION,
    },
    onnotice: () => {},
    // json and jsonb columns (states, timers, alert details) hold client-supplied ids as names.
    types: {
      json: { to: 114, from: [114, 3802], serialize: (value: unknown) => JSON.stringify(value), parse: parseJson },
    },
  };
  // The declared types know neither host lists, sslnegotiation, a null lifetime function nor verify-ca.
  return explicit as unknown as postgres.Options<Record<string, postgres.PostgresType>>;
}

/** Opens a pool; connections are made lazily on first query. */
export function connectDatabase(options: DatabaseOptions): Sql {
  return postgres(databaseClientOptions(options));
}
