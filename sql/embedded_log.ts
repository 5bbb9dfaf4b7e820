/**
 * Tables and queries of the embedded durable log (engine/embedded_log.ts). The log creates its own
 * small schema with `create table if not exists` instead of joining sql/migrations/: the tables
 * exist only in embedded mode and never in a production PostgreSQL. Tagged templates only.
 *
 * Offsets are allocated by bumping `embedded_log_partitions.next_offset` in the same statement that
 * inserts the records: the row lock on a partition's counter serialises concurrent appends to it,
 * so offsets are dense and ordered per partition, and a failed append allocates nothing.
 */
import type { Sql } from "../engine/database.ts";

/** Creates the log's tables if missing. */
export async function createEmbeddedLogSchema(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`create table if not exists embedded_log_topics (
      topic      text        primary key,
      partitions integer     not null check (partitions > 0),
      created_at timestamptz not null default now())`;
    await tx`create table if not exists embedded_log_partitions (
      topic       text    not null references embedded_log_topics (topic),
      partition   integer not null,
      next_offset bigint  not null default 0,   -- the offset the next appended record gets
      primary key (topic, partition))`;
    await tx`create table if not exists embedded_log_records (
      topic         text    not null,
      partition     integer not null,
      record_offset bigint  not null,
      key           text,
      value         bytea,
      headers       jsonb   not null default '{}',
      appended_at   bigint  not null,           -- epoch ms
      primary key (topic, partition, record_offset))`;
    await tx`create table if not exists embedded_log_group_offsets (
      group_id    text        not null,
      topic       text        not null,
      partition   integer     not null,
      next_offset bigint      not null,
      updated_at  timestamptz not null default now(),
      primary key (group_id, topic, partition))`;
  });
}

/** Creates the missing topics with their partitions; returns every topic's partition count afterwards. */
export async function ensureTopics(
  sql: Sql,
  topics: readonly { topic: string; partitions: number }[],
): Promise<Map<string, number>> {
  const names = topics.map((t) => t.topic);
  const counts = topics.map((t) => t.partitions);
  await sql.begin(async (tx) => {
    await tx`
      insert into embedded_log_topics (topic, partitions)
      select * from unnest(${names}::text[], ${counts}::int[])
      on conflict (topic) do nothing`;
    await tx`
      insert into embedded_log_partitions (topic, partition)
      select t.topic, p from embedded_log_topics t, generate_series(0, t.partitions - 1) p
       where t.topic = any(${names}::text[])
      on conflict do nothing`;
  });
  return await loadTopics(sql);
}

/** Every topic and its partition count. */
export async function loadTopics(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql<{ topic: string; partitions: number }[]>`select topic, partitions from embedded_log_topics`;
  return new Map(rows.map((r) => [r.topic, r.partitions]));
}

/** A record ready to be stored: partition already chosen, value base64-encoded, headers as JSON. */
export interface StoredRecordInput {
  readonly topic: string;
  readonly partition: number;
  readonly key: string;
  readonly valueBase64: string;
  readonly headersJson: string;
}

/**
 * Appends records in one statement (one transaction): allocates each partition's offsets and
 * inserts the records, numbered in input order within each partition. A record whose partition does not exist makes the whole
 * statement fail (its offset would be null), so nothing is half-appended.
 */
export async function appendRecords(sql: Sql, records: readonly StoredRecordInput[], now: number): Promise<void> {
  const counts = new Map<string, { topic: string; partition: number; n: number }>();
  const index: number[] = [];
  for (const r of records) {
    const id = `${r.topic}\u0000${r.partition}`;
    const c = counts.get(id) ?? { topic: r.topic, partition: r.partition, n: 0 };
    index.push(c.n++);
    counts.set(id, c);
  }
  const groups = [...counts.values()];
  await sql`
    with counts as (
      select * from unnest(${groups.map((g) => g.topic)}::text[], ${groups.map((g) => g.partition)}::int[],
                           ${groups.map((g) => g.n)}::int[]) as c(topic, partition, n)
    ), bumped as (
      update embedded_log_partitions p set next_offset = p.next_offset + c.n
        from counts c
       where p.topic = c.topic and p.partition = c.partition
      returning p.topic, p.partition, p.next_offset - c.n as base
    )
    insert into embedded_log_records (topic, partition, record_offset, key, value, headers, appended_at)
    select r.topic, r.partition, b.base + r.idx, r.key, decode(r.value, 'base64'), r.headers::jsonb, ${now}
      from unnest(${records.map((r) => r.topic)}::text[], ${records.map((r) => r.partition)}::int[], ${index}::int[],
                  ${records.map((r) => r.key)}::text[], ${records.map((r) => r.valueBase64)}::text[],
                  ${records.map((r) => r.headersJson)}::text[]) as r(topic, partition, idx, key, value, headers)
      left join bumped b on b.topic = r.topic and b.partition = r.partition`;
}

/** Where a partition is read from. */
export interface FetchPosition {
  readonly topic: string;
  readonly partition: number;
  readonly position: number;
}

