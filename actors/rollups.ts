/**
 * Per-minute analytics rollups and the windowed queries over them. Counts are integers (money in
 * millis, load times in milliseconds), so a rollup does not depend on the order facts arrive in.
 * Active users and sessions are HyperLogLog sketches (precision 11, ≈2.3% error) while a minute is
 * among the latest ACTIVE_SKETCH_MINUTES; older minutes keep only the estimates. Facts reach the
 * global actor from every partition of `events`, so they arrive out of time order by as much as
 * partitions lag behind each other; a fact for a minute whose sketch is gone still counts in every
 * total, but no longer in that minute's active users and sessions.
 */
import type { AnalyticsFact } from "./facts.ts";
import { FUNNEL_STAGES, type FunnelStage } from "./session.ts";
import { HyperLogLog, type HyperLogLogData } from "./hyperloglog.ts";
import { fromMillis, ratioOf } from "./money.ts";
import { addTo } from "./records.ts";
import { hash52 } from "./hash.ts";

/** Precision of the per-minute active user and session sketches (2 KiB each when dense). */
export const ACTIVE_PRECISION = 11;
/** Minutes (behind the latest fact) whose sketches are kept: 1/5/15-minute unions, and partition lag. */
export const ACTIVE_SKETCH_MINUTES = 30;
/**
 * Minutes (behind the latest fact) whose abandonment hashes are kept. A replayed copy comes back after a failover
 * (a session timeout and a catch-up: about a minute) plus the lag of its partition; every hash kept is written by each
 * of the global actor's checkpoints, and keeping them for all ACTIVE_SKETCH_MINUTES wrote 1.5 MB per checkpoint at 50
 * abandonments a second.
 */
export const ABANDONMENT_DEDUPE_MINUTES = 10;
const MINUTE = 60_000;

/** One minute of activity: the stored counts plus the sketches that make its estimates exact to merge. */
export interface MinuteRollup extends StoredMinute {
  readonly users: HyperLogLog | null;
  readonly sessions: HyperLogLog | null;
  /**
   * Hashes (hash52) of the abandonment facts counted in this minute, kept with the sketches (null once frozen): their
   * ids carry no source offset, and the actor-wide ring of recent ids holds only the last FACT_DEDUPE_RECENT_IDS of
   * every user partition's, too few to recognise a replayed copy under load.
   */
  readonly abandonments: readonly number[] | null;
}

/** A rollup as persisted (sketches in their compact form). */
export type PersistedRollup = Omit<MinuteRollup, "users" | "sessions" | "abandonments"> & {
  readonly users: HyperLogLogData | null;
  readonly sessions: HyperLogLogData | null;
  /** Absent in rollups persisted before it was kept. */
  readonly abandonments?: readonly number[] | null;
};

/** Start of the minute containing `at`. */
export function minuteOf(at: number): number {
  return Math.floor(at / MINUTE) * MINUTE;
}

/** An empty rollup. */
export function emptyRollup(minute: number): MinuteRollup {
  return {
    minute,
    events: {},
    orders: 0,
    revenueMillis: 0,
    pageViews: 0,
    loadTimeMsSum: 0,
    loadTimeSamples: 0,
    checkouts: 0,
    cartsConverted: 0,
    cartsAbandoned: 0,
    checkoutsAbandoned: 0,
    categoryRevenueMillis: {},
    activeUsers: 0,
    activeSessions: 0,
    sessionsReached: {},
    users: HyperLogLog.empty(ACTIVE_PRECISION),
    sessions: HyperLogLog.empty(ACTIVE_PRECISION),
    abandonments: [],
  };
}

