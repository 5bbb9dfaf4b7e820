/**
 * Ingestion: validates raw events, fills in server-assigned fields, and appends them to the log.
 * Shared by the HTTP API, compatibility inputs and importers, so every path applies the same rules.
 */
import {
  EVENT_TYPES,
  eventEnvelope,
  type EventType,
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
  MAX_LISTED_PROBLEMS,
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
 * (paths prefixed by the event's index when `batch` is true). Nothing is partially accepted. Past
 * MAX_LISTED_PROBLEMS the list is cut there, and the events after the one that reached it are not
 * checked: their problems could only make the answer longer.
 */
export function prepareEvents(
  raw: readonly unknown[],
  options: { rules: IngestRules; topics: Topics; nowMs: number; batch: boolean },
): PreparedEvents {
  const problems: FieldProblem[] = [];
  const events: StoredEvent[] = [];
  const context = { ...options, receivedAt: new Date(options.nowMs).toISOString() };
  /** The first event of the request with each id, to find an id given to two different events. */
  const byId = new Map<string, FirstWithId>();
  let checked = 0;
  while (checked < raw.length && problems.length < MAX_LISTED_PROBLEMS) {
    const prepared = prepareOne(raw[checked], options.batch ? [checked] : [], context);
    if (Array.isArray(prepared)) problems.push(...prepared);
    else {
      const repeat = repeatedId(byId, prepared, checked);
      if (repeat) problems.push(repeat);
      events.push(prepared);
    }
    checked++;
  }
  if (problems.length > 0) {
    const count = new Set(problems.map((p) => p.path.split(".")[0])).size;
    const cut = problems.length > MAX_LISTED_PROBLEMS || checked < raw.length;
    const invalid = options.batch
      ? `${checked < raw.length ? "at least " : ""}${count} of ${raw.length} events are invalid; none was accepted`
      : "the event is invalid";
    const unchecked = checked === raw.length
      ? ""
      : `, and event${
        raw.length - checked > 1 ? `s ${checked}–${raw.length - 1} were` : ` ${checked} was`
      } not checked`;
    throw new ValidationError(
      cut ? `${invalid}; only the first ${MAX_LISTED_PROBLEMS} problems are listed${unchecked}` : invalid,
      problems.slice(0, MAX_LISTED_PROBLEMS),
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

/** The first event of a request with a given id, its index, and its content once compared. */
interface FirstWithId {
  readonly index: number;
  readonly event: StoredEvent;
  content?: string;
}

/**
 * A problem if `event` (the request's `index`th) has the id of an earlier event of the request with other content: one
 * of them would be dropped as a repeat of the other after a 202 (an id is one event), so the client reused an id. The
 * same event sent twice is kept, as any repeat is. Only given ids can meet: server-assigned ones are new.
 */
function repeatedId(byId: Map<string, FirstWithId>, event: StoredEvent, index: number): FieldProblem | null {
  const first = byId.get(event.eventId);
  if (first === undefined) {
    byId.set(event.eventId, { index, event });
    return null;
  }
  // Content is compared only on a repeat: most requests have none.
  first.content ??= canonicalJson(first.event);
  if (canonicalJson(event) === first.content) return null;
  return {
    path: `${index}.eventId`,
    message: `repeats the eventId of event ${first.index} with other content: events sharing an id are one event, ` +
      "so one of them would be dropped; give each event its own id",
  };
}

/** JSON with every object's keys sorted: the same content whatever order the client wrote its fields in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      typeof v === "object" && v !== null && !Array.isArray(v)
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
        : v,
  );
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
  // The edge's own checks read the input as sent, so that they are listed with the schema's problems, not after them.
  const edge = edgeProblems(raw).map((problem) => ({ path: at(problem.path), message: problem.message }));
  /** The schema's problems, the edge's, and a time too far ahead unless already named: one answer lists every problem. */
  const withOthers = (problems: FieldProblem[]): FieldProblem[] => {
    const all = [...problems];
    for (const problem of tooFar ? [...edge, tooFar] : edge) {
      if (!all.some((p) => p.path === problem.path)) all.push(problem);
    }
    return all;
  };
  const type = (raw as { type?: unknown }).type;
  if (typeof type !== "string" || !TYPE_SET.has(type)) {
    // The envelope is still checked, so that one answer lists every problem.
    const envelope = safeParseFast(eventEnvelope, raw);
    return withOthers([
      { path: at("type"), message: `must be one of: ${EVENT_TYPES.join(", ")}` },
      ...(envelope.success ? [] : zodProblems(envelope.error, prefix, raw)),
    ]);
  }
  const result = safeParseFast(incomingEvent, raw);
  if (!result.success) return withOthers(zodProblems(result.error, prefix, raw));
  const problems = withOthers([]);
  if (problems.length > 0) return problems;
  const event = result.data;
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

/**
 * UUIDs that name no event of their own: the nil UUID is what a client that leaves an id unset often sends (a default
 * Guid), so every such event of a user, or of a product's stock, after the first was counted as a repeat of it and lost.
 */
const SHARED_UUIDS = new Set(["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]);
const SHARED_UUID_MESSAGE = "must identify the event: the nil and the max UUID are not an event's own id " +
  "(events sharing an id count once); leave eventId out and the server assigns one";

/**
 * The checks made at the edge only, on the event as sent (any shape): an eventId of the nil or the max UUID, ids of
 * "." or "..", and an order's currency of three capital letters that is no ISO 4217 code (other forms are the schema's
 * problem). Paths are the event's own.
 */
function edgeProblems(input: object): FieldProblem[] {
  const event = input as { type?: unknown; eventId?: unknown; userId?: unknown; properties?: unknown };
  const problems: FieldProblem[] = [];
  if (typeof event.eventId === "string" && SHARED_UUIDS.has(event.eventId.toLowerCase())) {
    problems.push({ path: "eventId", message: SHARED_UUID_MESSAGE });
  }
  const dotSegment = (value: unknown, path: string) => {
    if (typeof value === "string" && DOT_SEGMENTS.has(value)) problems.push({ path, message: DOT_SEGMENT_MESSAGE });
  };
  dotSegment(event.userId, "userId");
  if (typeof event.properties !== "object" || event.properties === null) return problems;
  const properties = event.properties as { productId?: unknown; items?: unknown; currency?: unknown };
  if (WITH_PRODUCT_ID.has(event.type)) dotSegment(properties.productId, "properties.productId");
  if (event.type !== "order_completed") return problems;
  if (Array.isArray(properties.items)) {
    properties.items.forEach((item: unknown, index) => {
      if (typeof item === "object" && item !== null) {
        dotSegment((item as { productId?: unknown }).productId, `properties.items.${index}.productId`);
      }
    });
  }
  const currency = properties.currency;
  if (typeof currency === "string" && CURRENCY_FORM.test(currency) && !isIso4217(currency)) {
    problems.push({
      path: "properties.currency",
      message: `is not an ISO 4217 currency code: ${JSON.stringify(currency)}`,
    });
  }
  return problems;
}

/** Types whose properties name one product (other types drop a `productId` as an unknown field). */
const WITH_PRODUCT_ID = new Set<unknown>(
  [
    "product_viewed",
    "product_added_to_cart",
    "product_removed_from_cart",
    "inventory_updated",
  ] satisfies EventType[],
);

/** The form the schema takes a currency in; only such a code is looked up in ISO 4217's list here. */
const CURRENCY_FORM = /^[A-Z]{3}$/;

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
