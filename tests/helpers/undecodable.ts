/** The source record of the dead letters the DLQ tests write: one the engine cannot decode. */
import type { LogRecord } from "../../engine/log.ts";

/** A record of `topic` holding `{oops` (not JSON), at partition 0, offset 0, key "ann", now, unless `fields` say. */
export function undecodable(topic: string, fields: Partial<Omit<LogRecord, "topic">> = {}): LogRecord {
  return {
    topic,
    partition: 0,
    offset: 0,
    key: "ann",
    value: new TextEncoder().encode("{oops"),
    headers: {},
    timestamp: Date.now(),
    ...fields,
  };
}
