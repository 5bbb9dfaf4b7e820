/** Reads a whole topic as it is now, from the embedded log's table or from Kafka, for checks after a scenario. */
import type { Kafka } from "kafkajs";
import type { Sql } from "../../engine/database.ts";
import type { LogRecord } from "../../engine/log.ts";
import { uniqueName } from "./services.ts";

/** A row of the embedded log's records table (or of a copy of it), as a test reads it. */
export interface EmbeddedRecordRow {
  partition: number;
  record_offset: string;
  key: string | null;
  value: Uint8Array | null;
  headers: Record<string, string>;
  appended_at: string;
}

/** The log record a row of `topic` holds. */
export function embeddedRecord(topic: string, row: EmbeddedRecordRow): LogRecord {
  return {
    topic,
    partition: row.partition,
    offset: Number(row.record_offset),
    key: row.key,
    value: row.value ? new Uint8Array(row.value) : null,
    headers: row.headers ?? {},
    timestamp: Number(row.appended_at),
  };
}

/** Every record of an embedded-log topic, by partition. */
export async function readEmbeddedTopic(sql: Sql, topic: string): Promise<Map<number, LogRecord[]>> {
  const [partitions] = await sql<
    { n: number }[]
  >`select partitions as n from embedded_log_topics where topic = ${topic}`;
  if (!partitions) throw new Error(`the embedded log has no topic ${topic}`);
  const rows = await sql<
    EmbeddedRecordRow[]
  >`select partition, record_offset, key, value, headers, appended_at from embedded_log_records
     where topic = ${topic} order by partition, record_offset`;
  const byPartition = new Map<number, LogRecord[]>(Array.from({ length: partitions.n }, (_, p) => [p, []]));
  for (const row of rows) {
    byPartition.get(row.partition)!.push(embeddedRecord(topic, row));
  }
  return byPartition;
}

/** Offsets of the records left in each partition of an embedded-log topic (retention tests). */
export async function remainingOffsets(sql: Sql, topic: string): Promise<Record<number, number[]>> {
  const rows = await sql<{ partition: number; record_offset: string }[]>`
    select partition, record_offset from embedded_log_records where topic = ${topic} order by partition, record_offset`;
  const out: Record<number, number[]> = {};
  for (const r of rows) (out[r.partition] ??= []).push(Number(r.record_offset));
  return out;
}

/** Every record of a Kafka topic up to its end offsets at call time, by partition. */
export async function readKafkaTopic(kafka: Kafka, topic: string): Promise<Map<number, LogRecord[]>> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  await admin.disconnect();
  const byPartition = new Map<number, LogRecord[]>([...ends.keys()].map((p) => [p, []]));
  const remaining = new Set([...ends].filter(([, end]) => end > 0).map(([p]) => p));
  if (remaining.size === 0) return byPartition;
  const consumer = kafka.consumer({ groupId: uniqueName("reader"), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = Promise.withResolvers<void>();
  await consumer.run({
    eachBatch: ({ batch }) => {
      const list = byPartition.get(batch.partition)!;
      const end = ends.get(batch.partition)!;
      for (const m of batch.messages) {
        if (Number(m.offset) >= end) continue;
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(m.headers ?? {})) {
          if (value !== undefined) headers[name] = String(value);
        }
        list.push({
          topic,
          partition: batch.partition,
          offset: Number(m.offset),
          key: m.key?.toString() ?? null,
          value: m.value ? new Uint8Array(m.value) : null,
          headers,
          timestamp: Number(m.timestamp),
        });
      }
      if (list.length > 0 && list[list.length - 1].offset + 1 >= end) remaining.delete(batch.partition);
      if (remaining.size === 0) done.resolve();
      return Promise.resolve();
    },
  });
  await done.promise;
  await consumer.disconnect();
  return byPartition;
}
