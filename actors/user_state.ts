/**
 * The user actor's state: plain JSON, served by GET /v1/users/{id}; persisted without the top-level fields still at
 * their initial value, which restoring fills (as it does for checkpoints written before a field existed).
 */
import type { AlertSummary } from "./alerts.ts";
import { hash52 } from "./hash.ts";
import { type Cart, EMPTY_CART, restoreCart } from "./cart.ts";
import type { FraudAssessment, PastOrder } from "./fraud.ts";
import type { FunnelStage, Session, SessionSummary } from "./session.ts";

/** How many recently viewed products a user's state keeps. */
export const RECENT_PRODUCTS_LIMIT = 20;
/** How many recommendation requests a user's state remembers. */
export const RECENT_RECOMMENDATION_REQUESTS = 10;
/** How many checkout start times a user's state remembers: what a late checkout is compared with. */
export const RECENT_CHECKOUTS = 10;

/** The latest order, for the order history summary. */
export interface OrderSummary {
  readonly orderId: string;
  readonly at: string;
  readonly total: number;
  readonly currency: string;
  readonly items: number;
  readonly units: number;
}

/** Order history summary. */
export interface OrderHistory {
  readonly count: number;
  /** Σ order totals in currency units (exact: kept as integer millis in `revenueMillis`). */
  readonly revenue: number;
  readonly revenueMillis: number;
  readonly averageOrderValue: number;
  readonly firstOrderAt: string | null;
  /** The order with the latest event time. */
  readonly lastOrder: OrderSummary | null;
  /** Most recent first, at most USER_RECENT_ORDERS: fraud signals and repeated-orderId detection. */
  readonly recent: readonly PastOrder[];
}

/** A checkout awaiting its order. */
export interface Checkout {
  readonly startedAt: string;
  readonly cartValue: number;
  /** `checkout_abandoned` was raised for it. */
  readonly abandoned: boolean;
}

/** What the user asked recommendations for (they are delivered on the `recommendations` topic). */
export interface RecommendationRequests {
  readonly count: number;
  readonly lastRequestedAt: string | null;
  /**
   * Their event times, most recent first: the rate limit compares a late view with each. What each was based on is on
   * the topic, and no reader of the state needs it here (restoring drops the `basedOn` of requests checkpointed
   * before 2026-12-06).
   */
  readonly recent: readonly { readonly at: string }[];
}

/** Everything the engine knows about one user. */
export interface UserState {
  readonly userId: string;
  /** Distinct events handled (repeated eventIds and orderIds excluded). */
  readonly eventCount: number;
  /** Repeated eventIds (or repeated orderIds of orders) that were ignored. */
  readonly duplicateEvents: number;
  readonly pageViews: number;
  readonly productViews: number;
  readonly searches: number;
  /** Most recent first, without duplicates, at most RECENT_PRODUCTS_LIMIT. */
  readonly recentProducts: readonly string[];
  readonly firstSeenAt: string | null;
  readonly lastSeenAt: string | null;
  readonly sessionCount: number;
  readonly session: Session | null;
  /** Earlier sessions, most recent first, at most USER_RECENT_SESSIONS. */
  readonly recentSessions: readonly SessionSummary[];
  /** Stage reached in the current session. */
  readonly funnelStage: FunnelStage | null;
  readonly cart: Cart;
  readonly checkout: Checkout | null;
  /**
   * Start times of the latest checkouts (event time, latest first, at most RECENT_CHECKOUTS): a late checkout followed
   * within CHECKOUT_ABANDON_MINUTES by one of them was taken over by it, not abandoned.
   */
  readonly recentCheckouts: readonly string[];
  readonly orders: OrderHistory;
  /** Products bought, most recent first, at most RECS_EXCLUDE_LIMIT: excluded from recommendations. */
  readonly purchasedProducts: readonly string[];
  /** The fraud assessment of the latest order (event time, as `orders.lastOrder`). */
  readonly fraud: (FraudAssessment & { readonly orderId: string }) | null;
  readonly abandonedCarts: number;
  /**
   * When the last `cart_abandoned` was raised (its deadline): a late cart change dated before the
   * abandoned cart's last change belongs to that abandonment and does not raise another.
   */
  readonly cartAbandonedAt: string | null;
  readonly abandonedCheckouts: number;
  /** Alerts about this user, newest first, at most USER_RECENT_ALERTS. */
  readonly alerts: readonly AlertSummary[];
  readonly recommendations: RecommendationRequests;
  /**
   * 52-bit hashes (actors/hash.ts) of the last USER_DEDUPE_EVENTS eventIds, oldest first: a retried
   * event is counted once. A hash takes 8 bytes where an id took about 64 in memory and 39 in JSON;
   * a new event is taken for a repeat with a chance of 256 in 2^52 (about 6·10^-14).
   */
  readonly seenEventHashes: readonly number[];
}

/**
 * A user state one step is building: its own copy of the state it was given, written in place until the step returns
 * it, so that an event copies the ~30 fields once instead of once per helper (the state given is never written).
 */
export type UserDraft = { -readonly [K in keyof UserState]: UserState[K] };

