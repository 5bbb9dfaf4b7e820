/**
 * The product minute deltas a partition emitted since its last checkpoint, added up per product, minute
 * and category so that a checkpoint writes one row per triple however many facts it covers.
 *
 * Why adding is exactly-once: the deltas are only written by the checkpoint transaction that also
 * advances the partition's offset past the records that caused them (fenced by the owner epoch,
 * and by the offset it expects to advance from). A crash or a rewind drops the deltas that were not
 * committed, and the replay from the committed offset recomputes exactly those, once.
 */
import type { ProductMinute } from "./outputs.ts";

/**
 * Deltas summed per (product, minute, category): each fact counts under the category it came with, so a product
 * recategorised within a minute counts its minute in both (the realtime revenue by category does); brand is the latest.
 */
export class ProductMinuteDeltas {
  /**
   * productId → minute → category → sum. Nested rather than a joined string key: no string to build and hash per fact;
   * a product's minute almost always has one category.
   */
  readonly #byProduct = new Map<string, Map<number, Map<string | null, ProductMinute>>>();
  #size = 0;

  /** Adds one delta. */
  add(delta: ProductMinute): void {
    let minutes = this.#byProduct.get(delta.productId);
    if (!minutes) this.#byProduct.set(delta.productId, minutes = new Map());
    let categories = minutes.get(delta.minute);
    if (!categories) minutes.set(delta.minute, categories = new Map());
    const sum = categories.get(delta.category);
    if (!sum) {
      categories.set(delta.category, { ...delta });
      this.#size++;
      return;
    }
    // The sum is this object's own copy, and no checkpoint reads it while facts are handled:
    // adding in place allocates nothing per fact.
    sum.brand = delta.brand ?? sum.brand;
    sum.views += delta.views;
    sum.cartAdds += delta.cartAdds;
    sum.categoryOrders = (sum.categoryOrders ?? sum.orders) + (delta.categoryOrders ?? delta.orders);
    sum.orders += delta.orders;
    sum.units += delta.units;
    sum.revenueMillis += delta.revenueMillis;
    sum.keepFrom = Math.max(sum.keepFrom, delta.keepFrom);
  }

  /** The sums, one per product, minute and category. */
  values(): ProductMinute[] {
    const sums: ProductMinute[] = [];
    for (const minutes of this.#byProduct.values()) {
      for (const categories of minutes.values()) for (const sum of categories.values()) sums.push(sum);
    }
    return sums;
  }

  /** Product, minute and category triples held. */
  get size(): number {
    return this.#size;
  }

  /** Forgets every delta (after a commit, or when uncommitted work is dropped). */
  clear(): void {
    this.#byProduct.clear();
    this.#size = 0;
  }
}
