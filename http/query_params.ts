/**
 * Query parameters of a route: one zod object both validates them (a 400 naming every bad one) and
 * documents them in the OpenAPI document, so the published parameters cannot drift from the accepted ones.
 */
import type { z } from "zod";
import { ValidationError } from "../engine/errors.ts";
import type { Route, RouteHandler } from "./router.ts";

/** A route's query parameters: one field per parameter; `.describe()` becomes its documentation. */
export type QuerySchema = z.ZodObject;

/** A handler that receives its validated query parameters. */
export type QueryHandler<S extends QuerySchema> = (
  request: Request,
  params: Record<string, string>,
  query: z.output<S>,
) => Response | Promise<Response>;

/** Validates the declared query parameters of `request` (the first value of each); throws ValidationError. */
export function parseQuery<S extends QuerySchema>(schema: S, request: Request): z.output<S> {
  const params = new URL(request.url).searchParams;
  const input: Record<string, string> = {};
  for (const name of Object.keys(schema.shape)) {
    const value = params.get(name);
    if (value !== null) input[name] = value;
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "query",
    message: issue.message,
  }));
  throw new ValidationError(
    `Cannot answer the query: invalid parameter(s) ${[...new Set(problems.map((p) => p.path))].join(", ")}`,
    problems,
  );
}

/** A route row whose handler only ever sees query parameters validated by the schema it documents. */
export function routeWithQuery<S extends QuerySchema>(
  row: Omit<Route, "handler" | "query"> & { readonly query: S; readonly handler: QueryHandler<S> },
): Route {
  const handler: RouteHandler = (request, params) => row.handler(request, params, parseQuery(row.query, request));
  return { ...row, handler };
}
