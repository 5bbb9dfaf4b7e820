/**
 * Read-only query routes: recommendations, related products, realtime analytics, the windowed
 * funnel, top products and alerts. Query parameters are validated (and documented) by one zod
 * schema per route (routeWithQuery); a bad, repeated or undeclared one is a ValidationError naming it
 * (400; query_params.ts), an unknown id a NotFoundError (404), a failing database a
 * DatabaseUnavailableError (503). Actor state comes through the StateReader (live, else the last
 * checkpoint, marked with `asOf`); analytics windows longer than the global actor's memory are
 * completed from PostgreSQL (analytics_window.ts); rankings and alerts come from PostgreSQL
 * (checkpointed data): windowed rankings from the per-minute product counts (`product_minutes`),
 * over windows ending where the analytics windows end (ranking_window.ts). An analytics query whose
 * answer depends on the global actor's memory is routed to the instance owning its partition
 * (QueryDeps.router), so that every instance gives the owner's live answer; a query answered from
 * PostgreSQL alone is answered where it arrives.
 */
import { z } from "zod";
import { ALERT_TYPES } from "../actors/alerts.ts";
import { EARLIEST_TIME_MS, LATEST_TIME_MS, timestamp } from "../actors/events.ts";
import { GLOBAL_KEY } from "../actors/global.ts";
import { coCountsFromJSON, type PersistedCoCounts, rankRelated } from "../actors/recommendations.ts";
import { DEFAULT_DOMAIN_SETTINGS, type DomainSettings, minutesMs } from "../actors/settings.ts";
import type { WindowTotals } from "../actors/rollups.ts";
import type { Sql } from "../engine/database.ts";
import { DEFAULT_ALERT_RETENTION_DAYS } from "../engine/config.ts";
import { DatabaseUnavailableError, NotFoundError, ValidationError } from "../engine/errors.ts";
import { answeredWithin, sharedRuns } from "../engine/bounded_query.ts";
import {
  FORWARD_TIMEOUT_MS,
  INSTANCE_HEADER,
  QUERY_DATABASE_TIMEOUT_MS,
  type QueryRouter,
  type ReadState,
  type StateReader,
} from "../engine/state_reader.ts";
import { sumAnalyticsMinutes } from "../sql/analytics_minutes.ts";
import {
  rankCategoriesInWindow,
  rankProductsInWindow,
  type TrendMeasure,
  type WindowMeasure,
} from "../sql/product_minutes.ts";
import {
  latestRecommendations,
  listAlerts,
  listStoredAlerts,
  type ProductRankField,
  topProducts,
} from "../sql/queries.ts";
import {
  alertCursor,
  type AlertPosition,
  encodeAlertCursor,
  isStoredPosition,
  type StoredPosition,
} from "./alerts_cursor.ts";
import { type AnalyticsWindow, type HistoryReader, readAnalyticsWindow, storageFields } from "./analytics_window.ts";
import { JSON_CONTENT_TYPE } from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import { problemDoc } from "./problem.ts";
import {
  alertsAnswer,
  analyticsAnswer as analyticsAnswerSchema,
  recommendationsAnswer,
  relatedAnswer,
  topProductsAnswer,
} from "./query_responses.ts";
import { type RankingSpan, rankingSpan } from "./ranking_window.ts";
import { NO_QUERY, type QueryHandler, routeWithQuery } from "./query_params.ts";
import type { Route } from "./router.ts";
import { canBeKey, idPathParam, MALFORMED_ID, routedRead } from "./state_route.ts";

/** What the query routes need. */
export interface QueryDeps {
  readonly reader: StateReader;
  readonly sql: Sql;
  readonly now: () => number;
  /** Stored analytics minutes; defaults to `analytics_minutes` through `sql` (unit tests give their own). */
  readonly history?: HistoryReader;
  /** The trending settings (TRENDING_*), to compare and compute scores at one time; defaults to the defaults. */
  readonly trending?: TrendSettings;
  /** RECS_CO_BOUGHT_WEIGHT, to rank a product's related candidates as its actor does; defaults to the default. */
  readonly coBoughtWeight?: number;
  /** ALERT_RETENTION_DAYS (0: kept): alerts older are not listed, pruned yet or not; defaults to the default. */
  readonly alertRetentionDays?: number;
  /** ANALYTICS_HISTORY_DAYS: no window reaches further back than the history kept; defaults to the default. */
  readonly historyDays?: number;
  /**
   * Routes the analytics queries that read the global actor's memory to the owner of its partition (once; answered
   * here from its checkpoint, marked with `asOf`, when the owner cannot be asked); without it, answered here.
   */
  readonly router?: QueryRouter;
}

