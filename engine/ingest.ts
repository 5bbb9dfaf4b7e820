/**
 * Ingestion: validates raw events, fills in server-assigned fields, and appends them to the log.
 * Shared by the HTTP API, compatibility inputs and importers, so every path applies the same rules.
 */
import {
  EVENT_TYPES,
  eventEnvelope,
  type EventType,
  type IncomingEvent,
  incomingEvent,
  partitionKey,
  type StoredEvent,
  upperCaseTime,
} from "../actors/events.ts";
import { isIso4217 } from "../actors/currency.ts";
import { zodProblems } from "../actors/problems.ts";
import type { Topics } from "./config.ts";
import {
  ensureError,
  type FieldProblem,
  LogUnavailableError,
  PayloadTooLargeError,
  ValidationError,
} from "./errors.ts";
import type { IngestAdmission } from "./ingest_admission.ts";
import { utf8Bytes } from "./kafka_producer.ts";
import type { LogProducer, OutgoingRecord } from "./log.ts";
import { safeParseFast } from "./schema_check.ts";
import { uuidv7 } from "./uuid.ts";

/** Rules applied to every incoming event. */
export interface IngestRules {
  /** Events dated further ahead than this are rejected. */
  readonly maxFutureMs: number;
}

/** Validated events ready to append, in input order. */
export interface PreparedEvents {
  readonly events: readonly StoredEvent[];
  readonly records: readonly OutgoingRecord[];
  /** Bytes of the records' keys and values in UTF-8: what the append holds until the log answers it. */
  readonly bytes: number;
}

const TYPE_SET = new Set<string>(EVENT_TYPES);

/**
 * Validates every event; if any is invalid, throws one ValidationError listing all problems
 * (paths prefixed by the event's index when `batch` is true). Nothing is partially accepted.
 */
export function prepareEvents(
  raw: readonly unknown[],
  options: { rules: IngestRules; topics: Topics; nowMs: number; batch: boolean },
): PreparedEvents {
  const problems: FieldProblem[] = [];
  const events: StoredEvent[] = [];
  const context = { ...options, receivedAt: new Date(options.nowMs).toISOString() };
  raw.forEach((input, index) => {
    const prepared = prepareOne(input, options.batch ? [index] : [], context);
    if (Array.isArray(prepared)) problems.push(...prepared);
    else events.push(prepared);
  });
  if (problems.length > 0) {
    const count = new Set(problems.map((p) => p.path.split(".")[0])).size;
    throw new ValidationError(
      options.batch ? `${count} of ${raw.length} events are invalid; none was accepted` : "the event is invalid",
      problems,
    );
  }
  const records = events.map((event) => ({
    topic: topicFor(event.type, options.topics),
    key: partitionKey(event),
    value: JSON.stringify(event),
  }));
  let total = 0;
  records.forEach((record, index) => {
    const bytes = utf8Bytes(record.key) + utf8Bytes(record.value);
    total += bytes;
    if (bytes > MAX_EVENT_RECORD_BYTES) {
      throw new PayloadTooLargeError(
        `${
          options.batch ? `event ${index}` : "the event"
        } would be a log record of ${bytes} bytes, above the ${MAX_EVENT_RECORD_BYTES} one event may take; none was accepted`,
      );
    }
  });
  return { events, records, bytes: total };
}

/**
 * Most bytes (key and value) of the log record one event becomes. Kafka refuses a record batch
 * over its `message.max.bytes` (1 MiB by default), so a larger event would be refused by the
 * broker on every retry, each answered 503: refused here instead, as too large (413).
 */
export const MAX_EVENT_RECORD_BYTES = 1_000_000;

