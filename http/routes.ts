/** The route table of the engine's HTTP API; each row carries its OpenAPI operation. */
import { z } from "zod";
import type { Topics } from "../engine/config.ts";
import { EngineStartingError } from "../engine/errors.ts";
import type { Instrumentation } from "../engine/instrumentation.ts";
import type { LogProducer } from "../engine/log.ts";
import type { StateReader } from "../engine/state_reader.ts";
import { JSON_CONTENT_TYPE } from "./body.ts";
import { eventsRoute, type EventsRouteDeps, eventsRouteDoc } from "./events_route.ts";
import { healthRoute, healthRouteDoc } from "./health_route.ts";
import { type ApiInfo, OPENAPI_VERSION, openApiDocument } from "./openapi.ts";
import { problemDoc } from "./problem.ts";
import { NO_QUERY, routeWithQuery } from "./query_params.ts";
import type { Route } from "./router.ts";
import { stateRoute, stateRouteDoc } from "./state_route.ts";

/** Everything the routes need from the engine. */
export interface RouteDeps {
  readonly producer: LogProducer;
  readonly topics: Topics;
  readonly reader: StateReader;
  /** The ingestion route's limits and rules (EventsRouteDeps less what the engine passes to every route). */
  readonly ingest: Omit<EventsRouteDeps, "producer" | "topics" | "now" | "instrumentation">;
  readonly now: () => number;
  /** Receives ingestion outcomes (metrics). */
  readonly instrumentation?: Instrumentation;
  /** Further routes assembled by the engine (queries, readiness, metrics); documented if they carry a doc. */
  readonly extra?: readonly Route[];
}

/** The `info` of the published OpenAPI document. */
export const API_INFO: ApiInfo = {
  title: "Actor engine HTTP API",
  version: "1.0.0",
  description: "Storefront event ingestion and per-user / per-product state queries. " +
    "Errors are application/problem+json (RFC 9457) naming each offending field.",
};

/** Where the generated OpenAPI document is served. */
export const OPENAPI_PATH = "/openapi.json";

const openApiSchema = z.looseObject({ openapi: z.literal(OPENAPI_VERSION) }).meta({
  id: "OpenApiDocument",
  description: "This document",
});

/** Builds the route table, including GET /openapi.json describing it. */
export function buildRoutes(deps: RouteDeps): Route[] {
  const routes: Route[] = [
    routeWithQuery({
      method: "POST",
      path: "/v1/events",
      query: NO_QUERY,
      handler: eventsRoute({
        producer: deps.producer,
        topics: deps.topics,
        now: deps.now,
        instrumentation: deps.instrumentation,
        ...deps.ingest,
      }),
      doc: eventsRouteDoc(deps.ingest),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/users/:id",
      query: NO_QUERY,
      handler: stateRoute(deps.reader, "user"),
      doc: stateRouteDoc("user"),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/products/:id",
      query: NO_QUERY,
      handler: stateRoute(deps.reader, "product"),
      doc: stateRouteDoc("product"),
    }),
    { method: "GET", path: "/healthz", handler: healthRoute, doc: healthRouteDoc },
    ...(deps.extra ?? []),
  ];
  let document = "";
  routes.push({
    method: "GET",
    path: OPENAPI_PATH,
    handler: () => new Response(document, { headers: { "content-type": JSON_CONTENT_TYPE } }),
    doc: {
      operationId: "getOpenApi",
      summary: "This API's OpenAPI 3.1 document, generated from the validation schemas",
      tags: ["operations"],
      responses: {
        200: { description: "The document", content: { [JSON_CONTENT_TYPE]: { schema: openApiSchema } } },
        // Served once the engine is ready: before, every route but /healthz, /readyz and /metrics answers 503.
        503: problemDoc(503, "The engine is still starting; retry later"),
      },
    },
  });
  // Generated once from the finished table (this row included), so a bad schema fails at start-up.
  document = JSON.stringify(openApiDocument(routes, API_INFO));
  return routes;
}

/**
 * Every route the running engine serves but /healthz and the operations' (which answer from the start), by method and
 * path: while it starts, these answer 503, and any other path or method is refused as once started (404, or 405 with
 * the path's own Allow), not told to retry. tests/unit/http_starting_methods_test.ts holds it to the running table.
 */
export const API_ROUTES: readonly Pick<Route, "method" | "path">[] = [
  { method: "POST", path: "/v1/events" },
  { method: "GET", path: "/v1/users/:id" },
  { method: "GET", path: "/v1/users/:id/recommendations" },
  { method: "GET", path: "/v1/products/:id" },
  { method: "GET", path: "/v1/products/:id/related" },
  { method: "GET", path: "/v1/analytics/realtime" },
  { method: "GET", path: "/v1/analytics/funnel" },
  { method: "GET", path: "/v1/analytics/top-products" },
  { method: "GET", path: "/v1/analytics/top-categories" },
  { method: "GET", path: "/v1/alerts" },
  { method: "GET", path: OPENAPI_PATH },
];

/**
 * The route table while the engine starts: it serves from before its log and database are open, so
 * /healthz (alive), `operations` (/readyz, 503 until the engine is ready; /metrics) answer, and every
 * route of API_ROUTES is a 503 with Retry-After (EngineStartingError).
 */
export function startingRoutes(operations: readonly Route[]): Route[] {
  const starting = () => {
    throw new EngineStartingError("the engine is still starting");
  };
  return [
    { method: "GET", path: "/healthz", handler: healthRoute },
    ...operations,
    ...API_ROUTES.map((route) => ({ ...route, handler: starting })),
  ];
}
