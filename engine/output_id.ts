/**
 * The ids of outputs (alerts, recommendations, facts), derived from the input record's position so that a replay of
 * the same records re-produces the same ids, and the alerts table and the receivers' dedupe drop the copies.
 */
import { BUNDLE_INDEX_HEADER } from "./fact_bundle.ts";
import type { LogRecord } from "./log.ts";

/**
 * Output ids derive from the input's position (and index in its bundle), so a replay re-produces the same id; after the
 * log started again below its checkpoint (`generation` above 0), the topic is named with it (`events~1-0-5-a`), a source
 * apart from the old log's same offsets.
 */
export function outputId(record: LogRecord, rule: string, generation = 0): string {
  const index = record.headers[BUNDLE_INDEX_HEADER];
  const position = index === undefined ? record.offset : `${record.offset}.${index}`;
  const topic = generation > 0 ? `${record.topic}~${generation}` : record.topic;
  return `${topic}-${record.partition}-${position}-${rule}`;
}