/** The trending half-life (ms) and weights, as the product actors use them. */
export interface TrendSettings {
  readonly halfLifeMs: number;
  readonly weights: TrendMeasure["weights"];
}

/** The trending settings of `s`. */
export function trendSettings(s: DomainSettings): TrendSettings {
  return {
    halfLifeMs: minutesMs(s.TRENDING_HALF_LIFE_MINUTES),
    weights: { view: s.TRENDING_VIEW_WEIGHT, cart: s.TRENDING_CART_WEIGHT, purchase: s.TRENDING_PURCHASE_WEIGHT },
  };
}

/** Funnel windows and their length in minutes; beyond the global actor's memory they come from PostgreSQL. */
export const FUNNEL_WINDOWS = {
  "1m": 1,
  "5m": 5,
  "15m": 15,
  "1h": 60,
  "24h": 1440,
  "7d": 7 * 1440,
  "30d": 30 * 1440,
} as const;
/** `by` of top-products and the persisted product field it ranks by (window `all`, and `trending`). */
export const RANK_FIELDS: Readonly<Record<string, ProductRankField>> = {
  views: "views",
  purchases: "unitsSold",
  revenue: "revenue",
  trending: "trendingScore",
};
/** `by` of windowed rankings and the `product_minutes` sum it ranks by (purchases: units sold). */
export const WINDOW_MEASURES = { views: "views", purchases: "units", revenue: "revenue" } as const satisfies Record<
  string,
  WindowMeasure
>;
/** Ranking windows: the funnel's, and `all` (the products' checkpointed all-time totals). */
export const RANKING_WINDOWS = [...Object.keys(FUNNEL_WINDOWS) as (keyof typeof FUNNEL_WINDOWS)[], "all"] as const;
/** The default ranking window. */
export const DEFAULT_RANKING_WINDOW = "24h";
/** Products listed by GET /v1/analytics/realtime, and the window they are ranked over. */
export const REALTIME_TOP_PRODUCTS = 10;
export const REALTIME_TOP_WINDOW = "15m";

/**
 * `limit`: an integer in decimal digits (query_params.ts refuses `0x10`, `1e1` before coercion). The range is checked
 * first, and alone when it fails: a number past 2^53 is not also refused as "expected int to be <=9007199254740991".
 */
const limit = (max: number, fallback: number) =>
  z.coerce.number().min(1, { abort: true }).max(max, { abort: true }).int().default(fallback)
    .describe(`How many items to return, 1..${max}`);

