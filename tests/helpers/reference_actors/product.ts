// Reference copy of actors/product.ts as of d46a5bc (before a step built its state in one copy), for tests/unit/product_draft_property_test.ts.
// A deliberate change of the actor's behaviour must be made here too (or the property test retired): it pins the behaviour, not the code.
/**
 * The product actor: one per productId, fed by the `product-events` topic, so that each product
 * has exactly one owner. It handles canonical `inventory_updated` events and the product-side
 * facts user actors forward (facts.ts): views and unique viewers, cart adds and removals, orders,
 * units, revenue, conversion, trending score, category and brand, stock with `low_inventory` /
 * `out_of_stock` alerts, co-viewed / co-bought counters, and the recommendations asked for by
 * views and cart adds (recommendations.ts), and the per-minute counts of windowed rankings
 * (product_minute.ts). Everything it counts is order-independent (integer
 * sums, sketch unions, latest-by-event-time attributes), so the result does not depend on how
 * facts from different users interleave. Pure logic: state in, state out.
 */
import type { ActorContext, ActorLogic } from "../../../engine/actor.ts";
import { iso, raiseAlert } from "../../../actors/alerts.ts";
import { admit, admitId } from "../../../actors/dedupe.ts";
import { clockTimeOf } from "../../../actors/events.ts";
import {
  clockTimeOfProductFact,
  decodeProductMessage,
  type ProductFact,
  type ProductMessage,
} from "../../../actors/facts.ts";
import { applySale, applyUpdate, type Inventory, stockAlerts } from "../../../actors/inventory.ts";
import { fromMillis } from "../../../actors/money.ts";
import { bump, rankRelated, type Recommendation } from "../../../actors/recommendations.ts";
import { DEFAULT_DOMAIN_SETTINGS, type DomainSettings, minutesMs } from "../../../actors/settings.ts";
import { countMinute, type MinuteCounts } from "../../../actors/product_minute.ts";
import {
  initialProduct,
  persistProduct,
  type ProductState,
  restoreProduct,
  type Stamped,
} from "../../../actors/product_state.ts";
import { bucketStart, recordTrend, type TrendKind } from "../../../actors/trending.ts";
import { parseTime } from "../../../actors/time_parse.ts";

export { type PersistedProduct, type ProductState } from "../../../actors/product_state.ts";

/** The product actor's logic with the given settings. */
export function createProductLogic(
  settings: DomainSettings = DEFAULT_DOMAIN_SETTINGS,
): ActorLogic<ProductState, ProductMessage> {
  return {
    kind: "product",
    initial: initialProduct,
    decode: decodeProductMessage,
    eventTime: (message) => "fact" in message ? message.at : clockTimeOf(message),
    label: (message) => "fact" in message ? message.fact : message.type,
    handle: (state, message, ctx) => handle(state, message, ctx, settings),
    persist: (state) => persistProduct(state, settings),
    restore: restoreProduct,
  };
}

/** The product actor's logic with the default settings. */
export const productLogic: ActorLogic<ProductState, ProductMessage> = createProductLogic();

function handle(state: ProductState, message: ProductMessage, ctx: ActorContext, s: DomainSettings): ProductState {
  const bounds = { window: s.FACT_DEDUPE_WINDOW, recentLimit: s.FACT_DEDUPE_RECENT_IDS };
  const dedupe = "fact" in message
    ? admit(state.dedupe, message.factId, bounds)
    : admitId(state.dedupe, message.eventId, bounds);
  if (!dedupe) return { ...state, duplicates: state.duplicates + 1 };
  const at = "fact" in message ? message.at : parseTime(message.occurredAt);
  // A co-occurrence is another product's event (viewed or bought beside this one): not one of this product's events.
  const own = !("fact" in message) || message.fact !== "co_occurrence";
  const counted: ProductState = {
    ...state,
    dedupe,
    eventCount: own ? state.eventCount + 1 : state.eventCount,
    lastEventAt: !own ? state.lastEventAt : state.lastEventAt === null ? at : Math.max(state.lastEventAt, at),
  };
  if (!("fact" in message)) {
    return withInventory(counted, applyUpdate(counted.inventory, message.properties.stock, at), at, ctx, s);
  }
  return applyFact(counted, message, ctx, s);
}

