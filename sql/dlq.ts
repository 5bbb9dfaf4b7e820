/** Which dead-letter records have been re-injected already. */
import type { Sql } from "../engine/database.ts";

/**
 * Records of one partition of `topic` already replayed whose offsets are in [from, to), as "partition/offset" → their
 * append time (epoch ms); null for a row recorded before migration 015, which matches any record at its partition and
 * offset. Only the offsets a replay reads: the rows of other offsets would make each run's cost grow with the table.
 */
export async function loadReplayed(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
  from: number,
  to: number,
): Promise<Map<string, number | null>> {
  const rows = await sql<{ partition: number; offset: string; record_time: string | null }[]>`
    select partition, "offset", record_time from dlq_replays
     where group_id = ${groupId} and topic in (${topic}, '') and partition = ${partition}
       and "offset" >= ${String(from)}::bigint and "offset" < ${String(to)}::bigint`;
  const out = new Map<string, number | null>();
  for (const row of rows) {
    const id = `${row.partition}/${row.offset}`;
    out.set(id, row.record_time === null || out.get(id) === null ? null : Number(row.record_time));
  }
  return out;
}

/**
 * Forgets the rows of `topic`'s records that retention deleted: those below each partition's first offset (`firsts`,
 * partition → offset), which no read of the topic returns again (a topic created again starts at 0, and its records
 * at an offset still above are told apart by their append time). Rows naming no topic (before migration 015) are
 * kept, since they may be another TOPIC_PREFIX's. Returns how many rows it deleted.
 */
export async function forgetDeletedReplays(
  sql: Sql,
  groupId: string,
  topic: string,
  firsts: ReadonlyMap<number, number>,
): Promise<number> {
  if (firsts.size === 0) return 0;
  const result = await sql`
    delete from dlq_replays d
     using unnest(${[...firsts.keys()]}::int[], ${[...firsts.values()].map(String)}::bigint[]) as f(p, o)
     where d.group_id = ${groupId} and d.topic = ${topic} and d.partition = f.p and d."offset" < f.o`;
  return result.count;
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