/** Counts one fact into its minute. */
export function addFact(rollup: MinuteRollup, fact: AnalyticsFact): MinuteRollup {
  if (fact.fact === "abandonment") {
    const abandonments = rollup.abandonments ? withHash(rollup.abandonments, hash52(fact.factId)) : null;
    return fact.stage === "cart"
      ? { ...rollup, abandonments, cartsAbandoned: rollup.cartsAbandoned + 1 }
      : { ...rollup, abandonments, checkoutsAbandoned: rollup.checkoutsAbandoned + 1 };
  }
  const events = { ...rollup.events, [fact.type]: (rollup.events[fact.type] ?? 0) + 1 };
  const next: { -readonly [K in keyof MinuteRollup]: MinuteRollup[K] } = { ...rollup, events };
  if (rollup.users) next.users = rollup.users.add(fact.userId);
  if (rollup.sessions) next.sessions = rollup.sessions.add(fact.session);
  if (fact.type === "page_viewed") {
    next.pageViews++;
    if (fact.loadTime !== undefined) {
      next.loadTimeMsSum += Math.round(fact.loadTime * 1000);
      next.loadTimeSamples++;
    }
  }
  if (fact.type === "checkout_started") next.checkouts++;
  if (fact.cartConverted) next.cartsConverted++;
  if (fact.reached) {
    const reached = { ...rollup.sessionsReached };
    for (const stage of fact.reached) addTo(reached, stage, 1);
    next.sessionsReached = reached;
  }
  if (fact.type === "order_completed") {
    next.orders++;
    next.revenueMillis += fact.revenueMillis ?? 0;
    const categories = { ...rollup.categoryRevenueMillis };
    for (const [category, millis] of Object.entries(fact.categoryRevenue ?? {})) addTo(categories, category, millis);
    next.categoryRevenueMillis = categories;
  }
  return next;
}

/** The rollup with its sketches replaced by their estimates (and its abandonment hashes dropped). */
export function freeze(rollup: MinuteRollup): MinuteRollup {
  if (!rollup.users && !rollup.sessions && !rollup.abandonments) return rollup;
  return { ...rollup, ...estimates(rollup), users: null, sessions: null, abandonments: null };
}

/** The rollup without its abandonment hashes (a minute past ABANDONMENT_DEDUPE_MINUTES). */
export function forgetAbandonments(rollup: MinuteRollup): MinuteRollup {
  return rollup.abandonments ? { ...rollup, abandonments: null } : rollup;
}

/** Whether the abandonment fact `factId` was counted in this minute (false once its hashes are dropped). */
export function countedAbandonment(rollup: MinuteRollup, factId: string): boolean {
  if (!rollup.abandonments) return false;
  const hash = hash52(factId);
  return rollup.abandonments[firstNotBelow(rollup.abandonments, hash)] === hash;
}