/** The state of a user never seen. */
export function initialUser(userId: string): UserState {
  return {
    userId,
    eventCount: 0,
    duplicateEvents: 0,
    pageViews: 0,
    productViews: 0,
    searches: 0,
    recentProducts: [],
    firstSeenAt: null,
    lastSeenAt: null,
    sessionCount: 0,
    session: null,
    recentSessions: [],
    funnelStage: null,
    cart: EMPTY_CART,
    checkout: null,
    recentCheckouts: [],
    orders: {
      count: 0,
      revenue: 0,
      revenueMillis: 0,
      averageOrderValue: 0,
      firstOrderAt: null,
      lastOrder: null,
      recent: [],
    },
    purchasedProducts: [],
    fraud: null,
    abandonedCarts: 0,
    cartAbandonedAt: null,
    abandonedCheckouts: 0,
    alerts: [],
    recommendations: { count: 0, lastRequestedAt: null, recent: [] },
    seenEventHashes: [],
  };
}

/**
 * Whether a top-level field holds its initial value, for each field `persistUser` may leave out: a new user's checkpoint
 * was mostly such fields (1,705 bytes of JSON, 2,218 as jsonb: above the 2 KB at which PostgreSQL compresses a row).
 * `cartAbandonedAt` only with no `cart_abandoned` among the alerts, from which restoring would otherwise take it.
 */
const AT_INITIAL: { readonly [K in keyof UserState]?: (value: UserState[K], state: UserState) => boolean } = {
  duplicateEvents: (n) => n === 0,
  pageViews: (n) => n === 0,
  productViews: (n) => n === 0,
  searches: (n) => n === 0,
  recentProducts: (list) => list.length === 0,
  sessionCount: (n) => n === 0,
  session: (session) => session === null,
  recentSessions: (list) => list.length === 0,
  funnelStage: (stage) => stage === null,
  cart: (cart) => cart === EMPTY_CART || isInitialCart(cart),
  checkout: (checkout) => checkout === null,
  recentCheckouts: (list) => list.length === 0,
  orders: (o) =>
    o.count === 0 && o.recent.length === 0 && o.lastOrder === null && o.firstOrderAt === null && o.revenue === 0 &&
    o.revenueMillis === 0 && o.averageOrderValue === 0 && Object.keys(o).length === 7,
  purchasedProducts: (list) => list.length === 0,
  fraud: (fraud) => fraud === null,
  abandonedCarts: (n) => n === 0,
  cartAbandonedAt: (at, state) => at === null && !state.alerts.some((a) => a.type === "cart_abandoned"),
  abandonedCheckouts: (n) => n === 0,
  alerts: (list) => list.length === 0,
  recommendations: (r) =>
    r.count === 0 && r.lastRequestedAt === null && r.recent.length === 0 && Object.keys(r).length === 3,
  seenEventHashes: (list) => list.length === 0,
};

/** A cart equal to EMPTY_CART, with none of the optional fields a cart gains once changed. */
function isInitialCart(cart: Cart): boolean {
  return cart.units === 0 && cart.value === 0 && cart.version === 0 && cart.updatedAt === null && !cart.converted &&
    Object.keys(cart.items).length === 0 && Object.keys(cart).length === 6;
}

/** The persisted form of a user: its state without the top-level fields at their initial value (see AT_INITIAL). */
export function persistUser(state: UserState): Partial<UserState> & { readonly userId: string } {
  const persisted: Record<string, unknown> = {};
  for (const field in state) {
    const value = state[field as keyof UserState];
    const atInitial = Object.hasOwn(AT_INITIAL, field)
      ? AT_INITIAL[field as keyof UserState] as (v: unknown, s: UserState) => boolean
      : undefined;
    if (atInitial === undefined || !atInitial(value, state)) persisted[field] = value;
  }
  return persisted as Partial<UserState> & { readonly userId: string };
}

/** Restores a persisted user, filling fields that older checkpoints lack and those `persistUser` leaves out. */
export function restoreUser(data: unknown): UserState {
  // Checkpoints written before 2026-12-03 kept the eventIds themselves.
  const { seenEventIds, ...stored } = data as Partial<UserState> & { userId: string; seenEventIds?: string[] };
  const base = { ...initialUser(stored.userId), ...stored };
  const restored = {
    ...base,
    cart: restoreCart(base.cart, base.orders.lastOrder?.at ?? null, base.checkout?.startedAt ?? null),
    cartAbandonedAt: stored.cartAbandonedAt !== undefined
      ? stored.cartAbandonedAt
      : lastCartAbandonment(stored.alerts ?? []),
    recommendations: requestsByTime(base.recommendations),
  };
  if (seenEventIds === undefined || stored.seenEventHashes !== undefined) return restored;
  return { ...restored, seenEventHashes: seenEventIds.map(hash52) };
}

/**
 * Recommendation requests as this release keeps them, by their time alone: a checkpoint written before 2026-12-06 kept
 * `basedOn` beside each time, which this release's checkpoints would otherwise carry until the requests aged out.
 */
function requestsByTime(requests: RecommendationRequests): RecommendationRequests {
  if (!requests.recent.some((r) => "basedOn" in r)) return requests;
  return { ...requests, recent: requests.recent.map((r) => ({ at: r.at })) };
}

/**
 * The deadline of the latest `cart_abandoned` among the remembered alerts, for a checkpoint written before 2026-12-04
 * (no `cartAbandonedAt`): without it a late change to the cart it reported re-armed the timer, a second alert.
 */
function lastCartAbandonment(alerts: readonly AlertSummary[]): string | null {
  let latest: string | null = null;
  for (const alert of alerts) {
    if (alert.type === "cart_abandoned" && (latest === null || Date.parse(alert.occurredAt) > Date.parse(latest))) {
      latest = alert.occurredAt;
    }
  }
  return latest;
}