/** A fetched record row, with its partition's end offset. */
export interface FetchedRow {
  readonly topic: string;
  readonly partition: number;
  readonly high_watermark: string;
  readonly record_offset: string;
  readonly key: string | null;
  readonly value: Uint8Array | null;
  readonly headers: Record<string, string>;
  readonly appended_at: string;
}

/**
 * Up to `max` records of each partition from its position on, in one query; partitions at their end return nothing.
 * A partition's records stop before their keys and values pass `maxBytes`, as Kafka's fetch does per partition, but
 * its first record always comes, however large. The sizes are read from the rows (octet_length does not detoast), so
 * only the records handed out are loaded.
 */
export async function fetchRecords(
  sql: Sql,
  positions: readonly FetchPosition[],
  max: number,
  maxBytes: number,
): Promise<FetchedRow[]> {
  if (positions.length === 0) return [];
  return await sql<FetchedRow[]>`
    select q.topic, q.partition, p.next_offset as high_watermark,
           r.record_offset, r.key, r.value, r.headers, r.appended_at
      from unnest(${positions.map((p) => p.topic)}::text[], ${positions.map((p) => p.partition)}::int[],
                  ${positions.map((p) => p.position)}::bigint[]) as q(topic, partition, position)
      join embedded_log_partitions p
        on p.topic = q.topic and p.partition = q.partition and p.next_offset > q.position
      cross join lateral (
        select s.record_offset, s.key, s.value, s.headers, s.appended_at from (
          select y.*, sum(y.bytes) over (order by y.record_offset) as through from (
            select x.record_offset, x.key, x.value, x.headers, x.appended_at,
                   coalesce(octet_length(x.key), 0) + coalesce(octet_length(x.value), 0) as bytes
              from embedded_log_records x
             where x.topic = q.topic and x.partition = q.partition and x.record_offset >= q.position
             order by x.record_offset
             limit ${max}) y) s
         where s.through <= ${maxBytes} or s.through = s.bytes) r
     order by q.topic, q.partition, r.record_offset`;
}

/** Records a group's committed offset of a partition (lag reporting). */
export async function saveGroupOffset(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
  nextOffset: number,
): Promise<void> {
  await sql`
    insert into embedded_log_group_offsets (group_id, topic, partition, next_offset)
    values (${groupId}, ${topic}, ${partition}, ${nextOffset})
    on conflict (group_id, topic, partition) do update
      set next_offset = excluded.next_offset, updated_at = now()`;
}

/**
 * Gives `groupId` an offset of 0 on every partition of `topics` where it has none yet: from then
 * on retention keeps whatever the group has not committed past, even before its first commit.
 */
export async function registerGroup(sql: Sql, groupId: string, topics: readonly string[]): Promise<void> {
  await sql`
    insert into embedded_log_group_offsets (group_id, topic, partition, next_offset)
    select ${groupId}, p.topic, p.partition, 0 from embedded_log_partitions p where p.topic = any(${topics}::text[])
    on conflict (group_id, topic, partition) do nothing`;
}

/** A group's committed offsets, keyed by `topic:partition`. */
export async function loadGroupOffsets(sql: Sql, groupId: string): Promise<Map<string, number>> {
  const rows = await sql<{ topic: string; partition: number; next_offset: string }[]>`
    select topic, partition, next_offset from embedded_log_group_offsets where group_id = ${groupId}`;
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, Number(r.next_offset)]));
}

/** A partition holding records that every group consuming its topic has passed. */
export interface PurgeablePartition {
  readonly topic: string;
  readonly partition: number;
  /** Records below this offset have been passed by every consuming group. */
  readonly floor: number;
}

/**
 * Partitions with records below their floor. A topic's consuming groups are those with an offset
 * (committed or registered) on any of its partitions; a partition's floor is the least of their
 * offsets there, 0 for a group with none on it (it has passed nothing). A topic no group has an
 * offset on (alerts, recommendations, the DLQ) has its end as floor: retention trims it by age alone.
 * Topics of `checkpointed` that a group consumes are left out: checkpointedPartitions bounds them.
 */
export async function purgeablePartitions(
  sql: Sql,
  checkpointed: readonly string[] = [],
): Promise<PurgeablePartition[]> {
  const rows = await sql<{ topic: string; partition: number; floor: string }[]>`
    with consumers as (
      select distinct group_id, topic from embedded_log_group_offsets
    ), floors as (
      select p.topic, p.partition,
             least(p.next_offset,
                   case when count(c.group_id) = 0 then p.next_offset
                        else min(coalesce(g.next_offset, 0)) end) as floor
        from embedded_log_partitions p
        left join consumers c on c.topic = p.topic
        left join embedded_log_group_offsets g
          on g.group_id = c.group_id and g.topic = p.topic and g.partition = p.partition
       group by p.topic, p.partition, p.next_offset
    )
    select f.topic, f.partition, f.floor from floors f
     where exists (select 1 from embedded_log_records r
                    where r.topic = f.topic and r.partition = f.partition and r.record_offset < f.floor)
       and not (f.topic = any(${checkpointed}::text[]) and exists (select 1 from consumers c where c.topic = f.topic))
     order by f.topic, f.partition`;
  return rows.map((r) => ({ topic: r.topic, partition: r.partition, floor: Number(r.floor) }));
}

