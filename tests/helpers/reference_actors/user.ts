// Reference copy of actors/user.ts as of d46a5bc (before a step built its state in one copy), for tests/unit/user_draft_property_test.ts.
// A deliberate change of the actor's behaviour must be made here too (or the property test retired): it pins the behaviour, not the code.
/**
 * The user actor: one per userId, fed by the `events` topic in partition order. Keeps sessions,
 * the funnel, the cart, checkout, order history, fraud score, recent alerts and recommendation
 * requests; raises `cart_abandoned` / `checkout_abandoned` through durable timers and
 * `fraud_suspected` on orders; forwards product-side facts to `product-events` and activity to
 * `analytics` (and an `inventory_updated` a service produced to `events` on to its product). Pure logic: state in,
 * state out; effects only through the context.
 *
 * A repeated eventId (within the last USER_DEDUPE_EVENTS of the user, remembered as 52-bit hashes)
 * or a repeated orderId (within the last USER_RECENT_ORDERS orders) is counted once and emits nothing.
 */
import type { ActorContext, ActorLogic } from "../../../engine/actor.ts";
import { iso, raiseAlert, rememberAlert } from "../../../actors/alerts.ts";
import { addToCart, type Cart, closedByOrder, convertCart, isEmpty, removeFromCart } from "../../../actors/cart.ts";
import { decodeEvent } from "../../../actors/decode.ts";
import { admitHash } from "../../../actors/dedupe.ts";
import { hash52 } from "../../../actors/hash.ts";
import { givenLabel } from "../../../actors/labels.ts";
import { MAX_FACT_LIST } from "../../../actors/facts.ts";
import { clockTimeOf, type StoredEvent, type StoredEventOf } from "../../../actors/events.ts";
import { toMillis } from "../../../actors/money.ts";
import {
  NO_STAGES,
  openSession,
  pastSessionOf,
  placeEvent,
  pushRecent,
  recordInSession,
  stagesBetween,
  summarize,
} from "../../../actors/session.ts";
import { DEFAULT_DOMAIN_SETTINGS, type DomainSettings, minutesMs } from "../../../actors/settings.ts";
import { applyOrder, isRepeatedOrder } from "./user_orders.ts";
import {
  initialUser,
  persistUser,
  RECENT_CHECKOUTS,
  RECENT_PRODUCTS_LIMIT,
  RECENT_RECOMMENDATION_REQUESTS,
  restoreUser,
  type UserState,
} from "../../../actors/user_state.ts";
import { UserStep } from "../../../actors/user_step.ts";
import { parseTime } from "../../../actors/time_parse.ts";

export { RECENT_PRODUCTS_LIMIT, type UserState } from "../../../actors/user_state.ts";

/** Timer names of the user actor. */
export const USER_TIMERS = { cart: "cart", checkout: "checkout" } as const;

/** The user actor's logic with the given settings. */
export function createUserLogic(
  settings: DomainSettings = DEFAULT_DOMAIN_SETTINGS,
): ActorLogic<UserState, StoredEvent> {
  return {
    kind: "user",
    initial: initialUser,
    decode: decodeEvent,
    eventTime: clockTimeOf,
    label: (event) => event.type,
    handle: (state, event, ctx) => handle(state, event, ctx, settings),
    onTimer: (state, name, ctx) => onTimer(state, name, ctx, settings),
    persist: persistUser,
    restore: restoreUser,
  };
}

/** The user actor's logic with the default settings. */
export const userLogic: ActorLogic<UserState, StoredEvent> = createUserLogic();

