/**
 * The answers of GET /v1/users/{id} and /v1/products/{id}: what a client needs of an actor's stored
 * state, without the engine's internals (deduplication memory, the viewer sketch, co-occurrence
 * counters, trend buckets), every time an ISO 8601 string. The schemas document them in
 * /openapi.json and type the views, so the views cannot add or miss a documented field unnoticed.
 */
import { z } from "zod";
import { ALERT_TYPES, type AlertType, iso } from "../actors/alerts.ts";
import type { PersistedProduct } from "../actors/product_state.ts";
import { FUNNEL_STAGES, type SessionSummary } from "../actors/session.ts";
import { restoreUser } from "../actors/user_state.ts";
import { asOf, scoredProduct, severity, time } from "./query_responses.ts";

const count = z.number().int().min(0);

/** Where a state answer was read from, and who answered it. */
const stateSource = {
  source: z.enum(["memory", "checkpoint"]).describe("`memory`: live state; `checkpoint`: the last checkpoint"),
  asOf,
  instance: z.string().optional().describe("The engine instance that answered (also the `x-engine-instance` header)"),
};

const session = z.object({
  id: z.string().describe("The client's sessionId, or `auto-<number>` when the client sends none"),
  number: count.describe("1 for the user's first session"),
  startedAt: time,
  lastEventAt: time,
  durationSeconds: z.number(),
  events: count,
  pageViews: count,
  productViews: count,
  stage: z.enum(FUNNEL_STAGES).describe("Funnel stage the session reached"),
}).meta({ id: "Session" });

const userViewSchema = z.object({
  userId: z.string(),
  eventCount: count.describe("Distinct events handled (repeated eventIds and orderIds excluded)"),
  duplicateEvents: count.describe("Repeated eventIds or orderIds, ignored"),
  pageViews: count,
  productViews: count,
  searches: count,
  recentProducts: z.array(z.string()).describe("Products viewed, most recent first"),
  firstSeenAt: time.nullable(),
  lastSeenAt: time.nullable(),
  sessionCount: count,
  session: session.nullable().describe("The current session"),
  recentSessions: z.array(session).describe("Earlier sessions, most recent first"),
  funnelStage: z.enum(FUNNEL_STAGES).nullable().describe("Stage reached in the current session"),
  cart: z.object({
    items: z.record(
      z.string(),
      z.object({
        quantity: count,
        price: z.number().describe("Unit price of the latest add"),
        category: z.string().optional(),
        brand: z.string().optional(),
      }),
    ).describe("By productId"),
    value: z.number().describe("Σ quantity × price"),
    units: count,
    updatedAt: time.nullable(),
  }),
  checkout: z.object({ startedAt: time, cartValue: z.number(), abandoned: z.boolean() }).nullable()
    .describe("A checkout awaiting its order"),
  orders: z.object({
    count,
    revenue: z.number(),
    averageOrderValue: z.number(),
    firstOrderAt: time.nullable(),
    lastOrder: z.object({
      orderId: z.string(),
      at: time,
      total: z.number(),
      currency: z.string(),
      items: count,
      units: count,
    }).nullable(),
  }).describe("Order history summary"),
  purchasedProducts: z.array(z.string()).describe("Products bought, most recent first"),
  fraud: z.object({
    orderId: z.string(),
    score: z.number().min(0).max(1),
    signals: z.array(z.string()),
    suspected: z.boolean(),
  }).nullable().describe("The fraud assessment of the latest order"),
  abandonedCarts: count,
  abandonedCheckouts: count,
  alerts: z.array(z.object({
    alertId: z.string(),
    type: z.enum(ALERT_TYPES),
    severity,
    occurredAt: time,
  })).describe("Alerts about the user, newest first"),
  recommendations: z.object({ count, lastRequestedAt: time.nullable() })
    .describe("Recommendations asked for (delivered on the `recommendations` topic)"),
});

const productViewSchema = z.object({
  productId: z.string(),
  stock: count.nullable().describe("Units in stock; null until an inventory update arrives"),
  stockUpdatedAt: time.nullable(),
  eventCount: count.describe("Messages handled (duplicates excluded)"),
  duplicates: count,
  views: count,
  uniqueViewers: count.describe("Estimated distinct viewers (HyperLogLog)"),
  cartAdds: count,
  cartUnitsAdded: count,
  cartRemovals: count,
  cartUnitsRemoved: count,
  orders: count.describe("Orders containing the product"),
  unitsSold: count,
  revenue: z.number(),
  conversion: z.object({ viewToCart: z.number(), viewToPurchase: z.number() })
    .describe("All-time cart adds and orders over views"),
  trendingScore: z.number().describe("Exponentially decayed activity, as of `trendingAt`"),
  trendingAt: time.nullable(),
  category: z.string().nullable(),
  brand: z.string().nullable(),
  price: z.number().nullable(),
  lastEventAt: time.nullable().describe("Latest event time seen"),
  recommendationsSent: count.describe("Recommendations sent based on this product"),
  related: z.array(scoredProduct).describe("Related products, best first (see /v1/products/{id}/related for more)"),
});

