/**
 * /readyz's database check. `select 1` answered from a PostgreSQL that takes no writes (a standby in recovery, or
 * `default_transaction_read_only` on for the server, database or role) and from a role that may not write the
 * checkpoint's tables, so /readyz said ready while every checkpoint failed; the check asks whether this session's
 * transactions may write those tables, and says why not.
 */
import type { CheckResult } from "../http/operations_routes.ts";
import type { Sql } from "./database.ts";

const READY: CheckResult = { ok: true };

/**
 * The tables a checkpoint writes (sql/checkpoints.ts and the minutes it stores), each with the privileges it uses: an
 * upsert (ON CONFLICT DO UPDATE) needs UPDATE, and an UPDATE or DELETE choosing its rows by a column needs SELECT; so
 * does an insert naming a conflict column (the alerts' ON CONFLICT DO NOTHING), and the alerts' pruning locks the rows
 * it deletes (FOR UPDATE), which needs UPDATE.
 */
const CHECKPOINT_WRITES: readonly (readonly [table: string, privilege: string])[] = [
  ...["SELECT", "INSERT", "UPDATE"].map((privilege) => ["partition_checkpoints", privilege] as const),
  ...["alerts", "actor_states", "actor_state_parts", "latest_recommendations", "analytics_minutes", "product_minutes"]
    .flatMap((
      table,
    ) => ["SELECT", "INSERT", "UPDATE", "DELETE"].map((privilege) => [table, privilege] as const)),
];

/** The checkpoint's tables, each once. */
const CHECKPOINT_TABLES: readonly string[] = [...new Set(CHECKPOINT_WRITES.map(([table]) => table))];

/** Ready when the server answers and a transaction of this session may write the checkpoint's tables; else why not. */
export async function databaseReadiness(sql: Sql): Promise<CheckResult> {
  // A table not created yet (start-up before the migrations) is left out: has_table_privilege(null, …) is null, and it
  // has no columns. One that exists but that to_regclass does not find (its schema out of the search_path, or not the
  // role's to use) is not. SELECT, INSERT and UPDATE may be granted on every column instead of the table (then
  // has_table_privilege is false while every checkpoint commits): each column needs it, from either grant.
  const [row] = await sql<
    { standby: boolean; read_only: string; unreachable: string | null; unwritable: string | null; role: string }[]
  >`
    select pg_is_in_recovery() as standby, current_setting('transaction_read_only') as read_only, current_user as role,
      (select string_agg(t.name, ', ' order by t.name)
         from unnest(${CHECKPOINT_TABLES}::text[]) as t(name)
        where to_regclass(t.name) is null
          and exists (select 1 from pg_class c where c.relname = t.name and c.relkind in ('r', 'p'))) as unreachable,
      (select string_agg(w.name || ' (' || w.privilege || ')', ', ' order by w.name, w.privilege)
         from unnest(${CHECKPOINT_WRITES.map(([table]) => table)}::text[],
                     ${CHECKPOINT_WRITES.map(([, privilege]) => privilege)}::text[]) as w(name, privilege)
        where case when w.privilege = 'DELETE' then not has_table_privilege(to_regclass(w.name), w.privilege)
                   else exists (select 1 from pg_attribute a
                                 where a.attrelid = to_regclass(w.name) and a.attnum > 0 and not a.attisdropped
                                   and not has_column_privilege(a.attrelid, a.attnum, w.privilege)) end) as unwritable`;
  if (row.standby) {
    return { ok: false, reason: "read-only: the server is a standby (pg_is_in_recovery()); no checkpoint can commit" };
  }
  if (row.read_only === "on") {
    return {
      ok: false,
      reason: "read-only: transactions are read-only (default_transaction_read_only = on); no checkpoint can commit",
    };
  }
  if (row.unreachable !== null) {
    return {
      ok: false,
      reason:
        `the role "${row.role}" cannot reach ${row.unreachable}: their schema is not in its search_path, or it may ` +
        `not use it (USAGE); no checkpoint can commit`,
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