/** Query parameter schemas, one per route: they validate the parameters and document them. */
export const querySchemas = {
  recommendations: NO_QUERY,
  related: z.object({ limit: limit(100, 10) }),
  realtime: NO_QUERY,
  funnel: z.object({
    window: z.enum(Object.keys(FUNNEL_WINDOWS) as [keyof typeof FUNNEL_WINDOWS]).default("15m")
      .describe(
        "Length of the window, ending at the minute of the latest event; the part older than the global " +
          "actor's memory (ANALYTICS_RETENTION_MINUTES) is read from PostgreSQL (`fromStorage`); at most " +
          "ANALYTICS_HISTORY_DAYS back (`historyDays` and `from` then say where it was cut)",
      ),
  }),
  topProducts: z.object({
    by: z.enum(["views", "purchases", "revenue", "trending"]).default("views")
      .describe(
        "What products are ranked by (purchases: units sold); `trending`: each product's trending score decayed " +
          "to the window's end (`all`: to the minute of the latest event), among the products with a fact in the window",
      ),
    window: z.enum(RANKING_WINDOWS).default(DEFAULT_RANKING_WINDOW)
      .describe(
        "Length of the window, ending at the minute of the latest event (as the funnel's); at most " +
          "ANALYTICS_HISTORY_DAYS back (`historyDays` and `from` then say where it was cut). `all`: the products' " +
          "all-time totals as of their last checkpoint",
      ),
    limit: limit(100, 10),
  }),
  topCategories: z.object({
    by: z.enum(["views", "purchases", "revenue", "trending"]).default("views")
      .describe(
        "What categories are ranked by (purchases: units sold); `trending`: the window's views, cart adds and " +
          "orders weighted and decayed as the products' trending score, to the window's end",
      ),
    window: z.enum(Object.keys(FUNNEL_WINDOWS) as [keyof typeof FUNNEL_WINDOWS]).default(DEFAULT_RANKING_WINDOW)
      .describe(
        "Length of the window, ending at the minute of the latest event; at most ANALYTICS_HISTORY_DAYS back " +
          "(`historyDays` and `from` then say where it was cut)",
      ),
    limit: limit(100, 10),
  }),
  alerts: z.object({
    type: z.enum(ALERT_TYPES).optional().describe("Only alerts of this type, e.g. `cart_abandoned`"),
    since: timestamp.optional()
      .describe(
        "Only alerts that occurred at or after this RFC 3339 timestamp (with an offset, between " +
          `${new Date(EARLIEST_TIME_MS).toISOString()} and ${new Date(LATEST_TIME_MS).toISOString()})`,
      ),
    limit: limit(500, 50),
    cursor: alertCursor.optional()
      .describe(
        "Where the previous page ended: its `next`, as given; the page lists the alerts after it in the same order " +
          "(give the same `order`, `type` and `since`)",
      ),
    order: z.enum(["occurred", "stored"]).default("occurred")
      .describe(
        "`occurred`: newest first by `occurredAt`; `stored`: oldest first in the order the alerts were stored, " +
          "every page with `next` to read those stored since (a feed: `deno task tail alerts` reads it)",
      ),
    from: z.enum(["beginning", "end"]).optional()
      .describe(
        "With `order=stored` and no `cursor`: `beginning` (the default) lists from the first alert stored; `end` " +
          "lists none and gives as `next` where the alerts stored from now on begin",
      ),
  }),
} as const;

/**
 * Runs the query `run` reading `what` with the parameters `args`, sharing one of the same still unanswered, turning
 * database failures, and no answer within QUERY_DATABASE_TIMEOUT_MS, into DatabaseUnavailableError (503): on a frozen
 * PostgreSQL each request used to wait until it answered, and each one given up on left one more query on the pool.
 */
type Query = <T>(what: string, args: readonly unknown[], run: () => Promise<T>) => Promise<T>;

/** The routes' Query, its shared runs their own. */
function boundedQuery(): Query {
  const share = sharedRuns();
  return async (what, args, run) => {
    try {
      return await answeredWithin(
        share(JSON.stringify([what, ...args]), run),
        QUERY_DATABASE_TIMEOUT_MS,
        `cannot read ${what}`,
      );
    } catch (error) {
      if (error instanceof DatabaseUnavailableError) throw error;
      throw new DatabaseUnavailableError(`cannot read ${what}`, { cause: error });
    }
  };
}

/** What each route is built from: the deps and the routes' one Query. */
interface RouteDeps extends QueryDeps {
  readonly query: Query;
}

/** `source` and, for checkpoints, `asOf` of a read state. */
function sourceOf(found: ReadState): { source: ReadState["source"]; asOf?: string } {
  return found.asOf ? { source: found.source, asOf: found.asOf } : { source: found.source };
}

/**
 * The global actor's owner's answer to `request`, when another instance owns the actor's partition and answered;
 * undefined when this instance answers (from memory if it owns the partition, else from the checkpoint).
 */
function ownersAnswer(deps: QueryDeps, request: Request): Promise<Response | undefined> {
  return deps.router?.route("global", GLOBAL_KEY, request) ?? Promise.resolve(undefined);
}

/**
 * An analytics answer computed from the global state `found`, saying where that state was read (`source`, and
 * `asOf` for a checkpoint; `none` before any) and which instance answered (`instance`, and the header).
 */
