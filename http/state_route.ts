/**
 * GET /v1/users/{id} and /v1/products/{id}: the public view (http/state_answers.ts) of the live state,
 * the owning instance's (forwarded once), or the last checkpoint's marked with `asOf`; every answer
 * names the instance that gave it.
 */
import { z } from "zod";
import { MAX_ID_LENGTH, MAX_USER_ID_LENGTH } from "../actors/events.ts";
import { NotFoundError } from "../engine/errors.ts";
import { FORWARDED_HEADER, INSTANCE_HEADER, type ReadOptions, type StateReader } from "../engine/state_reader.ts";
import { JSON_CONTENT_TYPE } from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import { errorResponse, problemDoc } from "./problem.ts";
import { productAnswer, productView, userAnswer, userView } from "./state_answers.ts";
import type { RouteHandler } from "./router.ts";

/** The kinds of actor whose state is queryable, with their documentation. */
const KINDS = {
  user: {
    title: "User",
    what: "session, funnel stage, cart, order history summary and recent alerts",
    answer: userAnswer,
    view: userView,
  },
  product: {
    title: "Product",
    what: "statistics, stock and related products",
    answer: productAnswer,
    view: productView,
  },
} as const;

/** Actor kinds served by this route. */
export type StateKind = keyof typeof KINDS;

/** The length a key of each kind can have: its events' id limit (since the first version), measured as they measure it. */
const KEY_LENGTH: Readonly<Record<StateKind, z.ZodString>> = {
  user: z.string().max(MAX_USER_ID_LENGTH),
  product: z.string().max(MAX_ID_LENGTH),
};

/**
 * Whether `id` can name a `kind`'s actor. A longer one names none: unknown (404) without asking the database or the
 * owner, to whom it could not even be forwarded (fetch refuses a URL over 64 KiB, and the refusal was logged as the
 * owner's failure, the whole URL in the line).
 */
export function canBeKey(kind: StateKind, id: string): boolean {
  return KEY_LENGTH[kind].safeParse(id).success;
}

/** Read options for a key in a request: routed to the key's owner, unless another instance forwarded it here. */
export function routedRead(request: Request): ReadOptions {
  return { forwarded: request.headers.get(FORWARDED_HEADER) !== null };
}

/** Handler returning the state of the actor of `kind` named by the `id` path parameter. */
export function stateRoute(reader: StateReader, kind: StateKind): RouteHandler {
  const { view } = KINDS[kind];
  return async (request, params) => {
    const options = routedRead(request);
    const found = canBeKey(kind, params.id) ? await reader.read(kind, params.id, options) : null;
    if (!found) {
      const error = new NotFoundError(`no ${kind} with id '${params.id}'`);
      if (!options.forwarded || !reader.instance) throw error;
      // Named, so that an asker whose owner address led back to itself tells its own 404 from the owner's.
      const response = errorResponse(error);
      response.headers.set(INSTANCE_HEADER, reader.instance);
      return response;
    }
    const body = {
      // The instance that forwarded the query gets the stored form (related products rank its counters) and makes
      // the view itself, so that every answer has the view's shape, whichever instance read it and from where.
      ...(options.forwarded ? found.state as Record<string, unknown> : view(found.state)),
      source: found.source,
      ...(found.asOf ? { asOf: found.asOf } : {}),
      ...(found.instance ? { instance: found.instance } : {}),
    };
    return Response.json(body, found.instance ? { headers: { [INSTANCE_HEADER]: found.instance } } : undefined);
  };
}

/** The `id` path parameter of a route about a `kind`, as the router takes it (decoded, non-empty), for OpenAPI. */
export function idPathParam(kind: string): NonNullable<OperationDoc["pathParams"]> {
  return { id: { description: `The ${kind} id (percent-encoded)`, schema: z.string().min(1) } };
}

/** Why a route with an `id` in its path answers 400 whatever its parameters: the router cannot decode the id. */
export const MALFORMED_ID = "The id is not valid percent-encoded UTF-8 (or holds U+0000)";

/** The route's OpenAPI operation. */
export function stateRouteDoc(kind: StateKind): OperationDoc {
  const { title, what, answer } = KINDS[kind];
  return {
    operationId: `get${title}`,
    summary: `A ${kind}'s state: ${what}`,
    description: "Answered from live memory, or by the instance owning the key's partition, or else from the " +
      "last checkpoint and then marked with `asOf`. `instance` names the instance that answered.",
    tags: ["queries"],
    pathParams: idPathParam(kind),
    responses: {
      200: { description: `The ${kind}'s state`, content: { [JSON_CONTENT_TYPE]: { schema: answer } } },
      400: problemDoc(400, `${MALFORMED_ID}, or a query parameter was given (none is taken)`),
      404: problemDoc(404, `No ${kind} with this id`),
      503: problemDoc(503, "The database is unavailable, or the engine is still starting; retry later"),
    },
  };
}