/**
 * Partitions of `topics` (internal topics only the engine reads) with records below every consuming group's
 * checkpoint and committed offset there, whatever their age. The checkpoint (partition_checkpoints, migration 001) is
 * where a partition resumes after a crash; the committed offset only follows it, and may be ahead of it or behind.
 * A group with no checkpoint or offset on a partition has passed nothing there; a topic no group consumes is not
 * listed (purgeablePartitions trims it by age).
 */
export async function checkpointedPartitions(sql: Sql, topics: readonly string[]): Promise<PurgeablePartition[]> {
  if (topics.length === 0) return [];
  const rows = await sql<{ topic: string; partition: number; floor: string }[]>`
    with consumers as (
      select distinct group_id, topic from embedded_log_group_offsets where topic = any(${topics}::text[])
    ), floors as (
      select p.topic, p.partition,
             least(p.next_offset, min(least(coalesce(g.next_offset, 0), coalesce(k.next_offset, 0)))) as floor
        from embedded_log_partitions p
        join consumers c on c.topic = p.topic
        left join embedded_log_group_offsets g
          on g.group_id = c.group_id and g.topic = p.topic and g.partition = p.partition
        left join partition_checkpoints k
          on k.group_id = c.group_id and k.topic = p.topic and k.partition = p.partition
       group by p.topic, p.partition, p.next_offset
    )
    select f.topic, f.partition, f.floor from floors f
     where exists (select 1 from embedded_log_records r
                    where r.topic = f.topic and r.partition = f.partition and r.record_offset < f.floor)
     order by f.topic, f.partition`;
  return rows.map((r) => ({ topic: r.topic, partition: r.partition, floor: Number(r.floor) }));
}

/**
 * Deletes a partition's oldest records that lie below `floor` and were appended before `before`
 * (epoch ms), at most `limit` offsets from the oldest remaining one; returns how many were deleted.
 * Other records and the partition's next offset are untouched.
 */
export async function purgeOldestRecords(
  sql: Sql,
  target: PurgeablePartition,
  before: number,
  limit: number,
): Promise<number> {
  const { topic, partition, floor } = target;
  const result = await sql`
    delete from embedded_log_records
     where topic = ${topic} and partition = ${partition} and appended_at < ${before}
       and record_offset < least(${floor}::bigint, (
             select min(record_offset) from embedded_log_records
              where topic = ${topic} and partition = ${partition}) + ${limit}::bigint)`;
  return result.count;
}

/**
 * Deletes a partition's oldest records below `floor`, whatever their age, at most `limit` offsets from the oldest
 * remaining one; returns how many were deleted. The statement bounds itself by every consuming group's checkpoint and
 * committed offset as they stand when it runs (none: nothing is deleted), so that a floor read before a checkpoint
 * moved back never deletes a record a resumed partition would read.
 */
export async function purgeCheckpointedRecords(sql: Sql, target: PurgeablePartition, limit: number): Promise<number> {
  const { topic, partition, floor } = target;
  const result = await sql`
    delete from embedded_log_records
     where topic = ${topic} and partition = ${partition}
       and record_offset < least(${floor}::bigint, (
             select min(record_offset) from embedded_log_records
              where topic = ${topic} and partition = ${partition}) + ${limit}::bigint, (
             select coalesce(min(least(coalesce(g.next_offset, 0), coalesce(k.next_offset, 0))), 0)
               from (select distinct group_id from embedded_log_group_offsets where topic = ${topic}) c
               left join embedded_log_group_offsets g
                 on g.group_id = c.group_id and g.topic = ${topic} and g.partition = ${partition}
               left join partition_checkpoints k
                 on k.group_id = c.group_id and k.topic = ${topic} and k.partition = ${partition}))`;
  return result.count;
}

/** A partition's next offset (0 for a partition never appended to). */
export async function endOffset(sql: Sql, topic: string, partition: number): Promise<number> {
  const [row] = await sql<{ next_offset: string | null }[]>`
    select coalesce(
             (select next_offset from embedded_log_partitions where topic = ${topic} and partition = ${partition}),
             0) as next_offset`;
  return Number(row.next_offset);
}

/** Every appended-to partition's next offset of a topic. */
export async function endOffsets(sql: Sql, topic: string): Promise<Map<number, number>> {
  const rows = await sql<{ partition: number; next_offset: string }[]>`
    select partition, next_offset from embedded_log_partitions where topic = ${topic}`;
  return new Map(rows.map((row) => [Number(row.partition), Number(row.next_offset)]));
}

/** The first offset still stored in a partition; its next offset when retention emptied it. */
export async function earliestOffset(sql: Sql, topic: string, partition: number): Promise<number> {
  const [row] = await sql<{ earliest: string | null }[]>`
    select coalesce(
             (select min(record_offset) from embedded_log_records where topic = ${topic} and partition = ${partition}),
             (select next_offset from embedded_log_partitions where topic = ${topic} and partition = ${partition}),
             0) as earliest`;
  return Number(row.earliest);
}
