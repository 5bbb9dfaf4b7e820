/**
 * The cart: items with quantities and the price of their latest add (event time); value = Σ quantity × price,
 * computed in integer millis so it is exact and never drifts below zero. Removals never go below
 * zero: removing more than is in the cart removes the item, removing without a quantity removes
 * all of it, removing what is not in the cart changes nothing.
 */
import { iso } from "./alerts.ts";
import { givenLabel } from "./labels.ts";
import { fromMillis, toMillis } from "./money.ts";
import { get, put, withEntry } from "./records.ts";
import { parseTime } from "./time_parse.ts";

/** One product in the cart. */
export interface CartItem {
  readonly quantity: number;
  /** Unit price of the latest add (event time; of one instant, the last to arrive). */
  readonly price: number;
  readonly category?: string;
  readonly brand?: string;
}

/** A user's cart. */
export interface Cart {
  readonly items: Readonly<Record<string, CartItem>>;
  /** Σ quantity × price, in currency units. */
  readonly value: number;
  readonly units: number;
  /** Latest event time of a change (the maximum, whatever the arrival order). */
  readonly updatedAt: string | null;
  /** Bumped on every change; identifies a "cart state" for abandonment. */
  readonly version: number;
  /** This cart state already reached checkout or an order. */
  readonly converted: boolean;
  /**
   * Event time of the checkout that converted this cart: a change dated before it arrived late and belongs to the
   * cart that checkout took, which stays converted (one of the same instant came after it). Absent before any.
   */
  readonly convertedAt?: string;
  /**
   * Event time of the latest order that emptied this cart: a change dated before it arrived late and belonged to the
   * cart that order closed, so it changes nothing here (one of the same instant came after it). Absent before any.
   */
  readonly orderedAt?: string;
  /**
   * Event time of the add whose price and labels each item carries, by productId: a late add dated before it adds its
   * units at that newer price. Bookkeeping, not shown; absent in carts checkpointed before it was kept.
   */
  readonly pricedAt?: Readonly<Record<string, string>>;
  /**
   * Event time of the earliest add of each item, by productId, since it was last gone from the cart: a removal dated
   * before it (arrived late) removes none of its units, which were not in the cart then. Bookkeeping, not shown; absent
   * for items added before it was kept (a late removal then takes them as it always did).
   */
  readonly addedAt?: Readonly<Record<string, string>>;
}

/** An empty cart. */
export const EMPTY_CART: Cart = Object.freeze({
  items: {},
  value: 0,
  units: 0,
  updatedAt: null,
  version: 0,
  converted: false,
});

/** Whether the cart holds anything. */
export function isEmpty(cart: Cart): boolean {
  return cart.units === 0;
}

/** Adds `quantity` of a product at `price`. */
export function addToCart(
  cart: Cart,
  productId: string,
  line: { quantity: number; price: number; category?: string; brand?: string },
  at: number,
): Cart {
  const previous = get(cart.items, productId);
  const pricedAt = previous && cart.pricedAt ? get(cart.pricedAt, productId) : undefined;
  // Dated before the add that priced the item (arrived late): its units join at the newer price, and its labels fill
  // only what the newer add left out, as event-time order would have it.
  const late = pricedAt !== undefined && at < parseTime(pricedAt);
  const category = late
    ? previous!.category ?? givenLabel(line.category)
    : givenLabel(line.category) ?? previous?.category;
  const brand = late ? previous!.brand ?? givenLabel(line.brand) : givenLabel(line.brand) ?? previous?.brand;
  const item: CartItem = {
    quantity: (previous?.quantity ?? 0) + line.quantity,
    price: late ? previous!.price : line.price,
    ...(category !== undefined ? { category } : {}),
    ...(brand !== undefined ? { brand } : {}),
  };
  const stamps = late ? cart.pricedAt : withEntry(cart.pricedAt ?? {}, productId, iso(at));
  // Known only for items whose every add was stamped: one added before it was kept has no earliest add to go by.
  const added = previous ? (cart.addedAt ? get(cart.addedAt, productId) : undefined) : null;
  const firsts = added === undefined
    ? cart.addedAt
    : added !== null && parseTime(added) <= at
    ? cart.addedAt
    : withEntry(cart.addedAt ?? {}, productId, iso(at));
  return changed(cart, withEntry(cart.items, productId, item), at, stamps, firsts);
}