/** Index of the first of the ascending `hashes` not below `hash`. */
function firstNotBelow(hashes: readonly number[], hash: number): number {
  let lo = 0;
  let hi = hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hashes[mid] < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The ascending `hashes` with `hash` inserted: sorted, so that a minute does not depend on the order facts arrive in. */
function withHash(hashes: readonly number[], hash: number): number[] {
  const at = firstNotBelow(hashes, hash);
  return [...hashes.slice(0, at), hash, ...hashes.slice(at)];
}

/** Active users and sessions of a minute. */
export function estimates(rollup: MinuteRollup): { activeUsers: number; activeSessions: number } {
  return {
    activeUsers: rollup.users ? rollup.users.estimate() : rollup.activeUsers,
    activeSessions: rollup.sessions ? rollup.sessions.estimate() : rollup.activeSessions,
  };
}

/**
 * Persisted forms of the rollups persisted so far: a rollup is never changed (a fact makes a new one), so a minute that
 * did not change persists to the very same object, which tells a checkpoint not to write it again (engine/actor.ts
 * PersistedParts), and persisting a day of minutes costs only those that changed.
 */
const persisted = new WeakMap<MinuteRollup, PersistedRollup>();

/** Persisted form of a rollup; the same (frozen) object for the same rollup. */
export function persistRollup(rollup: MinuteRollup): PersistedRollup {
  let data = persisted.get(rollup);
  if (data === undefined) {
    data = Object.freeze({
      ...rollup,
      ...estimates(rollup),
      users: rollup.users?.toJSON() ?? null,
      sessions: rollup.sessions?.toJSON() ?? null,
    });
    persisted.set(rollup, data);
  }
  return data;
}

/** Inverse of `persistRollup`. */
export function restoreRollup(data: PersistedRollup): MinuteRollup {
  return {
    ...data,
    // Rollups persisted before sessions were counted per stage count none.
    sessionsReached: data.sessionsReached ?? {},
    users: data.users ? HyperLogLog.fromJSON(data.users) : null,
    sessions: data.sessions ? HyperLogLog.fromJSON(data.sessions) : null,
    abandonments: data.abandonments ?? null,
  };
}

/** A finished minute as stored in PostgreSQL (`analytics_minutes`): counts and its estimates, no sketches. */
export interface StoredMinute {
  /** Start of the minute, epoch ms. */
  readonly minute: number;
  readonly events: Readonly<Record<string, number>>;
  readonly orders: number;
  readonly revenueMillis: number;
  readonly pageViews: number;
  readonly loadTimeMsSum: number;
  readonly loadTimeSamples: number;
  readonly checkouts: number;
  readonly cartsConverted: number;
  readonly cartsAbandoned: number;
  readonly checkoutsAbandoned: number;
  readonly categoryRevenueMillis: Readonly<Record<string, number>>;
  /** Estimates; authoritative once the sketches are dropped. */
  readonly activeUsers: number;
  readonly activeSessions: number;
  /** Funnel stage -> sessions that reached it in this minute (absent stages: none). */
  readonly sessionsReached: Readonly<Record<string, number>>;
}

/** The stored form of a rollup: sketches replaced by their estimates, keys sorted (jsonb keeps no order). */
export function storedMinute(rollup: MinuteRollup): StoredMinute {
  const { users: _u, sessions: _s, abandonments: _a, ...counts } = freeze(rollup);
  return {
    ...counts,
    events: sorted(counts.events),
    categoryRevenueMillis: sorted(counts.categoryRevenueMillis),
    sessionsReached: sorted(counts.sessionsReached),
  };
}

/** A stored minute (or a stored sum of minutes) as a frozen rollup that window totals can count. */
export function fromStoredMinute(stored: StoredMinute): MinuteRollup {
  return { ...stored, users: null, sessions: null, abandonments: null };
}

const sorted = (record: Readonly<Record<string, number>>): Record<string, number> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** Totals of the minutes in [from, to). */
export interface WindowTotals {
  readonly from: string;
  readonly to: string;
  readonly events: Readonly<Record<string, number>>;
  readonly orders: number;
  readonly revenue: number;
  readonly pageViews: number;
  readonly averageLoadTimeSeconds: number;
  readonly loadTimeSamples: number;
  readonly checkouts: number;
  readonly cartsConverted: number;
  readonly cartsAbandoned: number;
  readonly checkoutsAbandoned: number;
  /** Union of the minute sketches when all are kept, else the sum of minute estimates (an upper bound). */
  readonly activeUsers: number;
  readonly activeSessions: number;
  readonly revenueByCategory: Readonly<Record<string, number>>;
  /** Step conversions of the funnel over the window, as ratios of event counts. */
  readonly funnel: Readonly<Record<string, number>>;
  /** Sessions that reached each funnel stage within the window. */
  readonly sessionsReached: Readonly<Record<FunnelStage, number>>;
  /** Each stage's sessions over the previous stage's, and purchases over visits. */
  readonly sessionConversion: Readonly<Record<string, number>>;
}

/** Aggregates the rollups of the minutes in [from, to); `sketches: false` skips the active-user unions. */
export function windowTotals(
  minutes: readonly MinuteRollup[],
  from: number,
  to: number,
  options: { sketches?: boolean } = {},
): WindowTotals {
  let first = minutes.length;
  while (first > 0 && minutes[first - 1].minute >= from) first--;
  let last = first;
  while (last < minutes.length && minutes[last].minute < to) last++;
  const inside = minutes.slice(first, last);
  const unions = options.sketches ?? true;
  const events: Record<string, number> = {};
  const categories: Record<string, number> = {};
  const reached = Object.fromEntries(FUNNEL_STAGES.map((stage) => [stage, 0])) as Record<FunnelStage, number>;
  let users: HyperLogLog | null = unions ? HyperLogLog.empty(ACTIVE_PRECISION) : null;
  let sessions: HyperLogLog | null = unions ? HyperLogLog.empty(ACTIVE_PRECISION) : null;
  let userSum = 0;
  let sessionSum = 0;
  const t = {
    orders: 0,
    revenueMillis: 0,
    pageViews: 0,
    loadTimeMsSum: 0,
    loadTimeSamples: 0,
    checkouts: 0,
    cartsConverted: 0,
    cartsAbandoned: 0,
    checkoutsAbandoned: 0,
  };
  for (const m of inside) {
    for (const [type, n] of Object.entries(m.events)) events[type] = (events[type] ?? 0) + n;
    for (const [category, millis] of Object.entries(m.categoryRevenueMillis)) addTo(categories, category, millis);
    for (const stage of FUNNEL_STAGES) reached[stage] += m.sessionsReached[stage] ?? 0;
    for (const key of Object.keys(t) as (keyof typeof t)[]) t[key] += m[key];
    users = users && m.users ? users.merge(m.users) : null;
    sessions = sessions && m.sessions ? sessions.merge(m.sessions) : null;
    const e = estimates(m);
    userSum += e.activeUsers;
    sessionSum += e.activeSessions;
  }
  const n = (type: string) => events[type] ?? 0;
  return {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    events,
    orders: t.orders,
    revenue: fromMillis(t.revenueMillis),
    pageViews: t.pageViews,
    averageLoadTimeSeconds: t.loadTimeSamples > 0 ? Math.round(t.loadTimeMsSum / t.loadTimeSamples) / 1000 : 0,
    loadTimeSamples: t.loadTimeSamples,
    checkouts: t.checkouts,
    cartsConverted: t.cartsConverted,
    cartsAbandoned: t.cartsAbandoned,
    checkoutsAbandoned: t.checkoutsAbandoned,
    activeUsers: users ? users.estimate() : userSum,
    activeSessions: sessions ? sessions.estimate() : sessionSum,
    revenueByCategory: Object.fromEntries(Object.entries(categories).map(([c, millis]) => [c, fromMillis(millis)])),
    funnel: {
      viewToCart: ratioOf(n("product_added_to_cart"), n("product_viewed")),
      cartToCheckout: ratioOf(n("checkout_started"), n("product_added_to_cart")),
      checkoutToOrder: ratioOf(t.orders, t.checkouts),
      viewToOrder: ratioOf(t.orders, n("product_viewed")),
    },
    sessionsReached: reached,
    sessionConversion: {
      visitToView: ratioOf(reached.viewed_product, reached.visited),
      viewToCart: ratioOf(reached.added_to_cart, reached.viewed_product),
      cartToCheckout: ratioOf(reached.started_checkout, reached.added_to_cart),
      checkoutToPurchase: ratioOf(reached.purchased, reached.started_checkout),
      visitToPurchase: ratioOf(reached.purchased, reached.visited),
    },
  };
}

/**
 * Revenue by category in the latest `count` consecutive windows of `windowMinutes` up to `to` (the end of the latest
 * minute, exclusive), oldest first, quiet windows included (empty): the hour of the default 5-minute windows, not the
 * windows that happen to hold a minute (those spread over the whole memory after a quiet spell). None start before the
 * window of the oldest minute.
 */
export function revenueByCategoryWindows(
  minutes: readonly MinuteRollup[],
  windowMinutes: number,
  count: number,
  to: number,
): { windowStart: string; windowEnd: string; revenue: Record<string, number> }[] {
  if (minutes.length === 0) return [];
  const width = windowMinutes * MINUTE;
  const last = Math.floor((to - MINUTE) / width) * width;
  const first = Math.max(last - (count - 1) * width, Math.floor(minutes[0].minute / width) * width);
  const windows: Record<string, number>[] = [];
  for (let start = first; start <= last; start += width) windows.push({});
  for (const m of minutes) {
    if (m.minute < first || m.minute >= to) continue;
    const totals = windows[Math.floor((m.minute - first) / width)];
    for (const [category, millis] of Object.entries(m.categoryRevenueMillis)) addTo(totals, category, millis);
  }
  return windows.map((totals, i) => ({
    windowStart: new Date(first + i * width).toISOString(),
    windowEnd: new Date(first + (i + 1) * width).toISOString(),
    revenue: Object.fromEntries(Object.entries(totals).map(([c, millis]) => [c, fromMillis(millis)])),
  }));
}
