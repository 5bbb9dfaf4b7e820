/**
 * Read-only query routes: recommendations, related products, realtime analytics, the windowed
 * funnel, top products and alerts. Query parameters are validated with zod; a bad one is a
 * ValidationError naming it (400), an unknown id a NotFoundError (404), a failing database a
 * DatabaseUnavailableError (503). Actor state comes through the StateReader (live, else the last
 * checkpoint, marked with `asOf`); rankings and alerts come from PostgreSQL (checkpointed data).
 */
import { z } from "zod";
import { GLOBAL_KEY, globalLogic, recentTotals } from "../actors/global.ts";
import { type WindowTotals, windowTotals } from "../actors/rollups.ts";
import type { Sql } from "../engine/database.ts";
import { DatabaseUnavailableError, NotFoundError, ValidationError } from "../engine/errors.ts";
import type { ReadState, StateReader } from "../engine/state_reader.ts";
import { latestRecommendations, listAlerts, type ProductRankField, topProducts } from "../sql/queries.ts";
import { JSON_CONTENT_TYPE } from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import { problemDoc } from "./problem.ts";
import type { Route, RouteHandler } from "./router.ts";

/** What the query routes need. */
export interface QueryDeps {
  readonly reader: StateReader;
  readonly sql: Sql;
  readonly now: () => number;
}

/** Funnel windows and their length in minutes. */
export const FUNNEL_WINDOWS = { "1m": 1, "5m": 5, "15m": 15, "1h": 60, "24h": 1440 } as const;
/** `by` of top-products and the persisted product field it ranks by. */
export const RANK_FIELDS: Readonly<Record<string, ProductRankField>> = {
  views: "views",
  purchases: "unitsSold",
  revenue: "revenue",
  trending: "trendingScore",
};
/** Products listed by GET /v1/analytics/realtime. */
export const REALTIME_TOP_PRODUCTS = 10;

const limit = (max: number, fallback: number) => z.coerce.number().int().min(1).max(max).default(fallback);

/** Query parameter schemas, one per route. */
export const querySchemas = {
  related: z.object({ limit: limit(100, 10) }),
  funnel: z.object({
    window: z.enum(Object.keys(FUNNEL_WINDOWS) as [keyof typeof FUNNEL_WINDOWS]).default("15m"),
  }),
  topProducts: z.object({
    by: z.enum(["views", "purchases", "revenue", "trending"]).default("views"),
    limit: limit(100, 10),
  }),
  alerts: z.object({
    type: z.string().min(1).max(64).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    limit: limit(500, 50),
  }),
} as const;

/** Validates the named query parameters of `request` (the first value of each); throws ValidationError. */
export function parseQuery<S extends z.ZodObject>(schema: S, request: Request): z.output<S> {
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

/** Runs a query, turning database failures into DatabaseUnavailableError (503). */
async function query<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new DatabaseUnavailableError(`cannot read ${what}`, { cause: error });
  }
}

/** `source` and, for checkpoints, `asOf` of a read state. */
function sourceOf(found: ReadState): { source: ReadState["source"]; asOf?: string } {
  return found.asOf ? { source: found.source, asOf: found.asOf } : { source: found.source };
}

/** Totals of `minutes` minutes: from the global state when there is one, else zeros ending now. */
function totalsOf(found: ReadState | null, minutes: number, now: number): WindowTotals {
  const totals = found ? recentTotals(globalLogic.restore(found.state), minutes) : null;
  return totals ?? windowTotals([], now - minutes * 60_000, now);
}

/** A window's figures as the analytics routes present them. */
function windowView(t: WindowTotals) {
  return {
    from: t.from,
    to: t.to,
    eventsByType: t.events,
    activeUsers: t.activeUsers,
    activeSessions: t.activeSessions,
    orders: t.orders,
    revenue: t.revenue,
    funnel: t.funnel,
  };
}

function recommendationsRoute({ reader, sql }: QueryDeps): RouteHandler {
  return async (_request, params) => {
    const stored = await query("recommendations", () => latestRecommendations(sql, params.id));
    if (stored) {
      const payload = stored.payload as { items?: unknown[]; basedOn?: unknown; recommendationId?: string };
      return Response.json({
        userId: params.id,
        items: payload.items ?? [],
        basedOn: payload.basedOn ?? null,
        recommendationId: payload.recommendationId ?? null,
        generatedAt: stored.generatedAt,
      });
    }
    if (!await reader.read("user", params.id)) throw new NotFoundError(`no user with id '${params.id}'`);
    return Response.json({ userId: params.id, items: [] });
  };
}

function relatedRoute({ reader }: QueryDeps): RouteHandler {
  return async (request, params) => {
    const { limit } = parseQuery(querySchemas.related, request);
    const found = await reader.read("product", params.id);
    if (!found) throw new NotFoundError(`no product with id '${params.id}'`);
    const related = (found.state as { related?: unknown[] }).related ?? [];
    return Response.json({ productId: params.id, items: related.slice(0, limit), ...sourceOf(found) });
  };
}

