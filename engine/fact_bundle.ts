/**
 * Fact bundles. User actors emit two facts per event (to its product and to the global actor);
 * published one record each, they cost more in produce and fetch work than the events themselves.
 * A checkpoint therefore publishes the facts for one partition of an internal topic
 * (`product-events`, `analytics`) as one record whose value frames many (key, value) entries,
 * marked by a header. The consumer expands a bundle back into one record per entry, each with
 * the bundle's offset and its index in it, so output ids stay distinct and identical on replay.
 * Each entry keeps its exact bytes, so decoding, dead-lettering and DLQ replay see the record
 * they would have seen unbundled. Entries go to the partition Kafka's partitioner gives their
 * key, as an unbundled record would.
 *
 * Frame: per entry, varint key length, key (UTF-8), varint value length, value.
 */
import { ValidationError } from "./errors.ts";
import type { LogRecord, OutgoingRecord } from "./log.ts";
import { partitionForKey } from "./partitioner.ts";
import { varintLength, writeVarint } from "./varint.ts";

/** Marks a bundle record; its value is the frame version. */
export const BUNDLE_HEADER = "engine-bundle";
/** On an expanded entry: its index in the bundle (DLQ records carry it too). */
export const BUNDLE_INDEX_HEADER = "engine-bundle-index";
const VERSION = "1";
/** Bundles stay well under Kafka's default `message.max.bytes` (1 MiB) for one record batch. */
export const MAX_BUNDLE_BYTES = 256 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface OpenBundle {
  readonly topic: string;
  readonly partition: number;
  /** Keys and values, alternating; each is framed by its varint length when the bundle closes. */
  readonly parts: Uint8Array[];
  bytes: number;
  /** Position of the bundle among the output records. */
  readonly at: number;
}

/**
 * Replaces the records of the topics in `partitionsOf` (topic → partition count) by bundles, one
 * or more per target partition, in their order; other records pass through. The output keeps the
 * relative order of every partition's records.
 */
export function bundleRecords(
  records: readonly OutgoingRecord[],
  partitionsOf: ReadonlyMap<string, number>,
  maxBytes = MAX_BUNDLE_BYTES,
): OutgoingRecord[] {
  const out: (OutgoingRecord | OpenBundle)[] = [];
  const open = new Map<string, OpenBundle>();
  for (const record of records) {
    const partitions = partitionsOf.get(record.topic);
    if (partitions === undefined) {
      out.push(record);
      continue;
    }
    const partition = record.partition ?? partitionForKey(record.key, partitions);
    const id = `${record.topic}\u0000${partition}`;
    if (record.headers !== undefined) {
      // Headers cannot ride in a bundle: the record goes alone, and later ones start a new bundle after it.
      open.delete(id);
      out.push(record);
      continue;
    }
    const key = encoder.encode(record.key);
    const value = typeof record.value === "string" ? encoder.encode(record.value) : record.value;
    const size = varintLength(key.length) + key.length + varintLength(value.length) + value.length;
    let bundle = open.get(id);
    if (!bundle || (bundle.bytes > 0 && bundle.bytes + size > maxBytes)) {
      bundle = { topic: record.topic, partition, parts: [], bytes: 0, at: out.length };
      open.set(id, bundle);
      out.push(bundle);
    }
    bundle.parts.push(key, value);
    bundle.bytes += size;
  }
  return out.map((item) => "parts" in item ? close(item) : item);
}

function close(bundle: OpenBundle): OutgoingRecord {
  const value = new Uint8Array(bundle.bytes);
  let at = 0;
  for (const part of bundle.parts) {
    at = writeVarint(value, at, part.length);
    value.set(part, at);
    at += part.length;
  }
  return {
    topic: bundle.topic,
    partition: bundle.partition,
    key: "",
    value,
    headers: { [BUNDLE_HEADER]: VERSION },
  };
}

/** Whether a record read from the log is a bundle. */
export function isBundle(record: LogRecord): boolean {
  return record.headers[BUNDLE_HEADER] !== undefined;
}

/** The entries of a bundle as records; throws ValidationError for a malformed bundle. */
export function expandBundle(record: LogRecord): LogRecord[] {
  if (record.headers[BUNDLE_HEADER] !== VERSION) {
    throw new ValidationError(`unknown bundle version '${record.headers[BUNDLE_HEADER]}'`);
  }
  const bytes = record.value ?? new Uint8Array();
  const entries: LogRecord[] = [];
  let at = 0;
  const read = (): Uint8Array => {
    let length = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw new ValidationError(`bundle truncated at byte ${at}`);
      const b = bytes[at++];
      length += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
    }
    if (at + length > bytes.length) throw new ValidationError(`bundle truncated at byte ${at}`);
    return bytes.subarray(at, at += length);
  };
  while (at < bytes.length) {
    const key = decoder.decode(read());
    const value = read();
    entries.push({
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key,
      value,
      headers: { [BUNDLE_INDEX_HEADER]: String(entries.length) },
      timestamp: record.timestamp,
    });
  }
  return entries;
}