function analyticsAnswer(found: ReadState | null, body: Record<string, unknown>): Response {
  const read = found
    ? { ...sourceOf(found), ...(found.instance ? { instance: found.instance } : {}) }
    : { source: "none" as const };
  return Response.json(
    { ...body, ...read },
    found?.instance ? { headers: { [INSTANCE_HEADER]: found.instance } } : undefined,
  );
}

/** The stored-minutes reader of `deps` (its own, else `analytics_minutes` through its `sql`), through its Query. */
function historyOf(deps: RouteDeps): HistoryReader {
  const read = deps.history ?? ((from, to) => sumAnalyticsMinutes(deps.sql, from, to));
  return (from, to) => deps.query("the analytics history", [from, to], () => read(from, to));
}

/**
 * The window a `window` of `minutes` covers: at most the ANALYTICS_HISTORY_DAYS kept, counted back from its end, and
 * `historyDays` to say so when it was cut. Before that, PostgreSQL holds only what is left: the minutes of a product
 * partition whose checkpoints stopped pruning (it went quiet), or the global actor's memory when it is longer.
 */
function covered(deps: QueryDeps, minutes: number): { minutes: number; cut: { historyDays?: number } } {
  const days = deps.historyDays ?? DEFAULT_DOMAIN_SETTINGS.ANALYTICS_HISTORY_DAYS;
  const kept = days * 1440;
  return minutes > kept ? { minutes: kept, cut: { historyDays: days } } : { minutes, cut: {} };
}

/** A window's figures as the analytics routes present them. */
function windowView(window: AnalyticsWindow) {
  return { ...figures(window.totals), ...storageFields(window) };
}

function figures(t: WindowTotals) {
  return {
    from: t.from,
    to: t.to,
    eventsByType: t.events,
    activeUsers: t.activeUsers,
    activeSessions: t.activeSessions,
    orders: t.orders,
    revenue: t.revenue,
    revenueByCategory: t.revenueByCategory,
    funnel: t.funnel,
    funnelSessions: t.sessionsReached,
    sessionConversion: t.sessionConversion,
  };
}

function recommendationsRoute({ reader, sql, query }: RouteDeps): QueryHandler<typeof querySchemas.recommendations> {
  return async (request, params) => {
    if (!canBeKey("user", params.id)) throw new NotFoundError(`no user with id '${params.id}'`);
    const stored = await query("recommendations", [params.id], () => latestRecommendations(sql, params.id));
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
    if (!await reader.read("user", params.id, routedRead(request))) {
      throw new NotFoundError(`no user with id '${params.id}'`);
    }
    return Response.json({ userId: params.id, items: [] });
  };
}

function relatedRoute({ reader, coBoughtWeight }: QueryDeps): QueryHandler<typeof querySchemas.related> {
  const weight = coBoughtWeight ?? DEFAULT_DOMAIN_SETTINGS.RECS_CO_BOUGHT_WEIGHT;
  return async (request, params, { limit }) => {
    const found = canBeKey("product", params.id) ? await reader.read("product", params.id, routedRead(request)) : null;
    if (!found) throw new NotFoundError(`no product with id '${params.id}'`);
    const state = found.state as { related?: unknown[]; coViewed?: PersistedCoCounts; coBought?: PersistedCoCounts };
    // Ranked from all the counted candidates: the state's `related` is only the short list of GET /v1/products/{id}.
    const items = state.coViewed || state.coBought
      ? rankRelated(coCountsFromJSON(state.coViewed), coCountsFromJSON(state.coBought), weight, limit)
      : (state.related ?? []).slice(0, limit);
    return Response.json({ productId: params.id, items, ...sourceOf(found) });
  };
}

