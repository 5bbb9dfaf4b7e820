/**
 * The HTTP edge: the route table, the single error funnel, and request logging.
 * Handlers throw typed errors; only `errorResponse` turns them into statuses.
 */
import type { Instrumentation } from "../engine/instrumentation.ts";
import { FORWARDED_HEADER, isForwarded } from "../engine/forward_secret.ts";
import type { Logger } from "../engine/logger.ts";
import { errorResponse } from "./problem.ts";
import { createRouter, type Route } from "./router.ts";

/** Label for requests that matched no route (keeps metric cardinality bounded). */
const UNMATCHED_ROUTE = "(unmatched)";

/** Methods a metric label names; any other a client sends (any token is a method) is "other", not a new series. */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * Cache-Control of every answer: each is the state of its moment (a user's live state, the latest figures, readiness),
 * so no cache, a proxy's included, may keep one and serve it again.
 */
export const CACHE_CONTROL = "no-store";

/** `response` with a Cache-Control header, unless its handler gave it one. */
function uncached(response: Response): Response {
  if (response.headers.has("cache-control")) return response;
  try {
    response.headers.set("cache-control", CACHE_CONTROL);
    return response;
  } catch {
    // Immutable headers (a fetched response passed on as it came): copied into a response of our own.
    const headers = new Headers(response.headers);
    headers.set("cache-control", CACHE_CONTROL);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}

/**
 * `request` as the routes see it: without its `x-engine-forwarded` header unless the header carries the group's
 * `forwardSecret` (none: no request is another instance's), so that a client's copy of it is a client's request.
 */
function asRouted(request: Request, forwardSecret: string | undefined): Request {
  if (!request.headers.has(FORWARDED_HEADER)) return request;
  if (forwardSecret !== undefined && isForwarded(request, forwardSecret)) return request;
  const headers = new Headers(request.headers);
  headers.delete(FORWARDED_HEADER);
  return new Request(request, { headers });
}

/**
 * Turns routes into a fetch handler that never throws; reports each request to `instrumentation`. A request is taken
 * as forwarded by another instance only when its header carries `forwardSecret` (engine/forward_secret.ts).
 */
export function createHandler(
  routes: readonly Route[],
  logger: Logger,
  instrumentation?: Instrumentation,
  forwardSecret?: string,
): (request: Request) => Promise<Response> {
  const matched = new WeakMap<Request, string>();
  const route = createRouter(routes.map((r) => ({
    ...r,
    handler: (request: Request, params: Record<string, string>) => {
      matched.set(request, r.path);
      return r.handler(request, params);
    },
  })));
  const log = logger.child({ component: "http" });
  return async (received) => {
    const started = performance.now();
    const request = asRouted(received, forwardSecret);
    let response: Response;
    try {
      response = await route(request);
    } catch (error) {
      response = errorResponse(error);
      // Unexpected failures are errors; an unavailable log or database is an expected, retryable warning.
      if (response.status >= 500) {
        log[response.status === 500 ? "error" : "warn"]("request failed", {
          method: request.method,
          url: request.url,
          status: response.status,
          error,
        });
      }
    }
    response = uncached(response);
    instrumentation?.emit({
      type: "http_request",
      route: matched.get(request) ?? UNMATCHED_ROUTE,
      method: METHODS.has(request.method) ? request.method : "other",
      status: response.status,
      seconds: (performance.now() - started) / 1000,
      source: request.headers.has(FORWARDED_HEADER) ? "instance" : "client",
    });
    log.debug("request", {
      method: request.method,
      path: new URL(request.url).pathname,
      status: response.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
    return response;
  };
}
