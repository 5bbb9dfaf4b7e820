/**
 * /readyz's database check. `select 1` answered from a PostgreSQL that takes no writes (a standby in recovery, or
 * `default_transaction_read_only` on for the server, database or role), so /readyz said ready while every checkpoint
 * failed; the check asks whether this session's transactions may write, and says why not.
 */
import type { CheckResult } from "../http/operations_routes.ts";
import type { Sql } from "./database.ts";

const READY: CheckResult = { ok: true };

/** Ready when the server answers and a transaction of this session may write; otherwise why not. */
export async function databaseReadiness(sql: Sql): Promise<CheckResult> {
  const [row] = await sql<{ standby: boolean; read_only: string }[]>`
    select pg_is_in_recovery() as standby, current_setting('transaction_read_only') as read_only`;
  if (row.standby) {
    return { ok: false, reason: "read-only: the server is a standby (pg_is_in_recovery()); no checkpoint can commit" };
  }
  if (row.read_only === "on") {
    return {
      ok: false,
      reason: "read-only: transactions are read-only (default_transaction_read_only = on); no checkpoint can commit",
    };
  }
  return READY;
}
