/**
 * The product actor's state, and its persisted form: the state as plain JSON (the viewer sketch as
 * base64 registers, co-occurrence counts as objects) plus derived figures (unique viewers, revenue,
 * conversion, trending score, related products) for readers; `restoreProduct` ignores the derived ones.
 */
import { iso } from "./alerts.ts";
import { type DedupeState, EMPTY_DEDUPE, persistDedupe, type PersistedDedupe, restoreDedupe } from "./dedupe.ts";
import { HyperLogLog, type HyperLogLogData, VIEWER_PRECISION } from "./hyperloglog.ts";
import { applyUpdate, type Inventory, UNKNOWN_INVENTORY } from "./inventory.ts";
import { fromMillis, ratioOf } from "./money.ts";
import {
  type CoCounts,
  coCountsFromJSON,
  coCountsToJSON,
  type PersistedCoCounts,
  rankRelated,
  type ScoredProduct,
} from "./recommendations.ts";
import type { DomainSettings } from "./settings.ts";
import { minutesMs } from "./settings.ts";
import { type TrendBucket, trendingScore } from "./trending.ts";

/** An attribute value with the event time it was reported at (the latest report wins). */
export interface Stamped<T> {
  readonly value: T;
  readonly at: number;
}

/** Everything the engine knows about one product. */
export interface ProductState {
  readonly productId: string;
  /** Units in stock; null until an inventory update arrives. */
  readonly stock: number | null;
  readonly stockUpdatedAt: string | null;
  /** Messages handled (duplicates excluded). */
  readonly eventCount: number;
  readonly duplicates: number;
  readonly views: number;
  readonly viewers: HyperLogLog;
  readonly cartAdds: number;
  readonly cartUnitsAdded: number;
  readonly cartRemovals: number;
  readonly cartUnitsRemoved: number;
  /** Orders containing the product. */
  readonly orders: number;
  readonly unitsSold: number;
  readonly revenueMillis: number;
  readonly category: Stamped<string> | null;
  readonly brand: Stamped<string> | null;
  readonly price: Stamped<number> | null;
  /** Latest event time seen (epoch ms). */
  readonly lastEventAt: number | null;
  readonly trend: readonly TrendBucket[];
  readonly coViewed: CoCounts;
  readonly coBought: CoCounts;
  readonly inventory: Inventory;
  readonly recommendationsSent: number;
  readonly dedupe: DedupeState;
}

/** The persisted form (also what GET /v1/products/{id} returns). */
export interface PersistedProduct
  extends Omit<ProductState, "viewers" | "category" | "brand" | "price" | "dedupe" | "coViewed" | "coBought"> {
  readonly viewers: HyperLogLogData;
  readonly coViewed: PersistedCoCounts;
  readonly coBought: PersistedCoCounts;
  readonly dedupe: PersistedDedupe;
  readonly uniqueViewers: number;
  readonly revenue: number;
  readonly conversion: { readonly viewToCart: number; readonly viewToPurchase: number };
  readonly trendingScore: number;
  readonly trendingAt: string | null;
  readonly category: string | null;
  readonly brand: string | null;
  readonly price: number | null;
  readonly attributes: {
    readonly category: Stamped<string> | null;
    readonly brand: Stamped<string> | null;
    readonly price: Stamped<number> | null;
  };
  readonly related: readonly ScoredProduct[];
}

/**
 * A product state one step is building: its own copy of the state it was given, written in place until the step
 * returns it, so that a fact copies the ~24 fields once instead of once per helper (the state given is never written).
 */
export type ProductDraft = { -readonly [K in keyof ProductState]: ProductState[K] };

/** The state of a product never seen. */
export function initialProduct(productId: string): ProductState {
  return {
    productId,
    stock: null,
    stockUpdatedAt: null,
    eventCount: 0,
    duplicates: 0,
    views: 0,
    viewers: HyperLogLog.empty(VIEWER_PRECISION),
    cartAdds: 0,
    cartUnitsAdded: 0,
    cartRemovals: 0,
    cartUnitsRemoved: 0,
    orders: 0,
    unitsSold: 0,
    revenueMillis: 0,
    category: null,
    brand: null,
    price: null,
    lastEventAt: null,
    trend: [],
    coViewed: new Map(),
    coBought: new Map(),
    inventory: UNKNOWN_INVENTORY,
    recommendationsSent: 0,
    dedupe: EMPTY_DEDUPE,
  };
}

/** The persisted form, with derived figures. */
export function persistProduct(state: ProductState, s: DomainSettings): PersistedProduct {
  const halfLife = minutesMs(s.TRENDING_HALF_LIFE_MINUTES);
  const weights = { view: s.TRENDING_VIEW_WEIGHT, cart: s.TRENDING_CART_WEIGHT, purchase: s.TRENDING_PURCHASE_WEIGHT };
  const trendAt = state.trend.length > 0 ? state.trend[state.trend.length - 1][0] : null;
  return {
    ...state,
    viewers: state.viewers.toJSON(),
    coViewed: coCountsToJSON(state.coViewed),
    coBought: coCountsToJSON(state.coBought),
    dedupe: persistDedupe(state.dedupe),
    uniqueViewers: state.viewers.estimate(),
    revenue: fromMillis(state.revenueMillis),
    conversion: {
      viewToCart: ratioOf(state.cartAdds, state.views),
      viewToPurchase: ratioOf(state.orders, state.views),
    },
    // As of the newest activity bucket, not the latest event of any kind: a restock a day later would
    // otherwise decay (and round) the stored score to nothing that a ranking could bring back.
    trendingScore: trendAt === null ? 0 : trendingScore(state.trend, trendAt, weights, halfLife),
    trendingAt: trendAt === null ? null : iso(trendAt),
    category: state.category?.value ?? null,
    brand: state.brand?.value ?? null,
    price: state.price?.value ?? null,
    attributes: { category: state.category, brand: state.brand, price: state.price },
    related: rankRelated(state.coViewed, state.coBought, s.RECS_CO_BOUGHT_WEIGHT, s.RECS_TOP_K * 2),
  };
}

/** Inverse of `persistProduct` (derived figures are recomputed, not read). */
export function restoreProduct(data: unknown): ProductState {
  const stored = data as Partial<PersistedProduct> & { productId: string };
  const base = initialProduct(stored.productId);
  const {
    uniqueViewers: _u,
    revenue: _r,
    conversion: _c,
    trendingScore: _t,
    trendingAt: _ta,
    related: _rel,
    attributes,
    viewers,
    coViewed,
    coBought,
    dedupe,
    category: _category,
    brand: _brand,
    price: _price,
    ...rest
  } = stored;
  // Checkpoints from before the inventory model carry only `stock`.
  const inventory = rest.inventory ??
    (rest.stock !== undefined && rest.stock !== null
      ? applyUpdate(UNKNOWN_INVENTORY, rest.stock, Date.parse(rest.stockUpdatedAt ?? "") || 0)
      : undefined);
  return {
    ...base,
    ...rest,
    ...(inventory ? { inventory } : {}),
    viewers: viewers ? HyperLogLog.fromJSON(viewers) : base.viewers,
    coViewed: coCountsFromJSON(coViewed),
    coBought: coCountsFromJSON(coBought),
    dedupe: restoreDedupe(dedupe),
    category: attributes?.category ?? null,
    brand: attributes?.brand ?? null,
    price: attributes?.price ?? null,
  };
}