// Routed: every figure is the global actor's memory (its windows and revenue by category), and the top
// products' window ends at its latest event.
function realtimeRoute(deps: RouteDeps): QueryHandler<typeof querySchemas.realtime> {
  const { reader, sql, now, query } = deps;
  const { halfLifeMs } = deps.trending ?? trendSettings(DEFAULT_DOMAIN_SETTINGS);
  return async (request) => {
    const routed = await ownersAnswer(deps, request);
    if (routed) return routed;
    const found = await reader.read("global", GLOBAL_KEY, routedRead(request));
    const at = now();
    const window = (minutes: number) => readAnalyticsWindow(found, minutes, historyOf(deps), at);
    const [last1, last5, last15] = await Promise.all([window(1), window(5), window(15)]);
    const span = rankingSpan(found, FUNNEL_WINDOWS[REALTIME_TOP_WINDOW], at);
    const trending = { at: span.to, halfLifeMs };
    const top = await query(
      "top products",
      [spanKey(span)],
      () => rankProductsInWindow(sql, "views", span.from, span.to, REALTIME_TOP_PRODUCTS, trending),
    );
    return analyticsAnswer(found, {
      last1: windowView(last1),
      last5: windowView(last5),
      last15: windowView(last15),
      topProducts: top,
      topProductsWindow: { window: REALTIME_TOP_WINDOW, by: "views", ...spanView(span) },
      // The latest windows of CATEGORY_WINDOW_MINUTES, as the global actor's state keeps them.
      revenueByCategory: (found?.state as { revenueByCategory?: unknown[] } | undefined)?.revenueByCategory ?? [],
    });
  };
}

// Routed, whatever the window: a window reaching before the memory (`fromStorage`) reads only that part from
// PostgreSQL; the rest of it, and its end (the latest event's minute), are the global actor's memory.
function funnelRoute(deps: RouteDeps): QueryHandler<typeof querySchemas.funnel> {
  return async (request, _params, { window }) => {
    const routed = await ownersAnswer(deps, request);
    if (routed) return routed;
    const minutes = FUNNEL_WINDOWS[window];
    const { minutes: span, cut } = covered(deps, minutes);
    const found = await deps.reader.read("global", GLOBAL_KEY, routedRead(request));
    const read = await readAnalyticsWindow(found, span, historyOf(deps), deps.now());
    const t = read.totals;
    const n = (type: string) => t.events[type] ?? 0;
    return analyticsAnswer(found, {
      window,
      minutes,
      from: t.from,
      to: t.to,
      ...cut,
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
      funnelSessions: t.sessionsReached,
      sessionConversion: t.sessionConversion,
      ...storageFields(read),
    });
  };
}

/**
 * A ranking window as part of a shared query's key: before any event its end is the wall clock, which identical
 * requests a moment apart would each read differently (one more query each on a frozen database); they share the first.
 */
function spanKey(span: RankingSpan): unknown {
  return span.reference === "wallClock" ? "wallClock" : [span.from, span.to];
}

/** The response fields of a ranking window. */
function spanView(span: RankingSpan) {
  return { from: new Date(span.from).toISOString(), to: new Date(span.to).toISOString(), reference: span.reference };
}

// Routed when the ranking reads the global state: a window ends at its latest event, and trending scores are
// compared at that time. `window=all` by views, purchases or revenue ranks the products' checkpointed totals in
// PostgreSQL alone, the same on every instance: answered where it arrives.
function topProductsRoute(deps: RouteDeps): QueryHandler<typeof querySchemas.topProducts> {
  const { sql, reader, now, query } = deps;
  const { halfLifeMs } = deps.trending ?? trendSettings(DEFAULT_DOMAIN_SETTINGS);
  return async (request, _params, { by, window, limit }) => {
    const readsGlobal = by === "trending" || window !== "all";
    const routed = readsGlobal ? await ownersAnswer(deps, request) : undefined;
    if (routed) return routed;
    const found = readsGlobal ? await reader.read("global", GLOBAL_KEY, routedRead(request)) : null;
    // Trending scores are compared at the end of the window (for `all`, of the minute of the latest event).
    const { minutes: spanned, cut } = covered(deps, window === "all" ? 1 : FUNNEL_WINDOWS[window]);
    const span = rankingSpan(found, spanned, now());
    const trending = { at: span.to, halfLifeMs };
    if (window === "all") {
      const items = await query(
        "top products",
        [by, window, limit, spanKey(span)],
        () => topProducts(sql, RANK_FIELDS[by], limit, undefined, trending),
      );
      return by === "trending"
        ? analyticsAnswer(found, { by, window, trendingAt: spanView(span).to, items })
        : Response.json({ by, window, items });
    }
    const minutes = FUNNEL_WINDOWS[window];
    const items = await query(
      "top products",
      [by, window, limit, spanKey(span)],
      () =>
        by === "trending"
          ? topProducts(sql, RANK_FIELDS[by], limit, span, trending)
          : rankProductsInWindow(sql, WINDOW_MEASURES[by], span.from, span.to, limit, trending),
    );
    return analyticsAnswer(found, { by, window, minutes, ...spanView(span), ...cut, items });
  };
}

