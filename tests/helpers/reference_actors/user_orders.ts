// Reference copy of actors/user_orders.ts as of d46a5bc (before a step built its state in one copy), for tests/unit/user_draft_property_test.ts.
// A deliberate change of the actor's behaviour must be made here too (or the property test retired): it pins the behaviour, not the code.
/**
 * A user's `order_completed`: order history, fraud score, the cart and checkout it closes, and the
 * product-side facts (units, revenue, co-bought pairs) forwarded to each product's owner.
 *
 * Co-bought pairs: each product of the order is paired with the products within RECS_SESSION_ITEMS
 * positions of it in the order (all of them in orders of up to 2×RECS_SESSION_ITEMS+1 products;
 * bounded work for huge orders) and with the products bought earlier in the same session.
 */
import { iso, raiseAlert, rememberAlert } from "../../../actors/alerts.ts";
import { clearCart, isEmpty } from "../../../actors/cart.ts";
import type { StoredEventOf } from "../../../actors/events.ts";
import { MAX_FACT_LIST } from "../../../actors/facts.ts";
import { assessFraud, type PastOrder } from "../../../actors/fraud.ts";
import { givenLabel } from "../../../actors/labels.ts";
import { fromMillis, toMillis } from "../../../actors/money.ts";
import { addTo, get } from "../../../actors/records.ts";
import { pushRecent } from "../../../actors/session.ts";
import type { UserState } from "../../../actors/user_state.ts";
import type { UserStep } from "../../../actors/user_step.ts";
import { parseTime } from "../../../actors/time_parse.ts";

interface Line {
  quantity: number;
  revenueMillis: number;
  category?: string;
  /** The category is the cart item's: its add reported it to the product, at the add's time. */
  fromCart?: boolean;
}

/** Whether the user already has an order with this id (a retried order under a new eventId). */
export function isRepeatedOrder(state: UserState, orderId: string): boolean {
  return state.orders.recent.some((o) => o.orderId === orderId);
}

/** Applies an order. */
export function applyOrder(state: UserState, event: StoredEventOf<"order_completed">, step: UserStep): UserState {
  const { ctx, settings: s, at } = step;
  const p = event.properties;
  const fraud = assessFraud(
    { at, total: p.total, paymentMethod: p.paymentMethod, shippingCountry: p.shippingCountry },
    { count: state.orders.count, revenue: state.orders.revenue, recent: state.orders.recent },
    s,
  );

  // One line per product, in order of first appearance.
  const lines = new Map<string, Line>();
  for (const item of p.items) {
    const line = lines.get(item.productId) ?? { quantity: 0, revenueMillis: 0 };
    line.quantity += item.quantity;
    line.revenueMillis += toMillis(item.quantity * item.price);
    if (line.category === undefined) {
      const stated = givenLabel(item.category);
      line.category = stated ?? givenLabel(get(state.cart.items, item.productId)?.category);
      line.fromCart = stated === undefined;
    }
    lines.set(item.productId, line);
  }
  const products = [...lines.keys()];
  const earlier = (step.late ? [] : state.session?.bought ?? []).filter((id) => !lines.has(id));
  const window = s.RECS_SESSION_ITEMS;
  const categories = new Set<string>();
  products.forEach((productId, i) => {
    const line = lines.get(productId)!;
    const neighbours = products.filter((_, j) => j !== i && Math.abs(i - j) <= window);
    const repeatsCategory = line.category !== undefined && categories.has(line.category);
    if (line.category !== undefined) categories.add(line.category);
    step.toProduct(productId, {
      fact: "product_ordered",
      orderId: p.orderId,
      quantity: line.quantity,
      revenueMillis: line.revenueMillis,
      ...(line.category !== undefined ? { category: line.category } : {}),
      ...(repeatsCategory ? { repeatsCategory } : {}),
      ...(line.category !== undefined && line.fromCart ? { categoryFromCart: true } : {}),
      coBought: [...neighbours, ...earlier].slice(0, MAX_FACT_LIST),
    });
  });
  for (const productId of earlier) {
    step.toProduct(productId, { fact: "co_occurrence", relation: "bought", related: products.slice(0, MAX_FACT_LIST) });
  }

  const totalMillis = toMillis(p.total);
  const categoryRevenue: Record<string, number> = {};
  for (const line of lines.values()) addTo(categoryRevenue, line.category ?? "unknown", line.revenueMillis);
  // A late order (event time) closes only the cart and checkout as they were when it was placed:
  // a cart changed or a checkout started after it stays open, with its abandonment timer.
  const closesCart = state.cart.updatedAt === null || parseTime(state.cart.updatedAt) <= at;
  const closesCheckout = state.checkout === null || parseTime(state.checkout.startedAt) <= at;
  const cartConverted = closesCart && !isEmpty(state.cart) && !state.cart.converted;
  step.toAnalytics({ type: "order_completed", revenueMillis: totalMillis, categoryRevenue, cartConverted });
  if (closesCart) ctx.cancelTimer("cart");
  if (closesCheckout) ctx.cancelTimer("checkout");

  const past: PastOrder = {
    orderId: p.orderId,
    at: iso(at),
    total: p.total,
    ...(p.paymentMethod !== undefined ? { paymentMethod: p.paymentMethod } : {}),
    ...(p.shippingCountry !== undefined ? { shippingCountry: p.shippingCountry } : {}),
  };
  const count = state.orders.count + 1;
  const revenueMillis = state.orders.revenueMillis + totalMillis;
  const last = state.orders.lastOrder;
  const units = [...lines.values()].reduce((n, l) => n + l.quantity, 0);
  const summary = { orderId: p.orderId, at: iso(at), total: p.total, currency: p.currency, items: lines.size, units };
  const first = state.orders.firstOrderAt;
  // A late order (event time) is scored and alerted, but the latest order stays the one summarised, fraud included.
  const latest = !(last && parseTime(last.at) > at);

  let alerts = state.alerts;
  if (fraud.suspected) {
    const alert = raiseAlert(ctx, "fraud_suspected", "critical", { kind: "user", id: state.userId }, at, {
      orderId: p.orderId,
      total: p.total,
      currency: p.currency,
      score: fraud.score,
      signals: fraud.signals,
    });
    alerts = rememberAlert(alerts, alert, s.USER_RECENT_ALERTS);
  }

  const session = state.session && !step.late
    ? { ...state.session, bought: pushRecent(state.session.bought, products, s.RECS_SESSION_ITEMS) }
    : state.session;
  return {
    ...state,
    session,
    cart: closesCart ? clearCart(state.cart, at) : state.cart,
    checkout: closesCheckout ? null : state.checkout,
    orders: {
      count,
      revenue: fromMillis(revenueMillis),
      revenueMillis,
      averageOrderValue: fromMillis(Math.round(revenueMillis / count)),
      firstOrderAt: first && parseTime(first) <= at ? first : iso(at),
      lastOrder: latest ? summary : last,
      recent: [past, ...state.orders.recent].slice(0, s.USER_RECENT_ORDERS),
    },
    purchasedProducts: pushRecent(state.purchasedProducts, products, s.RECS_EXCLUDE_LIMIT),
    fraud: latest ? { ...fraud, orderId: p.orderId } : state.fraud,
    alerts,
  };
}