function handle(state: UserState, event: StoredEvent, ctx: ActorContext, s: DomainSettings): UserState {
  if (event.type === "inventory_updated") {
    // Produced straight to `events` (keyed by its product, as decoding checks): forwarded as it is to the product's
    // owner, which dedupes it by eventId on a replay. Ignored here, it was lost and the stock never saw it.
    ctx.emit("productEvents", event.properties.productId, event);
    return state;
  }
  const remembered = admitHash(state.seenEventHashes, hash52(event.eventId), s.USER_DEDUPE_EVENTS);
  const repeatedEvent = remembered === null;
  const seenEventHashes = remembered ?? state.seenEventHashes;
  if (repeatedEvent || (event.type === "order_completed" && isRepeatedOrder(state, event.properties.orderId))) {
    return { ...state, duplicateEvents: state.duplicateEvents + 1, seenEventHashes };
  }

  const at = parseTime(event.occurredAt);
  state = raiseOverdue(state, clockTimeOf(event), ctx, s);
  const time = iso(at);
  let next: UserState = {
    ...state,
    eventCount: state.eventCount + 1,
    seenEventHashes,
    firstSeenAt: state.firstSeenAt && parseTime(state.firstSeenAt) <= at ? state.firstSeenAt : time,
    lastSeenAt: state.lastSeenAt && parseTime(state.lastSeenAt) >= at ? state.lastSeenAt : time,
  };

  const placement = placeEvent(state.session, at, event.sessionId, minutesMs(s.SESSION_GAP_MINUTES));
  if (placement === "new") {
    const previous = state.session ? [summarize(state.session), ...state.recentSessions] : state.recentSessions;
    next = {
      ...next,
      sessionCount: state.sessionCount + 1,
      session: openSession(state.sessionCount + 1, at, event.sessionId),
      recentSessions: previous.slice(0, s.USER_RECENT_SESSIONS),
    };
  }
  const late = placement === "late";
  let reached = NO_STAGES;
  if (!late) {
    const session = recordInSession(next.session!, event.type, at, event.sessionId);
    reached = stagesBetween(placement === "new" ? null : state.session!.stage, session.stage);
    next = { ...next, session, funnelStage: session.stage };
  }
  // By number, fixed when the session opens and unique per user: its id changes when a session opened without a
  // sessionId adopts the client's, and a client id can come back after another (a new session each time).
  // A late event is named by the past session it belongs to, which was active in its minute: as a session of its own
  // (`late`) it counted twice there. One older than the user's recent sessions has no number to go by.
  const number = late
    ? pastSessionOf(state.recentSessions, at, event.sessionId, minutesMs(s.SESSION_GAP_MINUTES)) ?? "late"
    : next.session!.number;
  const sessionName = `${state.userId}/${number}`;
  const step = new UserStep(ctx, s, state.userId, at, sessionName, late, reached, parseTime(event.receivedAt));

  switch (event.type) {
    case "page_viewed":
      step.toAnalytics({
        type: event.type,
        ...(event.properties.loadTime !== undefined ? { loadTime: event.properties.loadTime } : {}),
      });
      return { ...next, pageViews: next.pageViews + 1 };
    case "search_performed":
      step.toAnalytics({ type: event.type });
      return { ...next, searches: next.searches + 1 };
    case "product_viewed":
      return viewProduct(next, event, step);
    case "product_added_to_cart":
      return addProduct(next, event, step);
    case "product_removed_from_cart":
      return removeProduct(next, event, step);
    case "checkout_started":
      return startCheckout(next, event, step);
    case "order_completed":
      return applyOrder(next, event, step);
  }
}

function viewProduct(state: UserState, event: StoredEventOf<"product_viewed">, step: UserStep): UserState {
  const { productId, price } = event.properties;
  const category = givenLabel(event.properties.category);
  const brand = givenLabel(event.properties.brand);
  const s = step.settings;
  let session = state.session;
  let coViewed: string[] = [];
  if (!step.late && session) {
    if (!session.viewed.includes(productId)) coViewed = session.viewed.slice(0, MAX_FACT_LIST);
    session = { ...session, viewed: pushRecent(session.viewed, [productId], s.RECS_SESSION_ITEMS) };
  }
  const [recommend, recommendations] = requestRecommendations(state, state.cart, step);
  step.toProduct(productId, {
    fact: "product_viewed",
    ...(price !== undefined ? { priceMillis: toMillis(price) } : {}),
    ...(category !== undefined ? { category } : {}),
    ...(brand !== undefined ? { brand } : {}),
    coViewed,
    ...recommend,
  });
  for (const other of coViewed) {
    step.toProduct(other, { fact: "co_occurrence", relation: "viewed", related: [productId] });
  }
  step.toAnalytics({ type: event.type });
  return {
    ...state,
    session,
    productViews: state.productViews + 1,
    recentProducts: pushRecent(state.recentProducts, [productId], RECENT_PRODUCTS_LIMIT),
    recommendations,
  };
}

function addProduct(state: UserState, event: StoredEventOf<"product_added_to_cart">, step: UserStep): UserState {
  const { productId, quantity, price } = event.properties;
  const category = givenLabel(event.properties.category);
  const brand = givenLabel(event.properties.brand);
  const cart = closedByOrder(state.cart, step.at)
    ? state.cart
    : addToCart(state.cart, productId, { quantity, price, category, brand }, step.at);
  if (cart !== state.cart) armCartTimer(state, cart, step);
  const [recommend, recommendations] = requestRecommendations(state, cart, step);
  step.toProduct(productId, {
    fact: "product_added_to_cart",
    quantity,
    priceMillis: toMillis(price),
    ...(category !== undefined ? { category } : {}),
    ...(brand !== undefined ? { brand } : {}),
    ...recommend,
  });
  step.toAnalytics({ type: event.type });
  return { ...state, cart, recommendations };
}

