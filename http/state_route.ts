/**
 * GET /v1/users/{id} and /v1/products/{id}: live state, the owning instance's answer (forwarded once),
 * or the last checkpoint marked with `asOf`; every answer names the instance that gave it.
 */
import { z } from "zod";
import { NotFoundError } from "../engine/errors.ts";
import { FORWARDED_HEADER, INSTANCE_HEADER, type ReadOptions, type StateReader } from "../engine/state_reader.ts";
import { JSON_CONTENT_TYPE } from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import { problemDoc } from "./problem.ts";
import type { RouteHandler } from "./router.ts";

/** The kinds of actor whose state is queryable, with their documentation. */
const KINDS = {
  user: { title: "User", what: "session, funnel stage, cart, order history summary and recent alerts" },
  product: { title: "Product", what: "statistics, stock and related products" },
} as const;

/** Actor kinds served by this route. */
export type StateKind = keyof typeof KINDS;

/** Fields every state response carries besides the actor's own state. */
export const stateSourceSchema = z.looseObject({
  source: z.enum(["memory", "checkpoint"]).describe("`memory`: live state; `checkpoint`: the last checkpoint"),
  asOf: z.iso.datetime().optional().describe("Time of the checkpoint, when answered from one"),
  instance: z.string().optional().describe("The engine instance that answered (also the `x-engine-instance` header)"),
}).meta({ id: "ActorState", description: "The actor's state, with where it was read from" });

/** Read options for a key in a request: routed to the key's owner, unless another instance forwarded it here. */
export function routedRead(request: Request): ReadOptions {
  return { forwarded: request.headers.get(FORWARDED_HEADER) !== null };
}

/** Handler returning the state of the actor of `kind` named by the `id` path parameter. */
export function stateRoute(reader: StateReader, kind: StateKind): RouteHandler {
  return async (request, params) => {
    const found = await reader.read(kind, params.id, routedRead(request));
    if (!found) throw new NotFoundError(`no ${kind} with id '${params.id}'`);
    const body = {
      ...found.state as Record<string, unknown>,
      source: found.source,
      ...(found.asOf ? { asOf: found.asOf } : {}),
      ...(found.instance ? { instance: found.instance } : {}),
    };
    return Response.json(body, found.instance ? { headers: { [INSTANCE_HEADER]: found.instance } } : undefined);
  };
}

/** The route's OpenAPI operation. */
export function stateRouteDoc(kind: StateKind): OperationDoc {
  const { title, what } = KINDS[kind];
  return {
    operationId: `get${title}`,
    summary: `A ${kind}'s state: ${what}`,
    description: "Answered from live memory, or by the instance owning the key's partition, or else from the " +
      "last checkpoint and then marked with `asOf`. `instance` names the instance that answered.",
    tags: ["queries"],
    pathParams: { id: { description: `The ${kind} id (percent-encoded)`, schema: z.string().min(1) } },
    responses: {
      200: { description: `The ${kind}'s state`, content: { [JSON_CONTENT_TYPE]: { schema: stateSourceSchema } } },
      400: problemDoc(400, "The id is not valid percent-encoded UTF-8, or a query parameter was given (none is taken)"),
      404: problemDoc(404, `No ${kind} with this id`),
      503: problemDoc(503, "The database is unavailable; retry later"),
    },
  };
}
