/**
 * A start-up database step the server refuses for good: DATABASE_URL's role lacks a privilege the engine needs
 * (SQLSTATE 42501: on PostgreSQL 15 and later only a database's owner creates tables in its public schema), or the
 * server takes no writes (25006: a standby, or default_transaction_read_only on). Such a start-up used to end with the
 * server's bare message (`permission denied for schema public`, exit code 1, as for a failure worth retrying), naming
 * neither the database nor the step; it now stops as a bad setting does.
 */
import { ConfigError } from "./errors.ts";

/** SQLSTATE insufficient_privilege. */
const INSUFFICIENT_PRIVILEGE = "42501";
/** SQLSTATE read_only_sql_transaction. */
const READ_ONLY_SQL_TRANSACTION = "25006";

const REMEDIES: Readonly<Record<string, string>> = {
  [INSUFFICIENT_PRIVILEGE]:
    "the role of DATABASE_URL must own the database, or may create tables in its schema and write the engine's tables",
  [READ_ONLY_SQL_TRANSACTION]:
    "the server takes no writes (a standby, or default_transaction_read_only on): DATABASE_URL must name a primary " +
    "that accepts them",
};

/**
 * A ConfigError naming `service` (the database and its setting) and `what` (the step) when `error` is a refusal no
 * retry cures; `error` itself otherwise.
 */
export function refusedDatabaseStep(error: unknown, service: string, what: string): unknown {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  const remedy = typeof code === "string" ? REMEDIES[code] : undefined;
  if (remedy === undefined || error instanceof ConfigError) return error;
  return new ConfigError(
    `Cannot start: ${service} refused start-up (${what}): ${(error as Error).message} (${remedy})`,
    { cause: error },
  );
}
