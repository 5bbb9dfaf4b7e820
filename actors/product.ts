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
import type { ActorContext, ActorLogic } from "../engine/actor.ts";
import { iso, raiseAlert } from "./alerts.ts";
import { admit, admitId } from "./dedupe.ts";
import { clockTimeOf } from "./events.ts";
import { clockTimeOfProductFact, decodeProductMessage, type ProductFact, type ProductMessage } from "./facts.ts";
import { applySale, applyUpdate, type Inventory, stockAlerts } from "./inventory.ts";
import { fromMillis } from "./money.ts";
import { bump, rankRelated, type Recommendation } from "./recommendations.ts";
import { DEFAULT_DOMAIN_SETTINGS, type DomainSettings, minutesMs } from "./settings.ts";
import { countMinute, type MinuteCounts } from "./product_minute.ts";
import {
  initialProduct,
  persistProduct,
  type ProductDraft,
  type ProductState,
  restoreProduct,
  type Stamped,
} from "./product_state.ts";
import { bucketStart, recordTrend, type TrendKind } from "./trending.ts";
import { parseTime } from "./time_parse.ts";

export { type PersistedProduct, type ProductState } from "./product_state.ts";

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

/**
 * One message: the state is copied once into a draft that this step's helpers write in place; a view copied the ~24
 * fields three times (the count, the attributes, the view) and a fourth when it sent recommendations.
 */
function handle(state: ProductState, message: ProductMessage, ctx: ActorContext, s: DomainSettings): ProductState {
  const bounds = { window: s.FACT_DEDUPE_WINDOW, recentLimit: s.FACT_DEDUPE_RECENT_IDS };
  const dedupe = "fact" in message
    ? admit(state.dedupe, message.factId, bounds)
    : admitId(state.dedupe, message.eventId, bounds);
  if (!dedupe) return { ...state, duplicates: state.duplicates + 1 };
  const at = "fact" in message ? message.at : parseTime(message.occurredAt);
  // A co-occurrence is another product's event (viewed or bought beside this one): not one of this product's events.
  const own = !("fact" in message) || message.fact !== "co_occurrence";
  const next: ProductDraft = { ...state };
  next.dedupe = dedupe;
  if (own) {
    next.eventCount = state.eventCount + 1;
    next.lastEventAt = state.lastEventAt === null ? at : Math.max(state.lastEventAt, at);
  }
  if (!("fact" in message)) withInventory(next, applyUpdate(next.inventory, message.properties.stock, at), at, ctx, s);
  else applyFact(next, message, ctx, s);
  return next;
}

/** A product fact, into the step's draft. */
function applyFact(state: ProductDraft, fact: ProductFact, ctx: ActorContext, s: DomainSettings): void {
  const limit = s.RELATED_CANDIDATES;
  switch (fact.fact) {
    case "product_viewed": {
      attributes(state, fact);
      state.views++;
      state.viewers = state.viewers.add(fact.userId);
      state.trend = trend(state, "view", fact.at, s);
      if (fact.coViewed.length > 0) state.coViewed = bump(state.coViewed, fact.coViewed, state.productId, limit);
      counted(state, fact, { views: 1 }, ctx, s);
      recommend(state, fact, ctx, s);
      return;
    }
    case "product_added_to_cart": {
      attributes(state, fact);
      state.cartAdds++;
      state.cartUnitsAdded += fact.quantity;
      state.trend = trend(state, "cart", fact.at, s);
      counted(state, fact, { cartAdds: 1 }, ctx, s);
      recommend(state, fact, ctx, s);
      return;
    }
    case "product_removed_from_cart":
      state.cartRemovals++;
      state.cartUnitsRemoved += fact.quantity;
      return;
    case "product_ordered": {
      attributes(state, fact.categoryFromCart ? { at: fact.at } : fact);
      state.orders++;
      state.unitsSold += fact.quantity;
      state.revenueMillis += fact.revenueMillis;
      state.trend = trend(state, "purchase", fact.at, s);
      if (fact.coBought.length > 0) state.coBought = bump(state.coBought, fact.coBought, state.productId, limit);
      const categoryOrders = fact.repeatsCategory ? 0 : 1;
      counted(
        state,
        fact,
        { orders: 1, categoryOrders, units: fact.quantity, revenueMillis: fact.revenueMillis },
        ctx,
        s,
      );
      withInventory(state, applySale(state.inventory, fact.quantity, fact.at), fact.at, ctx, s);
      return;
    }
    case "co_occurrence":
      if (fact.relation === "viewed") state.coViewed = bump(state.coViewed, fact.related, state.productId, limit);
      else state.coBought = bump(state.coBought, fact.related, state.productId, limit);
      return;
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

/** Applies a stock change and raises the crossing alerts, into the step's draft. */
function withInventory(
  state: ProductDraft,
  inventory: Inventory,
  at: number,
  ctx: ActorContext,
  s: DomainSettings,
): void {
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
  state.inventory = checked;
  state.stock = checked.level;
  state.stockUpdatedAt = checked.reportedAt === null ? null : iso(checked.reportedAt);
}

/** Emits the recommendations a view or cart add asked for, counted into the step's draft. */
function recommend(
  state: ProductDraft,
  fact: Extract<ProductFact, { recommend?: unknown }>,
  ctx: ActorContext,
  s: DomainSettings,
): void {
  if (!fact.recommend) return;
  const exclude = new Set([state.productId, ...fact.recommend.exclude]);
  const items = rankRelated(state.coViewed, state.coBought, s.RECS_CO_BOUGHT_WEIGHT, s.RECS_TOP_K, exclude);
  if (items.length === 0) return;
  const recommendation: Recommendation = {
    recommendationId: ctx.outputId("rec"),
    userId: fact.userId,
    basedOn: state.productId,
    items,
    generatedAt: iso(fact.at),
  };
  ctx.emit("recommendations", fact.userId, recommendation);
  state.recommendationsSent++;
}

/** Category, brand and price, into the step's draft: the value with the latest event time wins (ties: the larger). */
function attributes(
  state: ProductDraft,
  fact: { at: number; category?: string; brand?: string; priceMillis?: number },
): void {
  state.category = latest(state.category, fact.category, fact.at);
  state.brand = latest(state.brand, fact.brand, fact.at);
  state.price = latest(state.price, fact.priceMillis === undefined ? undefined : fromMillis(fact.priceMillis), fact.at);
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
