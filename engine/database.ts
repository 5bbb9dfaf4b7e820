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
}

/** Opens a pool; connections are made lazily on first query. */
export function connectDatabase(options: DatabaseOptions): Sql {
  return postgres(options.url, {
    max: options.maxConnections,
    connect_timeout: options.connectTimeoutS ?? 5,
    onnotice: () => {},
    // json and jsonb columns (states, timers, alert details) hold client-supplied ids as names.
    types: {
      json: { to: 114, from: [114, 3802], serialize: (value: unknown) => JSON.stringify(value), parse: parseJson },
    },
  });
}
