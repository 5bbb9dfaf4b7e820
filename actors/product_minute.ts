/**
 * What one product fact adds to its product's minute of `product_minutes` (the `productMinutes`
 * stored output), from which windowed top products and categories are ranked. Pure: the minute is
 * the fact's event time, so a replay emits identical deltas.
 */
import type { ProductMinute } from "../engine/outputs.ts";
import { givenLabel } from "./labels.ts";
import type { ProductState } from "./product_state.ts";
import { minuteOf } from "./rollups.ts";

const DAY = 86_400_000;

/** The counters of a product minute. */
export interface MinuteCounts {
  readonly views: number;
  readonly cartAdds: number;
  readonly orders: number;
  readonly categoryOrders: number;
  readonly units: number;
  readonly revenueMillis: number;
}

/**
 * The delta of a fact at `at` counted into `state`, under `category`, the one the fact came with (else the product's as
 * it now is: the realtime revenue by category counts each order line under its own, so the rankings must too), with
 * the product's brand as it now is. Stored minutes more than `historyDays` before `clock`, the fact's time taken no
 * later than its receipt, are to be deleted. Not from the product's latest event time: an event dated ahead of its
 * receipt (up to a day) deleted minutes the windows, which end at the latest receipt, still held.
 */
export function countMinute(
  state: ProductState,
  at: number,
  counts: Partial<MinuteCounts>,
  historyDays: number,
  clock: number = at,
  category: string | undefined = undefined,
): ProductMinute {
  return {
    productId: state.productId,
    minute: minuteOf(at),
    category: givenLabel(category) ?? state.category?.value ?? null,
    brand: state.brand?.value ?? null,
    views: counts.views ?? 0,
    cartAdds: counts.cartAdds ?? 0,
    orders: counts.orders ?? 0,
    categoryOrders: counts.categoryOrders ?? counts.orders ?? 0,
    units: counts.units ?? 0,
    revenueMillis: counts.revenueMillis ?? 0,
    keepFrom: minuteOf(clock) - historyDays * DAY,
  };
}
