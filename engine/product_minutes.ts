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
    // The sum is this object's own copy, and no checkpoint reads it while facts are handled:
    // adding in place allocates nothing per fact.
    sum.category = delta.category ?? sum.category;
    sum.brand = delta.brand ?? sum.brand;
    sum.views += delta.views;
    sum.cartAdds += delta.cartAdds;
    sum.orders += delta.orders;
    sum.units += delta.units;
    sum.revenueMillis += delta.revenueMillis;
    sum.keepFrom = Math.max(sum.keepFrom, delta.keepFrom);
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