function removeProduct(state: UserState, event: StoredEventOf<"product_removed_from_cart">, step: UserStep): UserState {
  const { productId, quantity } = event.properties;
  const { cart, removed } = closedByOrder(state.cart, step.at)
    ? { cart: state.cart, removed: 0 }
    : removeFromCart(state.cart, productId, quantity, step.at);
  step.toAnalytics({ type: event.type });
  if (removed === 0) return state;
  armCartTimer(state, cart, step);
  step.toProduct(productId, { fact: "product_removed_from_cart", quantity: removed });
  return { ...state, cart };
}

function startCheckout(state: UserState, event: StoredEventOf<"checkout_started">, step: UserStep): UserState {
  const lastOrder = state.orders.lastOrder;
  const started = state.checkout === null ? -Infinity : parseTime(state.checkout.startedAt);
  const recentCheckouts = rememberCheckout(state.recentCheckouts, step.at);
  if (
    (lastOrder !== null && parseTime(lastOrder.at) > step.at) || started > step.at ||
    (started === step.at && state.checkout!.abandoned)
  ) {
    // Late: an order already followed this checkout (event time), or a later checkout is open, or one of this instant
    // was reported abandoned (its deadline has passed): no new checkout to watch. Events of one instant follow their
    // arrival order: after an order or an open checkout of the same instant, this checkout is the one to watch.
    step.toAnalytics({ type: event.type, cartConverted: false });
    return abandonLateCheckout({ ...state, recentCheckouts }, state, event, step);
  }
  // A late checkout (event time) takes only the cart as it was then: a cart changed after it stays open, with its
  // abandonment timer, as an order does (applyOrder).
  const takesCart = state.cart.updatedAt === null || parseTime(state.cart.updatedAt) <= step.at;
  const cartConverted = takesCart && !isEmpty(state.cart) && !state.cart.converted;
  if (takesCart) step.ctx.cancelTimer(USER_TIMERS.cart);
  armAbandonment(step.ctx, USER_TIMERS.checkout, step.at + minutesMs(step.settings.CHECKOUT_ABANDON_MINUTES));
  step.toAnalytics({ type: event.type, cartConverted });
  return {
    ...state,
    // An empty cart is marked too: a change dated before this checkout that arrives later is part of what it took.
    cart: takesCart ? convertCart(state.cart, step.at) : state.cart,
    checkout: { startedAt: iso(step.at), cartValue: event.properties.cartValue ?? state.cart.value, abandoned: false },
    recentCheckouts,
  };
}

/** The remembered checkout start times with `at` in its place (latest first, bounded); unchanged if already there. */
function rememberCheckout(times: readonly string[], at: number): readonly string[] {
  const time = iso(at);
  if (times.includes(time)) return times;
  const later = times.filter((t) => parseTime(t) > at);
  return [...later, time, ...times.slice(later.length)].slice(0, RECENT_CHECKOUTS);
}

/**
 * A late checkout (one opening nothing: an order or a checkout dated after it was handled first) is reported abandoned
 * at its deadline as event-time order reports it: when no order and no other checkout (remembered: RECENT_CHECKOUTS,
 * USER_RECENT_ORDERS) came within CHECKOUT_ABANDON_MINUTES after it, or at its instant, and the partition clock has
 * passed that deadline. It used to be dropped, and with it the abandonment of a checkout an hour before the next one.
 */
function abandonLateCheckout(
  state: UserState,
  before: UserState,
  event: StoredEventOf<"checkout_started">,
  step: UserStep,
): UserState {
  const { ctx, at } = step;
  const deadline = at + minutesMs(step.settings.CHECKOUT_ABANDON_MINUTES);
  if (deadline >= ctx.now()) return state;
  const within = (time: string) => {
    const t = parseTime(time);
    return t >= at && t <= deadline;
  };
  const lastOrder = before.orders.lastOrder;
  if (
    before.recentCheckouts.some(within) || (before.checkout !== null && within(before.checkout.startedAt)) ||
    before.orders.recent.some((o) => within(o.at)) || (lastOrder !== null && within(lastOrder.at))
  ) return state;
  // Its cart as it was is not known when it changed since: the value the event gives, else the cart's now.
  const alert = raiseAlert(ctx, "checkout_abandoned", "warning", { kind: "user", id: state.userId }, deadline, {
    startedAt: iso(at),
    cartValue: event.properties.cartValue ?? state.cart.value,
  }, "checkout_abandoned-late");
  ctx.emit("analytics", "global", {
    fact: "abandonment",
    factId: ctx.outputId("a-late-checkout"),
    at: deadline,
    userId: state.userId,
    stage: "checkout",
  });
  return {
    ...state,
    abandonedCheckouts: state.abandonedCheckouts + 1,
    alerts: rememberAlert(state.alerts, alert, step.settings.USER_RECENT_ALERTS),
  };
}

