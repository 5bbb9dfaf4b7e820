/** POST /v1/events: one event, a JSON array, or NDJSON; 202 only after the log acknowledged all. */
import { z } from "zod";
import { incomingEvent, MAX_AMOUNT } from "../actors/events.ts";
import type { Topics } from "../engine/config.ts";
import { IngestOverloadedError, MAX_LISTED_PROBLEMS, PayloadTooLargeError, ValidationError } from "../engine/errors.ts";
import { type IngestRules, prepareEvents, publishEvents } from "../engine/ingest.ts";
import { IngestAdmission } from "../engine/ingest_admission.ts";
import type { Instrumentation } from "../engine/instrumentation.ts";
import type { LogProducer } from "../engine/log.ts";
import {
  BODY_IDLE_TIMEOUT_MS,
  bodyFormat,
  JSON_CONTENT_TYPE,
  NDJSON_CONTENT_TYPES,
  parseBody,
  readBody,
} from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import { problemDoc } from "./problem.ts";
import type { RouteHandler } from "./router.ts";

/** Limits and collaborators of the ingestion route. */
export interface EventsRouteDeps {
  readonly producer: LogProducer;
  readonly topics: Topics;
  readonly rules: IngestRules;
  readonly maxEvents: number;
  readonly maxBodyBytes: number;
  /** Longest pause in a body's upload before it is refused (408); defaults to BODY_IDLE_TIMEOUT_MS. */
  readonly bodyIdleTimeoutMs?: number;
  /** Most bytes of records waiting for the log's acknowledgement at once (MAX_INGEST_PENDING_BYTES). */
  readonly maxPendingBytes: number;
  readonly now: () => number;
  /** Counts accepted, rejected, refused and unacknowledged events (metrics). */
  readonly instrumentation?: Instrumentation;
}

/** Body of a 202: what the client needs to correlate and to retry idempotently. */
export const acceptedSchema = z.object({
  accepted: z.number().int().min(1).describe("Number of events stored"),
  eventIds: z.array(z.uuid()).describe("The events' ids in input order; server-assigned UUIDv7 where none was sent"),
}).meta({ id: "Accepted", description: "Every event was acknowledged by the log (Kafka: acks=all)" });

/** Body of a 202 response. */
export type Accepted = z.output<typeof acceptedSchema>;

/** Handler for POST /v1/events. */
export function eventsRoute(deps: EventsRouteDeps): RouteHandler {
  const admission = new IngestAdmission(deps.maxPendingBytes);
  return async (request) => {
    const format = bodyFormat(request);
    const { values, batch } = parseBody(
      await readBody(request, deps.maxBodyBytes, deps.bodyIdleTimeoutMs),
      format,
      deps.maxEvents,
    );
    if (values.length === 0) throw new ValidationError("no events in the body", [{ path: "(body)", message: "empty" }]);
    if (values.length > deps.maxEvents) {
      throw new PayloadTooLargeError(`${values.length} events exceed the limit of ${deps.maxEvents} per request`);
    }
    let prepared;
    try {
      prepared = prepareEvents(values, { rules: deps.rules, topics: deps.topics, nowMs: deps.now(), batch });
    } catch (error) {
      deps.instrumentation?.emit({
        type: "events_ingested",
        eventType: "(batch)",
        outcome: "rejected",
        count: values.length,
      });
      throw error;
    }
    const count = (outcome: "accepted" | "refused" | "unavailable") => {
      const byType = new Map<string, number>();
      for (const e of prepared.events) byType.set(e.type, (byType.get(e.type) ?? 0) + 1);
      for (const [eventType, n] of byType) {
        deps.instrumentation?.emit({ type: "events_ingested", eventType, outcome, count: n });
      }
    };
    let eventIds;
    try {
      eventIds = await publishEvents(deps.producer, prepared, admission);
    } catch (error) {
      if (error instanceof IngestOverloadedError) {
        deps.instrumentation?.emit({ type: "ingest_refused", events: prepared.events.length });
        count("refused");
      } else count("unavailable");
      throw error;
    }
    count("accepted");
    const body: Accepted = { accepted: eventIds.length, eventIds };
    return Response.json(body, { status: 202 });
  };
}

/** The route's OpenAPI operation, with the configured limits. */
export function eventsRouteDoc(
  limits: Pick<EventsRouteDeps, "maxEvents" | "maxBodyBytes" | "maxPendingBytes" | "rules">,
): OperationDoc {
  const batch = z.array(incomingEvent).min(1).max(limits.maxEvents).meta({
    id: "EventBatch",
    description: "Several events, validated together: one invalid event rejects the whole batch",
  });
  return {
    operationId: "postEvents",
    summary: "Ingest one event, a JSON array of events, or NDJSON",
    description: [
      `At most ${limits.maxEvents} events and ${limits.maxBodyBytes} bytes per request.`,
      "Every event is validated before any is stored: one invalid event rejects the whole request (400),",
      "listing every offending field as `errors[].path` (prefixed by the event's index for a batch),",
      `up to ${MAX_LISTED_PROBLEMS} problems (\`detail\` says when the list stops there).`,
      `Events dated more than ${limits.rules.maxFutureMs / 1000} s in the future are rejected.`,
      // Checks the JSON Schema below cannot express (zod refinements are left out of it).
      "Beyond the schema: times must fall between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z once in UTC;",
      "text must not hold U+0000 or an unpaired UTF-16 surrogate; a line's price × quantity (a cart add, an order",
      `item) must be at most ${MAX_AMOUNT}; an eventId must not be the nil or the max UUID (leave it out instead),`,
      "nor be given to two events of the request with different content.",
      "202 is sent only after the log acknowledged every event (Kafka: acks=all). A 503 means they were not",
      "acknowledged (some may still have been stored): retry with the same `eventId`s to stay idempotent.",
      `A 429 means the instance already holds ${limits.maxPendingBytes} bytes of events waiting for the log`,
      "(MAX_INGEST_PENDING_BYTES): nothing of the request was stored; retry after `Retry-After`.",
    ].join(" "),
    tags: ["ingestion"],
    requestBody: {
      required: true,
      content: {
        [JSON_CONTENT_TYPE]: { schema: z.union([incomingEvent, batch]) },
        [NDJSON_CONTENT_TYPES[0]]: {
          schema: z.string().describe(
            `Newline-delimited JSON, one Event per line; blank lines are skipped (also accepted as ${
              NDJSON_CONTENT_TYPES.slice(1).join(" and ")
            })`,
          ),
          itemSchema: incomingEvent,
        },
      },
    },
    responses: {
      202: {
        description: "Every event was stored",
        content: { [JSON_CONTENT_TYPE]: { schema: acceptedSchema } },
      },
      400: problemDoc(400, "Malformed JSON, invalid UTF-8, or invalid events (every problem listed)"),
      408: problemDoc(
        408,
        `No byte of the body arrived for ${BODY_IDLE_TIMEOUT_MS / 1000} s (the upload paused): nothing was stored`,
      ),
      413: problemDoc(413, "The body exceeds the byte limit, or the request holds too many events"),
      415: problemDoc(
        415,
        "The content type is missing or not JSON / NDJSON, or the body is compressed (then Accept-Encoding: identity)",
      ),
      429: problemDoc(
        429,
        `The events waiting for the log's acknowledgement would pass ${limits.maxPendingBytes} bytes ` +
          "(MAX_INGEST_PENDING_BYTES) with this request's: nothing of it was stored, retry after Retry-After",
      ),
      503: problemDoc(
        503,
        "The log did not acknowledge in time, or the engine is still starting; nothing is reported accepted, retry later",
      ),
    },
  };
}