/** Removes up to `quantity` (all when undefined); returns the cart and the units actually removed. */
export function removeFromCart(
  cart: Cart,
  productId: string,
  quantity: number | undefined,
  at: number,
): { cart: Cart; removed: number } {
  const item = get(cart.items, productId);
  if (!item) return { cart, removed: 0 };
  const added = cart.addedAt ? get(cart.addedAt, productId) : undefined;
  // Dated before the item's first add (arrived after it): in event-time order it found none of these units.
  if (added !== undefined && at < parseTime(added)) return { cart, removed: 0 };
  const removed = Math.min(item.quantity, quantity ?? item.quantity);
  const items = { ...cart.items };
  if (removed !== item.quantity) {
    put(items, productId, { ...item, quantity: item.quantity - removed });
    return { cart: changed(cart, items, at, cart.pricedAt, cart.addedAt), removed };
  }
  delete items[productId];
  return {
    cart: changed(cart, items, at, without(cart.pricedAt, productId), without(cart.addedAt, productId)),
    removed,
  };
}

/** The cart after an order at `at`: empty, keeping its history counters; later-arriving changes dated before `at` belong to it. */
export function clearCart(cart: Cart, at: number): Cart {
  const emptied = isEmpty(cart) ? cart : changed(cart, {}, at, undefined, undefined);
  return cart.orderedAt !== undefined && parseTime(cart.orderedAt) >= at ? emptied : { ...emptied, orderedAt: iso(at) };
}

/** The cart after a checkout at `at` that took it as it was (no change after `at`): converted. */
export function convertCart(cart: Cart, at: number): Cart {
  const convertedAt = cart.convertedAt !== undefined && parseTime(cart.convertedAt) >= at ? cart.convertedAt : iso(at);
  return { ...cart, converted: true, convertedAt };
}

/**
 * A cart checkpointed before 2026-12-05 (no `orderedAt`, nor `convertedAt` when converted), given them from the user's
 * latest order and checkout when no change came after it, as a cart written since has them: a late change dated before
 * either is then part of what it closed (it went into the next cart, or unconverted the cart, and raised cart_abandoned).
 */
export function restoreCart(cart: Cart, lastOrderAt: string | null, checkoutAt: string | null): Cart {
  const unchangedSince = (at: string) => cart.updatedAt === null || parseTime(cart.updatedAt) <= parseTime(at);
  const orderedAt = cart.orderedAt ?? (lastOrderAt !== null && unchangedSince(lastOrderAt) ? lastOrderAt : null);
  const convertedAt = cart.convertedAt ??
    (cart.converted && checkoutAt !== null && unchangedSince(checkoutAt) ? checkoutAt : null);
  if (orderedAt === (cart.orderedAt ?? null) && convertedAt === (cart.convertedAt ?? null)) return cart;
  return {
    ...cart,
    ...(convertedAt !== null ? { convertedAt } : {}),
    ...(orderedAt !== null ? { orderedAt } : {}),
  };
}

/**
 * Whether a change dated `at`, arriving now, belongs to a cart an order has already emptied (it changes nothing): one
 * dated before the order. One of the same instant arrived after it and goes to the next cart (events of one instant,
 * a batch posted without occurredAt, follow their arrival order).
 */
export function closedByOrder(cart: Cart, at: number): boolean {
  return cart.orderedAt !== undefined && at < parseTime(cart.orderedAt);
}

function changed(
  cart: Cart,
  items: Record<string, CartItem>,
  at: number,
  pricedAt: Readonly<Record<string, string>> | undefined,
  addedAt: Readonly<Record<string, string>> | undefined,
): Cart {
  let valueMillis = 0;
  let units = 0;
  for (const item of Object.values(items)) {
    valueMillis += toMillis(item.quantity * item.price);
    units += item.quantity;
  }
  const updated = cart.updatedAt && parseTime(cart.updatedAt) > at ? cart.updatedAt : iso(at);
  // A change dated before the checkout that converted the cart is part of what that checkout took (one of the same
  // instant arrived after it).
  const converted = cart.converted && cart.convertedAt !== undefined && at < parseTime(cart.convertedAt);
  return {
    items,
    value: fromMillis(valueMillis),
    units,
    updatedAt: updated,
    version: cart.version + 1,
    converted,
    ...(cart.convertedAt !== undefined ? { convertedAt: cart.convertedAt } : {}),
    ...(cart.orderedAt !== undefined ? { orderedAt: cart.orderedAt } : {}),
    ...(pricedAt !== undefined && Object.keys(pricedAt).length > 0 ? { pricedAt } : {}),
    ...(addedAt !== undefined && Object.keys(addedAt).length > 0 ? { addedAt } : {}),
  };
}

/** `stamps` without `productId`'s entry (the same object when it has none). */
function without(
  stamps: Readonly<Record<string, string>> | undefined,
  productId: string,
): Readonly<Record<string, string>> | undefined {
  if (!stamps || !Object.hasOwn(stamps, productId)) return stamps;
  const rest = { ...stamps };
  delete (rest as Record<string, string>)[productId];
  return rest;
}