/**
 * (Re-)arms the abandonment timer of a changed cart: its latest change plus CART_ABANDON_MINUTES;
 * not at or before an abandonment already raised (a late change to that cart: raising it again
 * would be a second alert under the same id, which derives from the deadline).
 */
function armCartTimer(state: UserState, cart: Cart, step: UserStep): void {
  const deadline = parseTime(cart.updatedAt!) + minutesMs(step.settings.CART_ABANDON_MINUTES);
  const reported = state.cartAbandonedAt === null ? -Infinity : parseTime(state.cartAbandonedAt);
  if (isEmpty(cart) || cart.converted || deadline <= reported) step.ctx.cancelTimer(USER_TIMERS.cart);
  else armAbandonment(step.ctx, USER_TIMERS.cart, deadline);
}

/**
 * Arms an abandonment timer. A deadline the partition clock has already passed (a late event: an offline client's
 * queue, a producer back from an outage) waits for the clock's next move instead of firing before this user's next
 * event, so that the checkout or order right behind it in the log still cancels it; `onTimer` dates the alert at the
 * deadline itself, from the state.
 */
function armAbandonment(ctx: ActorContext, name: string, deadline: number): void {
  ctx.setTimer(name, Math.max(deadline, ctx.now())); // due once the clock is past it: at its next move
}

/**
 * The rate-limited recommendation request for a view or cart add, and the updated request log. The limit is the
 * event-time distance to each remembered request, before or after: a late event far from them asks too.
 */
function requestRecommendations(
  state: UserState,
  cart: Cart,
  step: UserStep,
): [{ recommend?: { exclude: string[] } }, UserState["recommendations"]] {
  const s = step.settings;
  const log = state.recommendations;
  const interval = s.RECS_MIN_INTERVAL_SECONDS * 1000;
  const last = log.lastRequestedAt === null ? -Infinity : parseTime(log.lastRequestedAt);
  const near = (at: string | number) => Math.abs(step.at - (typeof at === "string" ? parseTime(at) : at)) < interval;
  // In order (the common case) only the latest request can be near; a late event is compared with all remembered.
  if (near(last) || (step.at < last && log.recent.some((r) => near(r.at)))) return [{}, log];
  const exclude = excluded(cart, state.purchasedProducts, Math.min(s.RECS_EXCLUDE_LIMIT, MAX_FACT_LIST));
  const time = iso(step.at);
  const request = { at: time };
  const late = step.at < last;
  const recent = late ? [...log.recent, request].sort(newestFirst) : [request, ...log.recent];
  return [{ recommend: { exclude } }, {
    count: log.count + 1,
    lastRequestedAt: late ? log.lastRequestedAt : time,
    recent: recent.slice(0, RECENT_RECOMMENDATION_REQUESTS),
  }];
}

/**
 * The products a recommendation request excludes: the cart's (sorted), then those bought, each once, at most `limit`.
 * Without purchases, the cart's keys alone (already distinct): a Set and two copies per product view, for nothing.
 */
function excluded(cart: Cart, purchased: readonly string[], limit: number): string[] {
  const inCart = Object.keys(cart.items).sort();
  if (purchased.length === 0) return inCart.length > limit ? inCart.slice(0, limit) : inCart;
  return [...new Set([...inCart, ...purchased])].slice(0, limit);
}

/** Requests by event time, the latest first. */
function newestFirst(a: { at: string }, b: { at: string }): number {
  return parseTime(b.at) - parseTime(a.at);
}

