/**
 * The fraud score of an order: a weighted sum of signals, capped at 1; `fraud_suspected` is
 * raised at FRAUD_ALERT_THRESHOLD or more, listing the signals that fired. Every signal looks only
 * at the order and the user's earlier orders (bounded history), on event time:
 *
 * | signal | fires when |
 * |---|---|
 * | `high_total` | total > FRAUD_HIGH_TOTAL |
 * | `order_velocity` | more than FRAUD_VELOCITY_ORDERS earlier orders in the FRAUD_VELOCITY_MINUTES before it |
 * | `night_time` | placed between FRAUD_NIGHT_START_HOUR and FRAUD_NIGHT_END_HOUR, in UTC shifted by FRAUD_NIGHT_UTC_OFFSET_MINUTES (the event's occurredAt; the store's time zone is a setting, not a guess) |
 * | `first_order_high` | the user's first order and total > FRAUD_FIRST_ORDER_TOTAL |
 * | `aov_spike` | after FRAUD_AOV_MIN_ORDERS or more orders, total ≥ FRAUD_AOV_MULTIPLIER × the average order value |
 * | `distinct_payment_or_country` | FRAUD_DISTINCT_LIMIT or more distinct payment methods, or shipping countries (blank ones are none, case and surrounding spaces ignored), among the orders of the last FRAUD_DISTINCT_HOURS (this one included) |
 */
import { givenLabel } from "./labels.ts";
import { atLeastTimes, toMillis } from "./money.ts";
import type { DomainSettings } from "./settings.ts";
import { isNightHour, minutesMs } from "./settings.ts";

/** The names of the fraud signals. */
export type FraudSignal =
  | "high_total"
  | "order_velocity"
  | "night_time"
  | "first_order_high"
  | "aov_spike"
  | "distinct_payment_or_country";

/** An earlier order as the user's history keeps it. */
export interface PastOrder {
  readonly orderId: string;
  readonly at: string;
  readonly total: number;
  readonly paymentMethod?: string;
  readonly shippingCountry?: string;
}

/** The order being scored. */
export interface ScoredOrder {
  readonly at: number;
  readonly total: number;
  readonly paymentMethod?: string;
  readonly shippingCountry?: string;
}

/** What the user's history says before this order. */
export interface OrderHistoryView {
  readonly count: number;
  /** Σ totals of all earlier orders, in currency units. */
  readonly revenue: number;
  /** Earlier orders, most recent first, bounded. */
  readonly recent: readonly PastOrder[];
}

/** The outcome of scoring one order. */
export interface FraudAssessment {
  /** Weighted sum of the fired signals, capped at 1, rounded to 6 decimals. */
  readonly score: number;
  readonly signals: readonly FraudSignal[];
  readonly suspected: boolean;
}

/** Scores `order` against the user's earlier orders. */
export function assessFraud(order: ScoredOrder, history: OrderHistoryView, s: DomainSettings): FraudAssessment {
  const fired: [FraudSignal, number][] = [];
  if (order.total > s.FRAUD_HIGH_TOTAL) fired.push(["high_total", s.FRAUD_HIGH_TOTAL_WEIGHT]);

  const times = history.recent.map((o) => Date.parse(o.at));
  const velocityFrom = order.at - minutesMs(s.FRAUD_VELOCITY_MINUTES);
  const recentCount = times.filter((t) => t >= velocityFrom && t <= order.at).length;
  if (recentCount > s.FRAUD_VELOCITY_ORDERS) fired.push(["order_velocity", s.FRAUD_VELOCITY_WEIGHT]);

  if (isNight(order.at, s)) fired.push(["night_time", s.FRAUD_NIGHT_WEIGHT]);

  // Orders dated after this one may have arrived first (this order is late): they are not earlier. While the bounded
  // history still holds every order, the first-order and average signals count only those dated up to this one (one
  // of the same instant arrived before it: earlier, as for velocity); once it has dropped some, all orders (the
  // dropped ones are not known to be later).
  const complete = history.recent.length >= history.count;
  const earlier = complete ? history.recent.filter((_, i) => times[i] <= order.at) : null;
  const earlierCount = earlier ? earlier.length : history.count;
  const earlierRevenueMillis = earlier
    ? earlier.reduce((millis, o) => millis + toMillis(o.total), 0)
    : toMillis(history.revenue);

  if (earlierCount === 0 && order.total > s.FRAUD_FIRST_ORDER_TOTAL) {
    fired.push(["first_order_high", s.FRAUD_FIRST_ORDER_WEIGHT]);
  }

  // total ≥ multiplier × revenue / count, without the division and in integers, so that exactly 5× an average of
  // 10.20 (51 after three orders of 10.20) fires, where 5 × (30.6 / 3) is 51.00000000000001 in floating point, and
  // exactly 1.1× fires with FRAUD_AOV_MULTIPLIER=1.1 (1.1 × 3,000 is 3,300.0000000000005).
  if (
    earlierCount >= s.FRAUD_AOV_MIN_ORDERS && earlierRevenueMillis > 0 &&
    atLeastTimes(BigInt(toMillis(order.total)) * BigInt(earlierCount), s.FRAUD_AOV_MULTIPLIER, earlierRevenueMillis)
  ) {
    fired.push(["aov_spike", s.FRAUD_AOV_WEIGHT]);
  }

  const distinctFrom = order.at - minutesMs(s.FRAUD_DISTINCT_HOURS * 60);
  const window = [order, ...history.recent.filter((_, i) => times[i] >= distinctFrom && times[i] <= order.at)];
  const methods = distinctLabels(window.map((o) => o.paymentMethod));
  const countries = distinctLabels(window.map((o) => o.shippingCountry));
  if (methods.size >= s.FRAUD_DISTINCT_LIMIT || countries.size >= s.FRAUD_DISTINCT_LIMIT) {
    fired.push(["distinct_payment_or_country", s.FRAUD_DISTINCT_WEIGHT]);
  }

  const sum = fired.reduce((total, [, weight]) => total + weight, 0);
  const score = Math.round(Math.min(1, sum) * 1e6) / 1e6;
  return { score, signals: fired.map(([signal]) => signal), suspected: score >= s.FRAUD_ALERT_THRESHOLD };
}

/** Whether `at` falls in the night window, in the configured offset from UTC. */
export function isNight(at: number, s: DomainSettings): boolean {
  const local = new Date(at + s.FRAUD_NIGHT_UTC_OFFSET_MINUTES * 60_000);
  return isNightHour(local.getUTCHours(), s.FRAUD_NIGHT_START_HOUR, s.FRAUD_NIGHT_END_HOUR);
}

/**
 * The distinct given labels among `values`, told apart as people read them: one method or country spelled by different
 * clients (`card`, `Card`, ` CARD `) is one, not a signal.
 */
function distinctLabels(values: readonly (string | undefined)[]): Set<string> {
  const labels = new Set<string>();
  for (const value of values) {
    const label = givenLabel(value);
    if (label !== undefined) labels.add(label.trim().toLowerCase());
  }
  return labels;
}