/** Validates one event and fills in its server-assigned fields, or lists its problems. */
function prepareOne(
  input: unknown,
  prefix: readonly number[],
  context: { rules: IngestRules; nowMs: number; receivedAt: string },
): StoredEvent | FieldProblem[] {
  const at = (path: string) => [...prefix, path].join(".");
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return [{ path: prefix.join(".") || "(root)", message: "each event must be a JSON object" }];
  }
  const given = (input as { occurredAt?: unknown }).occurredAt;
  const occurred = upperCaseTime(given);
  // RFC 3339 allows a lower-case `t` and `z`: checked (and stored) in upper case.
  const raw = occurred === given ? input : { ...input, occurredAt: occurred };
  const occurredMs = typeof occurred === "string" ? Date.parse(occurred) : NaN;
  const tooFar = occurredMs > context.nowMs + context.rules.maxFutureMs
    ? { path: at("occurredAt"), message: `is more than ${context.rules.maxFutureMs / 1000} s in the future` }
    : null;
  /** The schema's problems, and a time too far ahead unless its form is already one of them: one answer lists all. */
  const withTooFar = (problems: FieldProblem[]): FieldProblem[] =>
    tooFar && !problems.some((p) => p.path === tooFar.path) ? [...problems, tooFar] : problems;
  const type = (raw as { type?: unknown }).type;
  if (typeof type !== "string" || !TYPE_SET.has(type)) {
    // The envelope is still checked, so that one answer lists every problem.
    const envelope = safeParseFast(eventEnvelope, raw);
    return withTooFar([
      { path: at("type"), message: `must be one of: ${EVENT_TYPES.join(", ")}` },
      ...(envelope.success ? [] : zodProblems(envelope.error, prefix, raw)),
    ]);
  }
  const result = safeParseFast(incomingEvent, raw);
  if (!result.success) return withTooFar(zodProblems(result.error, prefix, raw));
  if (tooFar) return [tooFar];
  const event = result.data;
  // Checked here only, not in the schema records are decoded with: events already in the log keep being handled.
  const edgeProblems = dotSegmentIds(event).map((path) => ({ path: at(path), message: DOT_SEGMENT_MESSAGE }));
  if (event.type === "order_completed" && !isIso4217(event.properties.currency)) {
    edgeProblems.push({
      path: at("properties.currency"),
      message: `is not an ISO 4217 currency code: ${JSON.stringify(event.properties.currency)}`,
    });
  }
  if (edgeProblems.length > 0) return edgeProblems;
  let occurredAt = context.receivedAt;
  if (event.occurredAt !== undefined) {
    if (!Number.isFinite(occurredMs)) return [{ path: at("occurredAt"), message: "is not a representable date" }];
    occurredAt = new Date(occurredMs).toISOString();
  }
  return {
    ...event,
    // UUIDs are case-insensitive: one spelling, so that the same id in upper case is the same event.
    eventId: event.eventId?.toLowerCase() ?? uuidv7(context.nowMs),
    occurredAt,
    receivedAt: context.receivedAt,
  } as StoredEvent;
}

/**
 * Ids a URL path cannot name: URL parsing resolves `/v1/users/..` (also written `%2E%2E`) to `/v1/`, so such a user or
 * product could be written but never queried. Refused at the edge only: events already in the log keep being handled.
 */
const DOT_SEGMENTS = new Set([".", ".."]);
const DOT_SEGMENT_MESSAGE = 'must not be "." or "..": a URL path cannot name it';

/** Paths of the user and product ids of `event` that are dot segments. */
function dotSegmentIds(event: IncomingEvent): string[] {
  const paths: string[] = [];
  if (event.userId !== undefined && DOT_SEGMENTS.has(event.userId)) paths.push("userId");
  const properties = event.properties as { productId?: unknown; items?: readonly { productId: string }[] };
  if (typeof properties.productId === "string" && DOT_SEGMENTS.has(properties.productId)) {
    paths.push("properties.productId");
  }
  properties.items?.forEach((item, index) => {
    if (DOT_SEGMENTS.has(item.productId)) paths.push(`properties.items.${index}.productId`);
  });
  return paths;
}

/** User events go to `events`, inventory to `product-events`. */
function topicFor(type: EventType, topics: Topics): string {
  return type === "inventory_updated" ? topics.productEvents : topics.events;
}

/**
 * Appends prepared events; resolves only once the log acknowledged all of them. Throws
 * IngestOverloadedError, appending nothing, if their bytes would pass `admission`'s limit; they
 * count against it until the append settles, whatever became of the request meanwhile. Any failure
 * of the log is a LogUnavailableError (retry later), whatever the adapter threw.
 */
export async function publishEvents(
  producer: LogProducer,
  prepared: PreparedEvents,
  admission: IngestAdmission,
): Promise<string[]> {
  admission.acquire(prepared.bytes);
  try {
    await producer.append(prepared.records);
  } catch (error) {
    if (error instanceof LogUnavailableError) throw error;
    throw new LogUnavailableError(`the log did not acknowledge the events: ${ensureError(error).message}`, {
      cause: error,
    });
  } finally {
    admission.release(prepared.bytes);
  }
  return prepared.events.map((e) => e.eventId);
}
