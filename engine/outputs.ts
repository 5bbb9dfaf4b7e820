/**
 * The contracts of the `alerts` and `recommendations` topics (SPEC § Topics), and of the
 * `analyticsHistory` and `productMinutes` stored outputs. The runtime projects them into PostgreSQL for queries;
 * payloads that do not match are published but not projected (stored outputs: dropped), and logged.
 */
import { z } from "zod";

/** An alert as published on `alerts`. */
export const alertSchema = z.object({
  alertId: z.string().min(1),
  type: z.string().min(1),
  severity: z.string().min(1),
  subject: z.object({ kind: z.string().min(1), id: z.string().min(1) }),
  occurredAt: z.iso.datetime({ offset: true }),
  details: z.record(z.string(), z.unknown()).default({}),
});
/** An alert as published on `alerts`. */
export type Alert = z.output<typeof alertSchema>;

/** Recommendations as published on `recommendations`. */
export const recommendationSchema = z.object({
  /** Derived from the input that asked for it (identical on replay); GET /v1/users/{id}/recommendations returns it. */
  recommendationId: z.string().min(1).optional(),
  userId: z.string().min(1),
  basedOn: z.unknown(),
  items: z.array(z.object({ productId: z.string(), score: z.number() })),
  generatedAt: z.iso.datetime({ offset: true }),
});
/** Recommendations as published on `recommendations`. */
export type Recommendation = z.output<typeof recommendationSchema>;

const count = z.number().int().min(0);
const millis = z.number().int();

/** A finished minute of the global analytics, as `analytics_minutes` stores it. */
export const analyticsMinuteSchema = z.object({
  /** Start of the minute, epoch ms. */
  minute: z.number().int(),
  events: z.record(z.string(), count),
  orders: count,
  revenueMillis: millis,
  pageViews: count,
  loadTimeMsSum: count,
  loadTimeSamples: count,
  checkouts: count,
  cartsConverted: count,
  cartsAbandoned: count,
  checkoutsAbandoned: count,
  categoryRevenueMillis: z.record(z.string(), millis),
  activeUsers: count,
  activeSessions: count,
  /** Funnel stage -> sessions that reached it in this minute. */
  sessionsReached: z.record(z.string(), count),
});
/** A finished minute of the global analytics. */
export type AnalyticsMinute = z.output<typeof analyticsMinuteSchema>;

/** Minutes that left the global actor's memory, and the oldest minute the history keeps. */
export const analyticsHistorySchema = z.object({
  minutes: z.array(analyticsMinuteSchema),
  /** Stored minutes before this (epoch ms) are deleted. */
  keepFrom: z.number().int(),
});
/** Minutes that left the global actor's memory, and the oldest minute the history keeps. */
export type AnalyticsHistory = z.output<typeof analyticsHistorySchema>;

/**
 * What one product fact adds to its product's minute in `product_minutes` (a delta, not a total);
 * the partition worker adds up the deltas of a checkpoint per product, minute and category (product_minutes.ts).
 */
export const productMinuteSchema = z.object({
  productId: z.string().min(1),
  /** Start of the minute of the fact's event time, epoch ms. */
  minute: z.number().int().multipleOf(60_000),
  /** The category the fact came with, else the product's; the product's brand after the fact (null: not known yet). */
  category: z.string().nullable(),
  brand: z.string().nullable(),
  views: count,
  cartAdds: count,
  /** Orders containing the product. */
  orders: count,
  /**
   * Of those, the orders counted in the category's orders: not one whose earlier line was of the same category, so
   * that an order counts once per category (absent: all of `orders`).
   */
  categoryOrders: count.optional(),
  /** Units sold. */
  units: count,
  revenueMillis: millis,
  /** Stored minutes of this partition before this (epoch ms) are past ANALYTICS_HISTORY_DAYS and are deleted. */
  keepFrom: z.number().int(),
});
/** What one product fact adds to its product's minute. */
export type ProductMinute = z.output<typeof productMinuteSchema>;

/** Output projections a checkpoint writes together with the states. */
export interface Projections {
  readonly alerts: readonly Alert[];
  readonly recommendations: readonly Recommendation[];
  readonly analyticsHistory: readonly AnalyticsHistory[];
  /** Product minute deltas since the last checkpoint, one per product and minute. */
  readonly productMinutes: readonly ProductMinute[];
}

/** No projections. */
export const NO_PROJECTIONS: Projections = Object.freeze({
  alerts: [],
  recommendations: [],
  analyticsHistory: [],
  productMinutes: [],
});
