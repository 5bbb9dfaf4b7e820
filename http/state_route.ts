/** GET /v1/users/{id} and /v1/products/{id}: live state, or the last checkpoint marked with `asOf`. */
import { NotFoundError } from "../engine/errors.ts";
import type { StateReader } from "../engine/state_reader.ts";
import type { RouteHandler } from "./router.ts";

/** Handler returning the state of the actor of `kind` named by the `id` path parameter. */
export function stateRoute(reader: StateReader, kind: "user" | "product"): RouteHandler {
  return async (_request, params) => {
    const found = await reader.read(kind, params.id);
    if (!found) throw new NotFoundError(`no ${kind} with id '${params.id}'`);
    const body = { ...found.state as Record<string, unknown>, source: found.source };
    return Response.json(found.asOf ? { ...body, asOf: found.asOf } : body);
  };
}
