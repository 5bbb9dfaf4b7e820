/**
 * The embedded log's records that retention deletes while a scenario runs, set aside by a trigger in the deployment's
 * own database with their partition's checkpoint at the moment of deletion: a reference fold over the log then still
 * sees every record ever appended, and a test can check that none was deleted at or past its checkpoint. The engine
 * runs unchanged; the trigger only copies what its deletions remove.
 */
import type { Sql } from "../../engine/database.ts";
import { createEmbeddedLogSchema } from "../../sql/embedded_log.ts";
import type { LogView } from "./modes.ts";
import { embeddedRecord, type EmbeddedRecordRow } from "./read_topic.ts";

/** Installs the trigger; run on the deployment's database before the first engine starts. */
export async function keepPurgedRecords(sql: Sql): Promise<void> {
  await createEmbeddedLogSchema(sql);
  await sql`create table if not exists purged_log_records (like embedded_log_records, checkpoint bigint)`;
  await sql`
    create or replace function keep_purged_log_record() returns trigger language plpgsql as $$
    begin
      insert into purged_log_records
      values (old.topic, old.partition, old.record_offset, old.key, old.value, old.headers, old.appended_at,
              (select min(k.next_offset) from partition_checkpoints k
                where k.topic = old.topic and k.partition = old.partition));
      return old;
    end $$`;
  await sql`drop trigger if exists keep_purged_log_record on embedded_log_records`;
  await sql`
    create trigger keep_purged_log_record before delete on embedded_log_records
      for each row execute function keep_purged_log_record()`;
}

/** Records deleted, by topic. */
export async function purgedCounts(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql<{ topic: string; n: string }[]>`
    select topic, count(*) as n from purged_log_records group by topic`;
  return new Map(rows.map((r) => [r.topic, Number(r.n)]));
}

/** Records deleted at or past their partition's checkpoint (none there: `null`), as `topic:partition@offset`. */
export async function purgedPastCheckpoint(sql: Sql, topics: readonly string[]): Promise<string[]> {
  const rows = await sql<{ topic: string; partition: number; record_offset: string; checkpoint: string | null }[]>`
    select topic, partition, record_offset, checkpoint from purged_log_records
     where topic = any(${topics}::text[]) and (checkpoint is null or record_offset >= checkpoint)
     order by topic, partition, record_offset`;
  return rows.map((r) => `${r.topic}:${r.partition}@${r.record_offset} (checkpoint ${r.checkpoint})`);
}

/** `view` whose records are those still in the log and those retention deleted, in offset order. */
export function withPurgedRecords(view: LogView): LogView {
  return {
    sql: view.sql,
    async records(topic) {
      const byPartition = await view.records(topic);
      const rows = await view.sql<
        EmbeddedRecordRow[]
      >`select partition, record_offset, key, value, headers, appended_at from purged_log_records
         where topic = ${topic}`;
      for (const row of rows) {
        const list = byPartition.get(row.partition) ?? [];
        list.push(embeddedRecord(topic, row));
        byPartition.set(row.partition, list);
      }
      for (const list of byPartition.values()) list.sort((a, b) => a.offset - b.offset);
      return byPartition;
    },
  };
}
