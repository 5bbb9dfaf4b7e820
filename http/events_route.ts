/** POST /v1/events: one event, a JSON array, or NDJSON; 202 only after the log acknowledged all. */
import type { Topics } from "../engine/config.ts";
import { PayloadTooLargeError, ValidationError } from "../engine/errors.ts";
import { type IngestRules, prepareEvents, publishEvents } from "../engine/ingest.ts";
import type { LogProducer } from "../engine/log.ts";
import { bodyFormat, parseBody, readBody } from "./body.ts";
import type { RouteHandler } from "./router.ts";

/** Limits and collaborators of the ingestion route. */
export interface EventsRouteDeps {
  readonly producer: LogProducer;
  readonly topics: Topics;
  readonly rules: IngestRules;
  readonly maxEvents: number;
  readonly maxBodyBytes: number;
  readonly now: () => number;
}

/** Handler for POST /v1/events. */
export function eventsRoute(deps: EventsRouteDeps): RouteHandler {
  return async (request) => {
    const format = bodyFormat(request);
    const { values, batch } = parseBody(await readBody(request, deps.maxBodyBytes), format);
    if (values.length === 0) throw new ValidationError("no events in the body", [{ path: "(body)", message: "empty" }]);
    if (values.length > deps.maxEvents) {
      throw new PayloadTooLargeError(`${values.length} events exceed the limit of ${deps.maxEvents} per request`);
    }
    const prepared = prepareEvents(values, { rules: deps.rules, topics: deps.topics, nowMs: deps.now(), batch });
    const eventIds = await publishEvents(deps.producer, prepared);
    return Response.json({ accepted: eventIds.length, eventIds }, { status: 202 });
  };
}
