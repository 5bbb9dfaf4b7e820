/**
 * The HTTP edge: the route table, the single error funnel, and request logging.
 * Handlers throw typed errors; only `errorResponse` turns them into statuses.
 */
import type { Logger } from "../engine/logger.ts";
import { errorResponse } from "./problem.ts";
import { createRouter, type Route } from "./router.ts";

/** Turns routes into a fetch handler that never throws. */
export function createHandler(routes: readonly Route[], logger: Logger): (request: Request) => Promise<Response> {
  const route = createRouter(routes);
  const log = logger.child({ component: "http" });
  return async (request) => {
    const started = performance.now();
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
    log.debug("request", {
      method: request.method,
      path: new URL(request.url).pathname,
      status: response.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
    return response;
  };
}