/** GET /v1/users/{id}. */
export const userAnswer = userViewSchema.extend(stateSource).meta({
  id: "User",
  description: "The user's session, funnel stage, cart, order history summary and recent alerts",
});

/** GET /v1/products/{id}. */
export const productAnswer = productViewSchema.extend(stateSource).meta({
  id: "Product",
  description: "The product's statistics, stock and related products",
});

/** `T` read-only all the way down, as the actors' states are. */
type Frozen<T> = T extends readonly (infer E)[] ? readonly Frozen<E>[]
  : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> }
  : T;

/** What GET /v1/users/{id} shows of a user. */
export type UserView = Frozen<z.infer<typeof userViewSchema>>;
/** What GET /v1/products/{id} shows of a product. */
export type ProductView = Frozen<z.infer<typeof productViewSchema>>;

/** A user's view from its stored form (an older checkpoint's too: restoring fills what it lacks). */
export function userView(stored: unknown): UserView {
  const u = restoreUser(stored);
  const { cart, checkout, orders, fraud } = u;
  return {
    userId: u.userId,
    eventCount: u.eventCount,
    duplicateEvents: u.duplicateEvents,
    pageViews: u.pageViews,
    productViews: u.productViews,
    searches: u.searches,
    recentProducts: u.recentProducts,
    firstSeenAt: u.firstSeenAt,
    lastSeenAt: u.lastSeenAt,
    sessionCount: u.sessionCount,
    session: u.session && sessionView(u.session),
    recentSessions: u.recentSessions.map(sessionView),
    funnelStage: u.funnelStage,
    cart: { items: cart.items, value: cart.value, units: cart.units, updatedAt: cart.updatedAt },
    checkout: checkout &&
      { startedAt: checkout.startedAt, cartValue: checkout.cartValue, abandoned: checkout.abandoned },
    orders: {
      count: orders.count,
      revenue: orders.revenue,
      averageOrderValue: orders.averageOrderValue,
      firstOrderAt: orders.firstOrderAt,
      lastOrder: orders.lastOrder,
    },
    purchasedProducts: u.purchasedProducts,
    fraud: fraud && { orderId: fraud.orderId, score: fraud.score, signals: fraud.signals, suspected: fraud.suspected },
    abandonedCarts: u.abandonedCarts,
    abandonedCheckouts: u.abandonedCheckouts,
    alerts: u.alerts.map((a) => ({
      alertId: a.alertId,
      type: a.type as AlertType,
      severity: a.severity,
      occurredAt: a.occurredAt,
    })),
    recommendations: { count: u.recommendations.count, lastRequestedAt: u.recommendations.lastRequestedAt },
  };
}

/** A session without the products it pairs for co-occurrence. */
function sessionView(s: SessionSummary): UserView["recentSessions"][number] {
  return {
    id: s.id,
    number: s.number,
    startedAt: s.startedAt,
    lastEventAt: s.lastEventAt,
    durationSeconds: s.durationSeconds,
    events: s.events,
    pageViews: s.pageViews,
    productViews: s.productViews,
    stage: s.stage,
  };
}

/** A product's view from its stored form, which carries the derived figures (persistProduct). */
export function productView(stored: unknown): ProductView {
  const p = stored as PersistedProduct;
  return {
    productId: p.productId,
    stock: p.stock,
    stockUpdatedAt: p.stockUpdatedAt,
    eventCount: p.eventCount,
    duplicates: p.duplicates,
    views: p.views,
    uniqueViewers: p.uniqueViewers,
    cartAdds: p.cartAdds,
    cartUnitsAdded: p.cartUnitsAdded,
    cartRemovals: p.cartRemovals,
    cartUnitsRemoved: p.cartUnitsRemoved,
    orders: p.orders,
    unitsSold: p.unitsSold,
    revenue: p.revenue,
    conversion: { viewToCart: p.conversion.viewToCart, viewToPurchase: p.conversion.viewToPurchase },
    trendingScore: p.trendingScore,
    trendingAt: p.trendingAt,
    category: p.category,
    brand: p.brand,
    price: p.price,
    lastEventAt: p.lastEventAt === null ? null : iso(p.lastEventAt),
    recommendationsSent: p.recommendationsSent,
    related: p.related,
  };
}
