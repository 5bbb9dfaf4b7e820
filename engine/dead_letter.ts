/** Dead-letter records: the original bytes and key, with headers naming the error and the source. */
import type { EngineError } from "./errors.ts";
import type { LogRecord, OutgoingRecord } from "./log.ts";

/** Header names on `events.dlq` records. */
export const DLQ_HEADERS = {
  errorCode: "dlq-error-code",
  errorMessage: "dlq-error-message",
  topic: "dlq-source-topic",
  partition: "dlq-source-partition",
  offset: "dlq-source-offset",
  /** The source record's append time (epoch ms). */
  timestamp: "dlq-source-timestamp",
} as const;

/**
 * Headers of a record re-injected by `dlq replay` naming where (`topic:partition:offset`) and when
 * (epoch ms) it was first appended: an event produced without an id or time derives them from its
 * first append, so that it is dated then and keeps one eventId however often it is re-injected.
 */
export const ORIGIN_HEADERS = {
  position: "event-origin",
  time: "event-origin-time",
} as const;

/**
 * The error codes dead letters carry: a record that cannot be decoded or validated, and one whose
 * handler threw a TerminalError. `dlq replay --error` takes only these, so a typo is not a replay of nothing.
 */
export const DEAD_LETTER_CODES = ["validation_failed", "terminal"] as const;

/** Longest error message copied into a header. */
const MAX_MESSAGE_LENGTH = 1000;

/**
 * The message cut to MAX_MESSAGE_LENGTH, as text any log can store: a cut through a surrogate pair
 * (an emoji) or a NUL quoted from the input would make the embedded log refuse the DLQ record, and
 * the partition would retry that append for ever.
 */
export function storableMessage(message: string): string {
  return message.slice(0, MAX_MESSAGE_LENGTH).toWellFormed().replaceAll("\u0000", "\uFFFD");
}

/** Builds the DLQ record for `record`, which failed with `error`. */
export function deadLetter(dlqTopic: string, record: LogRecord, error: EngineError): OutgoingRecord {
  return {
    topic: dlqTopic,
    key: record.key ?? "",
    value: record.value ?? new Uint8Array(),
    headers: {
      ...record.headers,
      [DLQ_HEADERS.errorCode]: error.code,
      [DLQ_HEADERS.errorMessage]: storableMessage(error.message),
      [DLQ_HEADERS.topic]: record.topic,
      [DLQ_HEADERS.partition]: String(record.partition),
      [DLQ_HEADERS.offset]: String(record.offset),
      [DLQ_HEADERS.timestamp]: String(record.timestamp),
    },
  };
}
