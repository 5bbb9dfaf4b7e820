/** Queries on the instance registry (routing of state queries to partition owners). Tagged templates only. */
import type { Sql } from "../engine/database.ts";

/** Records (or refreshes) an instance and its HTTP base URL. */
export async function upsertInstance(sql: Sql, instanceId: string, httpUrl: string): Promise<void> {
  await sql`
    insert into instances (instance_id, http_url, updated_at)
    values (${instanceId}, ${httpUrl}, now())
    on conflict (instance_id) do update set http_url = excluded.http_url, updated_at = now()`;
}

/** Refreshes an instance's heartbeat; returns false when its row is gone (then it must re-register). */
export async function touchInstance(sql: Sql, instanceId: string): Promise<boolean> {
  const rows = await sql`update instances set updated_at = now() where instance_id = ${instanceId} returning 1`;
  return rows.length === 1;
}

/** Removes an instance's row on graceful stop. */
export async function deleteInstance(sql: Sql, instanceId: string): Promise<void> {
  await sql`delete from instances where instance_id = ${instanceId}`;
}

/**
 * Deletes the rows of instances whose heartbeat is older than `olderThanMs` (they died without unregistering: killed,
 * or stopped past their deadline); returns how many. The table is a few rows: a scan is cheaper than an index.
 */
export async function forgetDeadInstances(sql: Sql, olderThanMs: number): Promise<number> {
  const rows = await sql`
    delete from instances where updated_at < now() - ${olderThanMs}::integer * interval '1 millisecond' returning 1`;
  return rows.length;
}

/** The owner of a partition as recorded by its last claim. */
export interface PartitionOwner {
  readonly instanceId: string;
  /** Null when the owner has no registry row or its heartbeat is older than the staleness bound. */
  readonly httpUrl: string | null;
}

/** Who last claimed the partition, and its URL if that instance's heartbeat is within `staleMs`. */
export async function partitionOwner(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
  staleMs: number,
): Promise<PartitionOwner | null> {
  const [row] = await sql<{ owner: string | null; http_url: string | null }[]>`
    select c.owner, i.http_url
      from partition_checkpoints c
      left join instances i
        on i.instance_id = c.owner and i.updated_at > now() - ${staleMs}::integer * interval '1 millisecond'
     where c.group_id = ${groupId} and c.topic = ${topic} and c.partition = ${partition}`;
  return row?.owner ? { instanceId: row.owner, httpUrl: row.http_url } : null;
}
