/** Routes as a data table of URLPatterns; 404 for unknown paths, 405 with Allow for wrong methods. */
import { ValidationError } from "../engine/errors.ts";
import type { OperationDoc } from "./openapi.ts";
import { problemResponse } from "./problem.ts";
import type { QuerySchema } from "./query_params.ts";

/** A request with its path parameters. */
export type RouteHandler = (request: Request, params: Record<string, string>) => Response | Promise<Response>;

/** One row of the route table. */
export interface Route {
  readonly method: "GET" | "POST" | "DELETE";
  readonly path: string;
  readonly handler: RouteHandler;
  /** Query parameters the handler validates (see routeWithQuery); documented from the same schema. */
  readonly query?: QuerySchema;
  /** How the route appears in the OpenAPI document; routes without it are left out. */
  readonly doc?: OperationDoc;
}

/** Compiles a route table into a request handler. */
export function createRouter(routes: readonly Route[]): (request: Request) => Promise<Response> {
  const compiled = routes.map((route) => ({ ...route, pattern: new URLPattern({ pathname: route.path }) }));
  return async (request) => {
    const allowed: string[] = [];
    for (const route of compiled) {
      const match = route.pattern.exec(request.url);
      if (!match) continue;
      if (route.method !== request.method && !(route.method === "GET" && request.method === "HEAD")) {
        // A GET route answers HEAD too (RFC 9110), so Allow names it: clients read Allow as all a path takes.
        allowed.push(...(route.method === "GET" ? ["GET", "HEAD"] : [route.method]));
        continue;
      }
      return await route.handler(request, decodeParams(match.pathname.groups));
    }
    if (allowed.length > 0) {
      return problemResponse(
        { title: "Method not allowed", status: 405, detail: `${request.method} is not allowed here` },
        { allow: [...new Set(allowed)].join(", ") },
      );
    }
    return problemResponse({
      title: "Not found",
      status: 404,
      detail: `no route for ${new URL(request.url).pathname}`,
    });
  };
}

/**
 * Percent-decodes path parameters; a malformed escape is the client's error (400), not ours, and so
 * is U+0000, which no key can hold (PostgreSQL cannot store it) and the database would reject.
 */
function decodeParams(groups: Record<string, string | undefined>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(groups)) {
    if (value === undefined) continue;
    try {
      params[name] = decodeURIComponent(value);
    } catch {
      throw new ValidationError(`path parameter '${name}' is not valid percent-encoded UTF-8`, [
        { path: name, message: "malformed percent-encoding" },
      ]);
    }
    if (params[name].includes("\u0000")) {
      throw new ValidationError(`path parameter '${name}' contains U+0000 (NUL)`, [
        { path: name, message: "must not contain the NUL character (U+0000)" },
      ]);
    }
  }
  return params;
}