// Routed: the window ends at the global actor's latest event.
function topCategoriesRoute(deps: RouteDeps): QueryHandler<typeof querySchemas.topCategories> {
  const { sql, reader, now, query } = deps;
  const trend = deps.trending ?? trendSettings(DEFAULT_DOMAIN_SETTINGS);
  return async (request, _params, { by, window, limit }) => {
    const routed = await ownersAnswer(deps, request);
    if (routed) return routed;
    const minutes = FUNNEL_WINDOWS[window];
    const { minutes: spanned, cut } = covered(deps, minutes);
    const found = await reader.read("global", GLOBAL_KEY, routedRead(request));
    const span = rankingSpan(found, spanned, now());
    const measure = by === "trending" ? { ...trend, at: span.to } : WINDOW_MEASURES[by];
    const items = await query(
      "top categories",
      [by, window, limit, spanKey(span)],
      () => rankCategoriesInWindow(sql, measure, span.from, span.to, limit),
    );
    return analyticsAnswer(found, { by, window, minutes, ...spanView(span), ...cut, items });
  };
}

/** Digits of an RFC 3339 time past the millisecond, which Date.parse drops. */
const SUB_MILLISECOND = /\.\d{3}\d*[1-9]/;

/**
 * The first whole millisecond at or after the RFC 3339 time `text`: alerts are stored to the millisecond, so one at
 * 10:00:00.000 occurred before `since=10:00:00.0005Z`, which Date.parse alone would have made 10:00:00.000.
 */
export function millisecondAtOrAfter(text: string): number {
  const ms = Date.parse(text);
  return SUB_MILLISECOND.test(text) ? ms + 1 : ms;
}

/** A 400 naming `path`: parameters that are each valid but do not go together. */
function mismatch(path: string, message: string): ValidationError {
  return new ValidationError(`Cannot answer the query: invalid parameter(s) ${path}`, [{ path, message }]);
}

/** GET /v1/alerts?order=stored: oldest stored first; `next` always, where the alerts stored later begin. */
async function storedAlerts(
  { sql, query }: RouteDeps,
  { type, from, limit, cursor, start, retentionMs }: {
    type?: string;
    from?: number;
    limit: number;
    cursor?: StoredPosition;
    start?: "beginning" | "end";
    retentionMs: number;
  },
): Promise<Response> {
  // No alert occurs after the last storable instant: list none, but still say where the feed stands.
  const beyond = from !== undefined && from > LATEST_TIME_MS;
  const since = from === undefined || beyond ? undefined : new Date(from);
  const listed = start === "end" || beyond ? 0 : limit;
  const page = await query(
    "stored alerts",
    [type, since, cursor, listed, retentionMs],
    () => listStoredAlerts(sql, { type, since, after: cursor, limit: listed, retentionMs }),
  );
  const items = page.items.map(({ storedXid: _, ...alert }) => alert);
  const last = page.items.length === limit ? page.items[page.items.length - 1] : undefined;
  // A short page listed every alert stored before the horizon: the next one starts there (never before the cursor).
  const next: StoredPosition = last
    ? { xid: last.storedXid, alertId: last.alertId }
    : cursor && BigInt(cursor.xid) >= BigInt(page.horizon)
    ? cursor
    : { xid: page.horizon, alertId: "" };
  return Response.json({ items, next: encodeAlertCursor(next) });
}

