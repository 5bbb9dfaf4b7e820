/** The route table of the engine's HTTP API. */
import type { Topics } from "../engine/config.ts";
import type { IngestRules } from "../engine/ingest.ts";
import type { LogProducer } from "../engine/log.ts";
import type { StateReader } from "../engine/state_reader.ts";
import { eventsRoute } from "./events_route.ts";
import type { Route } from "./router.ts";
import { stateRoute } from "./state_route.ts";

/** Everything the routes need from the engine. */
export interface RouteDeps {
  readonly producer: LogProducer;
  readonly topics: Topics;
  readonly reader: StateReader;
  readonly ingest: {
    readonly rules: IngestRules;
    readonly maxEvents: number;
    readonly maxBodyBytes: number;
  };
  readonly now: () => number;
}

/** Builds the route table. */
export function buildRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: "POST",
      path: "/v1/events",
      handler: eventsRoute({ producer: deps.producer, topics: deps.topics, now: deps.now, ...deps.ingest }),
    },
    { method: "GET", path: "/v1/users/:id", handler: stateRoute(deps.reader, "user") },
    { method: "GET", path: "/v1/products/:id", handler: stateRoute(deps.reader, "product") },
    { method: "GET", path: "/healthz", handler: () => Response.json({ status: "ok" }) },
  ];
}
