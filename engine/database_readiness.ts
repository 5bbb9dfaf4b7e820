/**
 * /readyz's database check. `select 1` answered from a PostgreSQL that takes no writes (a standby in recovery, or
 * `default_transaction_read_only` on for the server, database or role) and from a role that may not write the
 * checkpoint's tables, so /readyz said ready while every checkpoint failed; the check asks whether this session's
 * transactions may write those tables, and says why not.
 */
import type { CheckResult } from "../http/operations_routes.ts";
import type { Sql } from "./database.ts";

const READY: CheckResult = { ok: true };

/** The tables a checkpoint upserts (`on conflict do update`, which needs UPDATE too) and deletes from. */
const UPSERTED = [
  "actor_states",
  "actor_state_parts",
  "latest_recommendations",
  "analytics_minutes",
  "product_minutes",
];

/** The tables a checkpoint writes (sql/checkpoints.ts and the minutes it stores), each with the privileges it uses. */
const CHECKPOINT_WRITES: readonly (readonly [table: string, privilege: string])[] = [
  ["partition_checkpoints", "INSERT"],
  ["partition_checkpoints", "UPDATE"],
  ["alerts", "INSERT"],
  ["alerts", "DELETE"],
  ...UPSERTED.flatMap((table) => ["INSERT", "UPDATE", "DELETE"].map((privilege) => [table, privilege] as const)),
];

/** Ready when the server answers and a transaction of this session may write the checkpoint's tables; else why not. */
export async function databaseReadiness(sql: Sql): Promise<CheckResult> {
  // A table not created yet (start-up before the migrations) is left out: has_table_privilege(null, …) is null.
  const [row] = await sql<{ standby: boolean; read_only: string; unwritable: string | null; role: string }[]>`
    select pg_is_in_recovery() as standby, current_setting('transaction_read_only') as read_only, current_user as role,
      (select string_agg(w.name || ' (' || w.privilege || ')', ', ' order by w.name, w.privilege)
         from unnest(${CHECKPOINT_WRITES.map(([table]) => table)}::text[],
                     ${CHECKPOINT_WRITES.map(([, privilege]) => privilege)}::text[]) as w(name, privilege)
        where not has_table_privilege(to_regclass(w.name), w.privilege)) as unwritable`;
  if (row.standby) {
    return { ok: false, reason: "read-only: the server is a standby (pg_is_in_recovery()); no checkpoint can commit" };
  }
  if (row.read_only === "on") {
    return {
      ok: false,
      reason: "read-only: transactions are read-only (default_transaction_read_only = on); no checkpoint can commit",
    };
  }
  if (row.unwritable !== null) {
    return {
      ok: false,
      reason: `the role "${row.role}" may not write ${row.unwritable}; no checkpoint can commit`,
    };
  }
  return READY;
}