function alertsRoute(deps: RouteDeps): QueryHandler<typeof querySchemas.alerts> {
  const { sql, query } = deps;
  const retentionMs = (deps.alertRetentionDays ?? DEFAULT_ALERT_RETENTION_DAYS) * 86_400_000;
  return async (_request, _params, { type, since, limit, cursor, order, from: start }) => {
    const from = since === undefined ? undefined : millisecondAtOrAfter(since);
    if (cursor !== undefined && isStoredPosition(cursor) !== (order === "stored")) {
      throw mismatch("cursor", `is a cursor of order=${isStoredPosition(cursor) ? "stored" : "occurred"}`);
    }
    if (start !== undefined && order !== "stored") throw mismatch("from", "is only for order=stored");
    if (start !== undefined && cursor !== undefined) throw mismatch("from", "give either `from` or `cursor`");
    if (order === "stored") {
      const storedAt = cursor as StoredPosition | undefined;
      return storedAlerts(deps, { type, from, limit, cursor: storedAt, start, retentionMs });
    }
    // No alert occurs after the last storable instant (nor can PostgreSQL be asked about year 10000).
    if (from !== undefined && from > LATEST_TIME_MS) return Response.json({ items: [] });
    const position = cursor as AlertPosition | undefined;
    const after = position === undefined ? undefined : { occurredAt: new Date(position.at), alertId: position.alertId };
    const filter = { type, since: from === undefined ? undefined : new Date(from), after, limit, retentionMs };
    const items = await query("alerts", [filter], () => listAlerts(sql, filter));
    // A full page may have more after it; a short one is the last (a page after a full last one is empty).
    const last = items.length === limit ? items[items.length - 1] : undefined;
    const next = last && encodeAlertCursor({ at: Date.parse(last.occurredAt), alertId: last.alertId });
    return Response.json(next ? { items, next } : { items });
  };
}

const json = (description: string, schema: z.ZodType = z.looseObject({})) => ({
  description,
  content: { [JSON_CONTENT_TYPE]: { schema } },
});

function doc(
  operationId: string,
  summary: string,
  description: string,
  extra: Record<number, string>,
  answer?: z.ZodType,
  pathParams?: OperationDoc["pathParams"],
): OperationDoc {
  return {
    operationId,
    summary,
    description,
    tags: ["queries"],
    ...(pathParams ? { pathParams } : {}),
    responses: {
      200: json(summary, answer),
      ...Object.fromEntries(Object.entries(extra).map(([status, what]) => [status, problemDoc(Number(status), what)])),
      503: problemDoc(503, "The database is unavailable, or the engine is still starting; retry later"),
    },
  };
}

/** How every instance answers an analytics query that reads the global actor's state. */
const ROUTED = "Any instance answers with the live figures of the instance owning the `analytics` partition " +
  `(the query is forwarded to it once); if that owner cannot be reached within ${FORWARD_TIMEOUT_MS} ms, from the ` +
  "global actor's last checkpoint (`source: checkpoint`, `asOf`). `instance` names the instance that answered.";

