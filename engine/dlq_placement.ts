/**
 * Where `dlq replay` re-injects a DLQ record, or why it cannot: checked before the append, which one record naming a
 * topic or partition the log lacks would fail whole, holding back every record of the DLQ partition behind it.
 */
import { DLQ_HEADERS } from "./dead_letter.ts";
import type { LogRecord } from "./log.ts";

/** The topics a record may go back to (those the engine reads that the log has), with their partition counts. */
export type ReplayTargets = ReadonlyMap<string, number>;

/** The source topic (and, for a record without a key, partition) to re-inject into, or why there is none. */
export type Placement =
  | { readonly topic: string; readonly partition?: number; readonly reason?: undefined }
  | { readonly reason: string };

/**
 * A keyed record goes where its key leads; one without a key (a fact bundle, whose entries all belong to the partition
 * it was written to) back to its source partition, which by its empty key it would miss. Without `targets`, any source
 * topic is taken and only the partition's spelling is checked.
 */
export function placeDeadLetter(record: LogRecord, targets?: ReplayTargets): Placement {
  const topic = record.headers[DLQ_HEADERS.topic];
  if (!topic) return { reason: "no source topic header (not written by the engine)" };
  const partitions = targets?.get(topic);
  if (targets !== undefined && partitions === undefined) {
    const read = [...targets.keys()].join(", ");
    return { reason: `source topic ${JSON.stringify(topic)} is not one the engine reads in this log (${read})` };
  }
  if (record.key) return { topic };
  const raw = record.headers[DLQ_HEADERS.partition];
  // Digits only: Number("") and Number(" ") are 0, Number("1e1") 10.
  const partition = raw !== undefined && /^\d{1,9}$/.test(raw) ? Number(raw) : undefined;
  if (partition === undefined) {
    return {
      reason: raw === undefined
        ? "no key, and no source partition header"
        : `no key, and its source partition ${JSON.stringify(raw)} is not a number`,
    };
  }
  if (partitions !== undefined && partition >= partitions) {
    return { reason: `no key, and its source partition ${partition} is not one of the ${partitions} of ${topic}` };
  }
  return { topic, partition };
}