function applyFact(state: ProductState, fact: ProductFact, ctx: ActorContext, s: DomainSettings): ProductState {
  const limit = s.RELATED_CANDIDATES;
  switch (fact.fact) {
    case "product_viewed": {
      const next: ProductState = {
        ...attributes(state, fact),
        views: state.views + 1,
        viewers: state.viewers.add(fact.userId),
        trend: trend(state, "view", fact.at, s),
        coViewed: fact.coViewed.length > 0
          ? bump(state.coViewed, fact.coViewed, state.productId, limit)
          : state.coViewed,
      };
      counted(next, fact, { views: 1 }, ctx, s);
      return recommend(next, fact, ctx, s);
    }
    case "product_added_to_cart": {
      const next: ProductState = {
        ...attributes(state, fact),
        cartAdds: state.cartAdds + 1,
        cartUnitsAdded: state.cartUnitsAdded + fact.quantity,
        trend: trend(state, "cart", fact.at, s),
      };
      counted(next, fact, { cartAdds: 1 }, ctx, s);
      return recommend(next, fact, ctx, s);
    }
    case "product_removed_from_cart":
      return {
        ...state,
        cartRemovals: state.cartRemovals + 1,
        cartUnitsRemoved: state.cartUnitsRemoved + fact.quantity,
      };
    case "product_ordered": {
      const next: ProductState = {
        ...attributes(state, fact.categoryFromCart ? { at: fact.at } : fact),
        orders: state.orders + 1,
        unitsSold: state.unitsSold + fact.quantity,
        revenueMillis: state.revenueMillis + fact.revenueMillis,
        trend: trend(state, "purchase", fact.at, s),
        coBought: fact.coBought.length > 0
          ? bump(state.coBought, fact.coBought, state.productId, limit)
          : state.coBought,
      };
      const categoryOrders = fact.repeatsCategory ? 0 : 1;
      counted(
        next,
        fact,
        { orders: 1, categoryOrders, units: fact.quantity, revenueMillis: fact.revenueMillis },
        ctx,
        s,
      );
      return withInventory(next, applySale(next.inventory, fact.quantity, fact.at), fact.at, ctx, s);
    }
    case "co_occurrence":
      return fact.relation === "viewed"
        ? { ...state, coViewed: bump(state.coViewed, fact.related, state.productId, limit) }
        : { ...state, coBought: bump(state.coBought, fact.related, state.productId, limit) };
  }
}

/** Emits what a fact adds to its product's minute (a stored output, for windowed rankings), under its own category. */
function counted(
  state: ProductState,
  fact: ProductFact,
  counts: Partial<MinuteCounts>,
  ctx: ActorContext,
  s: DomainSettings,
) {
  const stated = "category" in fact ? fact.category : undefined;
  const delta = countMinute(state, fact.at, counts, s.ANALYTICS_HISTORY_DAYS, clockTimeOfProductFact(fact), stated);
  ctx.emit("productMinutes", state.productId, delta);
}

/** Applies a stock change and raises the crossing alerts. */
function withInventory(
  state: ProductState,
  inventory: Inventory,
  at: number,
  ctx: ActorContext,
  s: DomainSettings,
): ProductState {
  const { inventory: checked, raised } = stockAlerts(inventory, s.LOW_STOCK_THRESHOLD);
  for (const type of raised) {
    raiseAlert(
      ctx,
      type,
      type === "out_of_stock" ? "critical" : "warning",
      { kind: "product", id: state.productId },
      at,
      {
        productId: state.productId,
        stock: checked.level,
        threshold: s.LOW_STOCK_THRESHOLD,
      },
    );
  }
  return {
    ...state,
    inventory: checked,
    stock: checked.level,
    stockUpdatedAt: checked.reportedAt === null ? null : iso(checked.reportedAt),
  };
}

/** Emits the recommendations a view or cart add asked for. */
function recommend(
  state: ProductState,
  fact: Extract<ProductFact, { recommend?: unknown }>,
  ctx: ActorContext,
  s: DomainSettings,
): ProductState {
  if (!fact.recommend) return state;
  const exclude = new Set([state.productId, ...fact.recommend.exclude]);
  const items = rankRelated(state.coViewed, state.coBought, s.RECS_CO_BOUGHT_WEIGHT, s.RECS_TOP_K, exclude);
  if (items.length === 0) return state;
  const recommendation: Recommendation = {
    recommendationId: ctx.outputId("rec"),
    userId: fact.userId,
    basedOn: state.productId,
    items,
    generatedAt: iso(fact.at),
  };
  ctx.emit("recommendations", fact.userId, recommendation);
  return { ...state, recommendationsSent: state.recommendationsSent + 1 };
}

/** Category, brand and price: the value with the latest event time wins (ties: the larger value). */
function attributes(
  state: ProductState,
  fact: { at: number; category?: string; brand?: string; priceMillis?: number },
): ProductState {
  return {
    ...state,
    category: latest(state.category, fact.category, fact.at),
    brand: latest(state.brand, fact.brand, fact.at),
    price: latest(state.price, fact.priceMillis === undefined ? undefined : fromMillis(fact.priceMillis), fact.at),
  };
}

function latest<T extends string | number>(
  current: Stamped<T> | null,
  value: T | undefined,
  at: number,
): Stamped<T> | null {
  if (value === undefined || value === "") return current;
  if (!current || at > current.at || (at === current.at && value > current.value)) return { value, at };
  return current;
}

function trend(state: ProductState, kind: TrendKind, at: number, s: DomainSettings) {
  // The horizon follows the newest activity bucket, not the product's latest event of any kind: a
  // stock update or a removal (not counted here) moved it, so what was dropped depended on arrival order.
  // Bucket starts on both sides: the exact time of one and the bucket of the other disagreed for some half-lives.
  const halfLifeMs = minutesMs(s.TRENDING_HALF_LIFE_MINUTES);
  const newest = state.trend.length > 0 ? state.trend[state.trend.length - 1][0] : -Infinity;
  const latestAt = Math.max(newest, bucketStart(at, halfLifeMs));
  return recordTrend(state.trend, kind, at, latestAt, halfLifeMs);
}