/** The query routes, as rows for the route table. */
export function queryRoutes(queryDeps: QueryDeps): Route[] {
  const deps: RouteDeps = { ...queryDeps, query: boundedQuery() };
  return [
    routeWithQuery({
      method: "GET",
      path: "/v1/users/:id/recommendations",
      query: querySchemas.recommendations,
      handler: recommendationsRoute(deps),
      doc: doc(
        "getUserRecommendations",
        "A user's latest recommendations",
        "`items` is empty for a known user without recommendations yet.",
        { 400: `${MALFORMED_ID}, or a query parameter was given (this route takes none)`, 404: "No user with this id" },
        recommendationsAnswer,
        idPathParam("user"),
      ),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/products/:id/related",
      query: querySchemas.related,
      handler: relatedRoute(deps),
      doc: doc(
        "getRelatedProducts",
        "Products related to a product (co-viewed and co-bought)",
        "Ranked by co-occurrence score (co-views + RECS_CO_BOUGHT_WEIGHT × co-buys), best first, from every candidate the product counts (RELATED_CANDIDATES co-viewed and as many co-bought).",
        {
          400: `${MALFORMED_ID}, or an invalid \`limit\`, or a repeated or unknown parameter`,
          404: "No product with this id",
        },
        relatedAnswer,
        idPathParam("product"),
      ),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/analytics/realtime",
      query: querySchemas.realtime,
      handler: realtimeRoute(deps),
      doc: doc(
        "getRealtimeAnalytics",
        "The last 1, 5 and 15 minutes, and the top products by views over the last 15 minutes",
        "Zeros before any event. Each window says whether part of it was read from PostgreSQL (`fromStorage`); " +
          "`topProductsWindow` says which window the top products were ranked over. " + ROUTED,
        { 400: "A query parameter was given (this route takes none)" },
        analyticsAnswerSchema,
      ),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/analytics/funnel",
      query: querySchemas.funnel,
      handler: funnelRoute(deps),
      doc: doc(
        "getFunnel",
        "The conversion funnel over a window",
        "Step counts (events), cart outcomes and step conversions (ratios of event counts) over the window; " +
          "`funnelSessions`: sessions that reached each stage (visited, viewed_product, added_to_cart, " +
          "started_checkout, purchased) within the window, and `sessionConversion` their step ratios. " +
          "`fromStorage` is true when part of " +
          "the window lies before the global actor's memory and was read from PostgreSQL; `storage` then says " +
          "which range and how many stored minutes it held. " + ROUTED,
        { 400: "Invalid `window`, or a repeated or unknown parameter" },
        analyticsAnswerSchema,
      ),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/analytics/top-products",
      query: querySchemas.topProducts,
      handler: topProductsRoute(deps),
      doc: doc(
        "getTopProducts",
        "Products ranked by views, purchases, revenue or trending score over a window",
        "Sums over the window's minutes (`from`, `to`: the window, ending at the minute of the latest event; " +
          "`reference`: `latestEvent`, or `wallClock` before any event). `uniqueViewers` and `stock` are the " +
          "product's current figures as of its last checkpoint (`asOf`), not windowed; `trendingScore` is its " +
          "score at the window's end (`window=all` by views, purchases or revenue: as of its `trendingAt`). " +
          "`window=all` ranks all-time totals as of the last checkpoints. Ties are broken by product id. " +
          ROUTED,
        { 400: "Invalid `by`, `window` or `limit`, or a repeated or unknown parameter" },
        topProductsAnswer,
      ),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/analytics/top-categories",
      query: querySchemas.topCategories,
      handler: topCategoriesRoute(deps),
      doc: doc(
        "getTopCategories",
        "Categories ranked by views, purchases, revenue or trending score over a window",
        "Sums over the window's minutes of each category's views, cart adds and order lines, each counted under the " +
          "category it came with (else its product's latest), as the realtime revenue by category counts order " +
          "lines; facts of products without a category are left out. Ties are broken by category name. " + ROUTED,
        { 400: "Invalid `by`, `window` or `limit`, or a repeated or unknown parameter" },
        analyticsAnswerSchema,
      ),
    }),
    routeWithQuery({
      method: "GET",
      path: "/v1/alerts",
      query: querySchemas.alerts,
      handler: alertsRoute(deps),
      doc: doc(
        "listAlerts",
        "Stored alerts, newest first, or in the order stored",
        "Alerts are stored by the checkpoint that covers the event that raised them. Newest first by `occurredAt`, " +
          "those of one instant by `alertId` in code-point order. A full page (`limit` alerts) has `next`: give it " +
          "as `cursor` for the following page; reading page after page lists every alert stored when it began " +
          "exactly once, whatever is stored or deleted meanwhile. A page without `next` is the last. " +
          "With `order=stored`: oldest stored first (those of one checkpoint by `alertId` in code-point order), and " +
          "every page has `next`: following it lists every alert ever stored exactly once, those stored later " +
          "included, late events and imports too. An alert is listed once every transaction that was running when " +
          "it was stored has ended (a checkpoint in progress holds back those stored after it began).",
        {
          400: "Invalid `type`, `since`, `limit`, `cursor`, `order` or `from`, a `cursor` of the other `order`, " +
            "`from` with `cursor` or without `order=stored`, or a repeated or unknown parameter",
        },
        alertsAnswer,
      ),
    }),
  ];
}
