/** Which dead-letter records have been re-injected already. */
import type { Sql } from "../engine/database.ts";

/**
 * Records of `topic` already replayed, as "partition/offset" → their append time (epoch ms); null for a row recorded
 * before migration 015, which matches any record at its partition and offset.
 */
export async function loadReplayed(sql: Sql, groupId: string, topic: string): Promise<Map<string, number | null>> {
  const rows = await sql<{ partition: number; offset: string; record_time: string | null }[]>`
    select partition, "offset", record_time from dlq_replays where group_id = ${groupId} and topic in (${topic}, '')`;
  const out = new Map<string, number | null>();
  for (const row of rows) {
    const id = `${row.partition}/${row.offset}`;
    out.set(id, row.record_time === null || out.get(id) === null ? null : Number(row.record_time));
  }
  return out;
}

/**
 * Records that these records (offset and append time) of one DLQ partition were re-injected; a row of an earlier
 * record at the same offset (its topic created again since) is replaced.
 */
export async function markReplayed(
  sql: Sql,
  groupId: string,
  partition: number,
  offsets: readonly number[],
  topic: string,
  times: readonly number[],
): Promise<void> {
  if (offsets.length === 0) return;
  await sql`
    insert into dlq_replays (group_id, partition, "offset", record_time, topic)
    select ${groupId}, ${partition}, r.o, r.t, d.topic
      from unnest(${offsets.map(String)}::bigint[], ${times.map(String)}::bigint[]) as r(o, t),
           (select ${topic}::text as topic) d
    on conflict (group_id, topic, partition, "offset") do update
      set record_time = excluded.record_time, replayed_at = now()`;
}
