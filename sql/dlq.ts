/** Which dead-letter records have been re-injected already. */
import type { Sql } from "../engine/database.ts";

/** Offsets already replayed, as "partition/offset" strings. */
export async function loadReplayed(sql: Sql, groupId: string): Promise<Set<string>> {
  const rows = await sql<{ partition: number; offset: string }[]>`
    select partition, "offset" from dlq_replays where group_id = ${groupId}`;
  return new Set(rows.map((r) => `${r.partition}/${r.offset}`));
}

/** Records that these offsets of one DLQ partition were re-injected. */
export async function markReplayed(
  sql: Sql,
  groupId: string,
  partition: number,
  offsets: readonly number[],
): Promise<void> {
  if (offsets.length === 0) return;
  await sql`
    insert into dlq_replays (group_id, partition, "offset")
    select ${groupId}, ${partition}, o from unnest(${offsets.map(String)}::bigint[]) as o
    on conflict do nothing`;
}
