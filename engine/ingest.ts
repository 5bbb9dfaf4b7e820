/**
 * Ingestion: validates raw events, fills in server-assigned fields, and appends them to the log.
 * Shared by the HTTP API, compatibility inputs and importers, so every path applies the same rules.
 */
import { EVENT_TYPES, type EventType, incomingEvent, partitionKey, type StoredEvent } from "../actors/events.ts";
import { zodProblems } from "../actors/problems.ts";
import type { Topics } from "./config.ts";
import { type FieldProblem, ValidationError } from "./errors.ts";
import type { LogProducer, OutgoingRecord } from "./log.ts";
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
  const receivedAt = new Date(options.nowMs).toISOString();
  raw.forEach((input, index) => {
    const prefix = options.batch ? [index] : [];
    const at = (path: string) => [...prefix, path].join(".");
    const type = (input as { type?: unknown } | null)?.type;
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      problems.push({ path: prefix.join(".") || "(root)", message: "each event must be a JSON object" });
      return;
    }
    if (typeof type !== "string" || !TYPE_SET.has(type)) {
      problems.push({ path: at("type"), message: `must be one of: ${EVENT_TYPES.join(", ")}` });
      return;
    }
    const result = incomingEvent.safeParse(input);
    if (!result.success) {
      problems.push(...zodProblems(result.error, prefix));
      return;
    }
    const event = result.data;
    const occurredAt = event.occurredAt ?? receivedAt;
    if (Date.parse(occurredAt) > options.nowMs + options.rules.maxFutureMs) {
      problems.push({
        path: at("occurredAt"),
        message: `is more than ${options.rules.maxFutureMs / 1000} s in the future`,
      });
      return;
    }
    events.push({
      ...event,
      eventId: event.eventId ?? uuidv7(options.nowMs),
      occurredAt: new Date(occurredAt).toISOString(),
      receivedAt,
    } as StoredEvent);
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
  return { events, records };
}

/** User events go to `events`, inventory to `product-events`. */
function topicFor(type: EventType, topics: Topics): string {
  return type === "inventory_updated" ? topics.productEvents : topics.events;
}

/** Appends prepared events; resolves only once the log acknowledged all of them. */
export async function publishEvents(producer: LogProducer, prepared: PreparedEvents): Promise<string[]> {
  await producer.append(prepared.records);
  return prepared.events.map((e) => e.eventId);
}