function realtimeRoute({ reader, sql, now }: QueryDeps): RouteHandler {
  return async () => {
    const found = await reader.read("global", GLOBAL_KEY);
    const at = now();
    const top = await query("top products", () => topProducts(sql, "views", REALTIME_TOP_PRODUCTS));
    return Response.json({
      last1: windowView(totalsOf(found, 1, at)),
      last5: windowView(totalsOf(found, 5, at)),
      last15: windowView(totalsOf(found, 15, at)),
      topProducts: top,
      ...(found ? sourceOf(found) : { source: "none" }),
    });
  };
}

function funnelRoute({ reader, now }: QueryDeps): RouteHandler {
  return async (request) => {
    const { window } = parseQuery(querySchemas.funnel, request);
    const minutes = FUNNEL_WINDOWS[window];
    const found = await reader.read("global", GLOBAL_KEY);
    const t = totalsOf(found, minutes, now());
    const n = (type: string) => t.events[type] ?? 0;
    return Response.json({
      window,
      minutes,
      from: t.from,
      to: t.to,
      steps: {
        productViewed: n("product_viewed"),
        addedToCart: n("product_added_to_cart"),
        checkoutStarted: n("checkout_started"),
        orderCompleted: t.orders,
      },
      cartsConverted: t.cartsConverted,
      cartsAbandoned: t.cartsAbandoned,
      checkoutsAbandoned: t.checkoutsAbandoned,
      conversion: t.funnel,
      ...(found ? sourceOf(found) : { source: "none" }),
    });
  };
}

function topProductsRoute({ sql }: QueryDeps): RouteHandler {
  return async (request) => {
    const { by, limit } = parseQuery(querySchemas.topProducts, request);
    const items = await query("top products", () => topProducts(sql, RANK_FIELDS[by], limit));
    return Response.json({ by, items });
  };
}

function alertsRoute({ sql }: QueryDeps): RouteHandler {
  return async (request) => {
    const { type, since, limit } = parseQuery(querySchemas.alerts, request);
    const items = await query(
      "alerts",
      () => listAlerts(sql, { type, since: since === undefined ? undefined : new Date(since), limit }),
    );
    return Response.json({ items });
  };
}

const json = (description: string) => ({
  description,
  content: { [JSON_CONTENT_TYPE]: { schema: z.looseObject({}) } },
});

function doc(operationId: string, summary: string, description: string, extra: Record<number, string>): OperationDoc {
  return {
    operationId,
    summary,
    description,
    tags: ["queries"],
    responses: {
      200: json(summary),
      ...Object.fromEntries(Object.entries(extra).map(([status, what]) => [status, problemDoc(Number(status), what)])),
      503: problemDoc(503, "The database is unavailable; retry later"),
    },
  };
}

/** The query routes, as rows for the route table. */
export function queryRoutes(deps: QueryDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/users/:id/recommendations",
      handler: recommendationsRoute(deps),
      doc: doc(
        "getUserRecommendations",
        "A user's latest recommendations",
        "`items` is empty for a known user without recommendations yet.",
        { 404: "No user with this id" },
      ),
    },
    {
      method: "GET",
      path: "/v1/products/:id/related",
      handler: relatedRoute(deps),
      doc: doc(
        "getRelatedProducts",
        "Products related to a product (co-viewed and co-bought)",
        "Query: `limit` 1..100 (default 10).",
        { 400: "Invalid `limit`", 404: "No product with this id" },
      ),
    },
    {
      method: "GET",
      path: "/v1/analytics/realtime",
      handler: realtimeRoute(deps),
      doc: doc(
        "getRealtimeAnalytics",
        "The last 1, 5 and 15 minutes, and the top products by views",
        "Zeros before any event.",
        {},
      ),
    },
    {
      method: "GET",
      path: "/v1/analytics/funnel",
      handler: funnelRoute(deps),
      doc: doc(
        "getFunnel",
        "The conversion funnel over a window",
        "Query: `window` one of 1m, 5m, 15m, 1h, 24h (default 15m).",
        { 400: "Invalid `window`" },
      ),
    },
    {
      method: "GET",
      path: "/v1/analytics/top-products",
      handler: topProductsRoute(deps),
      doc: doc(
        "getTopProducts",
        "Products ranked by views, purchases, revenue or trending score (as of their last checkpoint)",
        "Query: `by` one of views, purchases, revenue, trending (default views); `limit` 1..100 (default 10).",
        { 400: "Invalid `by` or `limit`" },
      ),
    },
    {
      method: "GET",
      path: "/v1/alerts",
      handler: alertsRoute(deps),
      doc: doc(
        "listAlerts",
        "Stored alerts, newest first",
        "Query: `type` (1..64 characters), `since` (RFC 3339 timestamp), `limit` 1..500 (default 50).",
        { 400: "Invalid `type`, `since` or `limit`" },
      ),
    },
  ];
}