function onTimer(state: UserState, name: string, ctx: ActorContext, s: DomainSettings): UserState {
  const deadline = name === USER_TIMERS.cart
    ? cartDeadline(state, s)
    : name === USER_TIMERS.checkout
    ? checkoutDeadline(state, s)
    : null;
  if (deadline === null) return state;
  // A timer armed before its threshold was raised (a restart with a larger CART_ or CHECKOUT_ABANDON_MINUTES) waits
  // for the deadline the settings give now: it raised the abandonment at the old one.
  if (deadline > ctx.now()) {
    ctx.setTimer(name, deadline);
    return state;
  }
  // At the deadline itself, also when a late change's timer waited for the clock to move (armAbandonment).
  return name === USER_TIMERS.cart
    ? abandonCart(state, ctx, s, deadline, "a")
    : abandonCheckout(state, ctx, s, deadline, "a");
}

/** When the cart is abandoned unless it changes or converts first; null: nothing to abandon. */
function cartDeadline(state: UserState, s: DomainSettings): number | null {
  if (isEmpty(state.cart) || state.cart.converted) return null;
  return parseTime(state.cart.updatedAt!) + minutesMs(s.CART_ABANDON_MINUTES);
}

/** When the open checkout is abandoned unless an order comes first; null: none open. */
function checkoutDeadline(state: UserState, s: DomainSettings): number | null {
  if (!state.checkout || state.checkout.abandoned) return null;
  return parseTime(state.checkout.startedAt) + minutesMs(s.CHECKOUT_ABANDON_MINUTES);
}

/**
 * Before an event whose clock time (occurredAt, never past its receipt) is after a deadline whose timer waited for the
 * partition clock (armAbandonment), the abandonment it missed, as the timer would have raised it had the events come in
 * time (earliest first, the cart on a tie): an order 45 minutes after a cart change, both late, still leaves that cart
 * abandoned. Only such timers can be pending here: the runtime fires every other timer due before that time first.
 */
function raiseOverdue(state: UserState, at: number, ctx: ActorContext, s: DomainSettings): UserState {
  const cart = ctx.timer(USER_TIMERS.cart) === undefined ? null : cartDeadline(state, s);
  const checkout = ctx.timer(USER_TIMERS.checkout) === undefined ? null : checkoutDeadline(state, s);
  const cartDue = cart !== null && cart < at;
  const checkoutDue = checkout !== null && checkout < at;
  if (!cartDue && !checkoutDue) return state;
  // Rules with a dash: output ids without a source offset, so that the global actor does not take these facts for a
  // replay of this event's activity fact (actors/dedupe.ts).
  const abandonCartNow = (from: UserState) => {
    ctx.cancelTimer(USER_TIMERS.cart);
    return abandonCart(from, ctx, s, cart!, "a-cart");
  };
  const abandonCheckoutNow = (from: UserState) => {
    ctx.cancelTimer(USER_TIMERS.checkout);
    return abandonCheckout(from, ctx, s, checkout!, "a-checkout");
  };
  if (cartDue && checkoutDue) {
    return cart! <= checkout! ? abandonCheckoutNow(abandonCartNow(state)) : abandonCartNow(abandonCheckoutNow(state));
  }
  return cartDue ? abandonCartNow(state) : abandonCheckoutNow(state);
}

function abandonCart(state: UserState, ctx: ActorContext, s: DomainSettings, at: number, factRule: string): UserState {
  const alert = raiseAlert(ctx, "cart_abandoned", "info", { kind: "user", id: state.userId }, at, {
    cartValue: state.cart.value,
    units: state.cart.units,
    productIds: Object.keys(state.cart.items).sort(),
    lastChangeAt: state.cart.updatedAt,
  });
  ctx.emit("analytics", "global", {
    fact: "abandonment",
    factId: ctx.outputId(factRule),
    at,
    userId: state.userId,
    stage: "cart",
  });
  return {
    ...state,
    abandonedCarts: state.abandonedCarts + 1,
    cartAbandonedAt: iso(at),
    alerts: rememberAlert(state.alerts, alert, s.USER_RECENT_ALERTS),
  };
}

function abandonCheckout(
  state: UserState,
  ctx: ActorContext,
  s: DomainSettings,
  at: number,
  factRule: string,
): UserState {
  const checkout = state.checkout!;
  const alert = raiseAlert(ctx, "checkout_abandoned", "warning", { kind: "user", id: state.userId }, at, {
    startedAt: checkout.startedAt,
    cartValue: checkout.cartValue,
  });
  ctx.emit("analytics", "global", {
    fact: "abandonment",
    factId: ctx.outputId(factRule),
    at,
    userId: state.userId,
    stage: "checkout",
  });
  return {
    ...state,
    checkout: { ...checkout, abandoned: true },
    abandonedCheckouts: state.abandonedCheckouts + 1,
    alerts: rememberAlert(state.alerts, alert, s.USER_RECENT_ALERTS),
  };
}
