/**
 * The product minute deltas a partition emitted since its last checkpoint, added up per product and
 * minute so that a checkpoint writes one row per pair however many facts it covers.
 *
 * Why adding is exactly-once: the deltas are only written by the checkpoint transaction that also
 * advances the partition's offset past the records that caused them (fenced by the owner epoch,
 * and by the offset it expects to advance from). A crash or a rewind drops the deltas that were not
 * committed, and the replay from the committed offset recomputes exactly those, once.
 */
import type { ProductMinute } from "./outputs.ts";

/** Deltas summed per (product, minute); category and brand are the latest reported. */
export class ProductMinuteDeltas {
  readonly #byKey = new Map<string, ProductMinute>();

  /** Adds one delta. */
  add(delta: ProductMinute): void {
    const key = `${delta.productId}\u0000${delta.minute}`;
    const sum = this.#byKey.get(key);
    if (!sum) {
      this.#byKey.set(key, { ...delta });
      return;
    }
    this.#byKey.set(key, {
      productId: delta.productId,
      minute: delta.minute,
      category: delta.category ?? sum.category,
      brand: delta.brand ?? sum.brand,
      views: sum.views + delta.views,
      cartAdds: sum.cartAdds + delta.cartAdds,
      orders: sum.orders + delta.orders,
      units: sum.units + delta.units,
      revenueMillis: sum.revenueMillis + delta.revenueMillis,
      keepFrom: Math.max(sum.keepFrom, delta.keepFrom),
    });
  }

  /** The sums, one per product and minute. */
  values(): ProductMinute[] {
    return [...this.#byKey.values()];
  }

  /** Product-minute pairs held. */
  get size(): number {
    return this.#byKey.size;
  }

  /** Forgets every delta (after a commit, or when uncommitted work is dropped). */
  clear(): void {
    this.#byKey.clear();
  }
}
