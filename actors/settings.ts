/**
 * The domain's thresholds, windows and weights: one table, keyed by environment variable name,
 * each with its documented default, read from decimal text. The configuration module merges
 * this schema into its own; the actors only ever receive the parsed, frozen object.
 */
import { z } from "zod";
import { MAX_LOAD_TIME_SECONDS } from "./events.ts";

/**
 * Environment text in plain decimal digits (spaces around ignored) as a number; any other text stays
 * text and fails as such. `Number()` would read "0x10" as 16, "1e3" as 1000 and "  " as 0.
 */
export function fromDecimal(value: unknown): unknown {
  return typeof value === "string" && /^\s*-?(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : value;
}

/**
 * Environment text in decimal digits only (spaces around ignored) as a number, for integer settings: "8080.0" or
 * "1." stays text and fails as such, as README's "an integer takes digits only" says (fromDecimal read it as 8080).
 */
export function fromDigits(value: unknown): unknown {
  return typeof value === "string" && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
}

/** Numbers whose wrong type or form says how to write one; a value out of range gets zod's message naming the bound. */
const decimal = (message = "must be a decimal number, e.g. 0.5") =>
  z.number({ error: (issue) => issue.code === "invalid_type" ? message : undefined });
const integer = () => decimal("must be an integer in decimal digits, e.g. 30").int();
const read = <T extends z.ZodNumber>(schema: T) => z.preprocess(fromDecimal, schema);
/** An integer setting: digits only. */
const readInteger = <T extends z.ZodNumber>(schema: T) => z.preprocess(fromDigits, schema);

/** Unbounded numbers, for what never becomes milliseconds: weights, amounts, a multiplier, a load-time threshold. */
const positive = (value: number) => read(decimal().finite().positive()).default(value);
const nonNegative = (value: number) => read(decimal().finite().min(0)).default(value);
const count = (value: number, min = 1) => readInteger(integer().min(min).max(1_000_000_000)).default(value);

/**
 * The longest duration a setting may have, in each unit. Durations become milliseconds added to
 * event times (up to the end of year 9999) and stored as PostgreSQL bigints (timer deadlines);
 * CART_ABANDON_MINUTES=1e15 overflowed `next_timer_at`, and every checkpoint of the partition
 * failed from then on. Ten years keeps every sum far inside both bigint and exact doubles.
 */
export const TEN_YEARS = { hours: 87_600, minutes: 5_256_000, seconds: 315_360_000 } as const;
const atMostTenYears = (max: number) => ({ error: `must be at most ${max} (ten years)` });

/** A duration in minutes of at least a second (shorter ones round to 0 ms: a half-life of 0 divides by zero). */
const minutes = (value: number) =>
  read(
    decimal().finite().min(1 / 60, { error: "must be at least 0.0167 (one second)" })
      .max(TEN_YEARS.minutes, atMostTenYears(TEN_YEARS.minutes)),
  ).default(value);
/** A duration in whole minutes. */
const wholeMinutes = (value: number, min = 1) =>
  readInteger(integer().min(min).max(TEN_YEARS.minutes, atMostTenYears(TEN_YEARS.minutes))).default(value);
const hours = (value: number) =>
  read(decimal().finite().positive().max(TEN_YEARS.hours, atMostTenYears(TEN_YEARS.hours))).default(value);
const seconds = (value: number) =>
  read(decimal().finite().min(0).max(TEN_YEARS.seconds, atMostTenYears(TEN_YEARS.seconds))).default(value);
const ratio = (value: number) => read(decimal().finite().min(0).max(1)).default(value);
/**
 * The most product ids one fact carries (MAX_FACT_LIST, actors/facts.ts, which cannot be imported here without a cycle;
 * tests/unit/actors_user_test.ts keeps the two equal): it bounds RECS_EXCLUDE_LIMIT and RECS_SESSION_ITEMS.
 */
const FACT_PRODUCT_IDS = 1000;
const hour = (value: number) => readInteger(integer().min(0).max(24)).default(value);

/** Every domain setting: environment variable name → schema with its default. */
export const domainSettingsShape = {
  // Sessions, dedupe, bounded user history.
  SESSION_GAP_MINUTES: minutes(30),
  USER_DEDUPE_EVENTS: count(256),
  USER_RECENT_ALERTS: count(20),
  USER_RECENT_ORDERS: count(50),
  USER_RECENT_SESSIONS: count(5),
  // Cart and checkout abandonment.
  CART_ABANDON_MINUTES: minutes(30),
  CHECKOUT_ABANDON_MINUTES: minutes(30),
  // Fraud score: weighted signals, capped at 1.
  FRAUD_ALERT_THRESHOLD: ratio(0.7),
  FRAUD_HIGH_TOTAL: nonNegative(1000),
  FRAUD_HIGH_TOTAL_WEIGHT: ratio(0.3),
  FRAUD_VELOCITY_ORDERS: count(2, 0),
  FRAUD_VELOCITY_MINUTES: minutes(5),
  FRAUD_VELOCITY_WEIGHT: ratio(0.4),
  FRAUD_NIGHT_START_HOUR: hour(0),
  FRAUD_NIGHT_END_HOUR: hour(6),
  FRAUD_NIGHT_UTC_OFFSET_MINUTES: readInteger(integer().min(-14 * 60).max(14 * 60)).default(0),
  FRAUD_NIGHT_WEIGHT: ratio(0.2),
  FRAUD_FIRST_ORDER_TOTAL: nonNegative(500),
  FRAUD_FIRST_ORDER_WEIGHT: ratio(0.3),
  FRAUD_AOV_MULTIPLIER: positive(5),
  FRAUD_AOV_MIN_ORDERS: count(3),
  FRAUD_AOV_WEIGHT: ratio(0.4),
  FRAUD_DISTINCT_LIMIT: count(3, 2),
  FRAUD_DISTINCT_HOURS: hours(24),
  FRAUD_DISTINCT_WEIGHT: ratio(0.4),
  // Inventory.
  LOW_STOCK_THRESHOLD: count(10, 1),
  // Product statistics.
  TRENDING_HALF_LIFE_MINUTES: minutes(60),
  TRENDING_VIEW_WEIGHT: nonNegative(1),
  TRENDING_CART_WEIGHT: nonNegative(3),
  TRENDING_PURCHASE_WEIGHT: nonNegative(5),
  RELATED_CANDIDATES: count(50),
  FACT_DEDUPE_WINDOW: count(32_768, 1024),
  FACT_DEDUPE_RECENT_IDS: count(1024),
  // Recommendations.
  RECS_TOP_K: count(5),
  RECS_MIN_INTERVAL_SECONDS: seconds(60),
  // An order product's fact pairs it with this many order neighbours each side and the session's earlier purchases.
  RECS_SESSION_ITEMS: readInteger(
    integer().min(1).max(Math.floor(FACT_PRODUCT_IDS / 3), {
      error: `must be at most ${
        Math.floor(FACT_PRODUCT_IDS / 3)
      }, a third of the most product ids a fact carries (an order product's neighbours on both sides and the session's earlier purchases)`,
    }),
  ).default(10),
  // Above what a request carries, the older purchases remembered were recommended again.
  RECS_EXCLUDE_LIMIT: readInteger(
    integer().min(1).max(FACT_PRODUCT_IDS, {
      error: `must be at most ${FACT_PRODUCT_IDS}, the most product ids a recommendation request carries`,
    }),
  ).default(100),
  RECS_CO_BOUGHT_WEIGHT: nonNegative(3),
  // Global analytics and business alerts.
  ANALYTICS_RETENTION_MINUTES: wholeMinutes(1440, 60),
  ANALYTICS_HISTORY_DAYS: readInteger(integer().min(1).max(3650)).default(30),
  CATEGORY_WINDOW_MINUTES: wholeMinutes(5),
  LOW_CONVERSION_RATIO: ratio(0.02),
  LOW_CONVERSION_WINDOW_MINUTES: wholeMinutes(15),
  LOW_CONVERSION_MIN_CHECKOUTS: count(20),
  HIGH_ABANDONMENT_RATIO: ratio(0.8),
  HIGH_ABANDONMENT_WINDOW_MINUTES: wholeMinutes(15),
  HIGH_ABANDONMENT_MIN_CARTS: count(10),
  LOW_TRAFFIC_PAGE_VIEWS: count(100),
  LOW_TRAFFIC_WINDOW_MINUTES: wholeMinutes(10),
  SLOW_PAGES_SECONDS: positive(3),
  SLOW_PAGES_WINDOW_MINUTES: wholeMinutes(5),
  SLOW_PAGES_MIN_SAMPLES: count(10),
  BUSINESS_ALERT_COOLDOWN_MINUTES: wholeMinutes(60),
} as const;

/** The domain settings schema; unknown keys are ignored so it can parse a whole environment. */
export const domainSettingsSchema = z.object(domainSettingsShape);

/** The validated domain settings. */
export type DomainSettings = Readonly<z.output<typeof domainSettingsSchema>>;

/**
 * Windows the global actor sums over the minutes it keeps in memory: the business alerts' and the realtime revenue by
 * category's (actors/rollups.ts, `revenueByCategoryWindows`, which a wider window left summing only the memory).
 */
const MEMORY_WINDOWS = [
  "LOW_CONVERSION_WINDOW_MINUTES",
  "HIGH_ABANDONMENT_WINDOW_MINUTES",
  "LOW_TRAFFIC_WINDOW_MINUTES",
  "SLOW_PAGES_WINDOW_MINUTES",
  "CATEGORY_WINDOW_MINUTES",
] as const;

/**
 * Problems between domain settings that each pass alone, as messages naming both settings; the
 * configuration (engine/config.ts) refuses to start with any. A business alert's or revenue-by-category window longer
 * than ANALYTICS_RETENTION_MINUTES was silently cut to the retention (actors/global.ts, `evaluate`), and a
 * fraud threshold beyond the kept order history silently never fired.
 */
export function domainSettingsConflicts(s: DomainSettings): string[] {
  const windows = MEMORY_WINDOWS.filter((name) => s[name] > s.ANALYTICS_RETENTION_MINUTES).map((name) =>
    `Cannot evaluate ${name} over minutes the global actor no longer keeps: current value is ${s[name]}, ` +
    `above ANALYTICS_RETENTION_MINUTES (${s.ANALYTICS_RETENTION_MINUTES}); lower ${name} or raise ` +
    "ANALYTICS_RETENTION_MINUTES"
  );
  return [
    ...windows,
    ...unreachableThresholds(s),
    ...orderHistoryConflicts(s),
    ...fraudThresholdConflicts(s),
    ...emptyNightWindow(s),
  ];
}

/** Whether `hour` (0–23, store time) is in the night window from `start` (inclusive) to `end` (exclusive), wrapping. */
export function isNightHour(hour: number, start: number, end: number): boolean {
  return start <= end ? hour >= start && hour < end : hour >= start || hour < end;
}

/**
 * A night window holding no hour (start equal to end, or 24 to 0) while night_time weighs something: the signal never
 * fired, and nothing said so. A weight of 0 is the way to turn it off.
 */
function emptyNightWindow(s: DomainSettings): string[] {
  const { FRAUD_NIGHT_START_HOUR: start, FRAUD_NIGHT_END_HOUR: end } = s;
  const hours = Array.from({ length: 24 }, (_, hour) => isNightHour(hour, start, end));
  if (s.FRAUD_NIGHT_WEIGHT === 0 || hours.some(Boolean)) return [];
  return [
    `Cannot fire night_time: FRAUD_NIGHT_START_HOUR (${start}) to FRAUD_NIGHT_END_HOUR (${end}) holds no hour; ` +
    "set them apart (e.g. 0 and 6, or 22 and 6 across midnight) or set FRAUD_NIGHT_WEIGHT=0 to turn night_time off",
  ];
}

/** The fraud signals' weights: the score is their sum over the signals that fired, capped at 1 (actors/fraud.ts). */
const FRAUD_WEIGHTS = [
  "FRAUD_HIGH_TOTAL_WEIGHT",
  "FRAUD_VELOCITY_WEIGHT",
  "FRAUD_NIGHT_WEIGHT",
  "FRAUD_FIRST_ORDER_WEIGHT",
  "FRAUD_AOV_WEIGHT",
  "FRAUD_DISTINCT_WEIGHT",
] as const;

/**
 * A FRAUD_ALERT_THRESHOLD every order crosses or none can. A score is never below 0, so 0 raised fraud_suspected on
 * every order, listing no signal when none fired (the SPEC's alert lists the signals that fired); one above every weight
 * together (rounded as the score is) was never raised, and nothing said so. Every weight 0 turns the alert off.
 */
function fraudThresholdConflicts(s: DomainSettings): string[] {
  const threshold = s.FRAUD_ALERT_THRESHOLD;
  if (threshold <= 0) {
    return [
      `Cannot tell suspected orders from others: FRAUD_ALERT_THRESHOLD is ${threshold}, so every order would raise ` +
      "fraud_suspected, even one no signal fired on; raise FRAUD_ALERT_THRESHOLD above 0",
    ];
  }
  const sum = FRAUD_WEIGHTS.reduce((total, name) => total + s[name], 0);
  const highest = Math.round(Math.min(1, sum) * 1e6) / 1e6;
  if (sum === 0 || threshold <= highest) return [];
  return [
    `Cannot fire fraud_suspected: FRAUD_ALERT_THRESHOLD is ${threshold}, above ${highest}, the score of every signal ` +
    `firing at once (${FRAUD_WEIGHTS.join(" + ")}); lower FRAUD_ALERT_THRESHOLD or raise the weights ` +
    "(every weight 0 turns fraud alerts off)",
  ];
}

/**
 * Business alert thresholds no window can cross, so the alert was silently off: a ratio is never below 0 nor above 1,
 * and no average loadTime is above MAX_LOAD_TIME_SECONDS, the longest an event may carry.
 */
function unreachableThresholds(s: DomainSettings): string[] {
  const conflicts: string[] = [];
  if (s.LOW_CONVERSION_RATIO <= 0) {
    conflicts.push(
      `Cannot fire low_conversion: LOW_CONVERSION_RATIO is ${s.LOW_CONVERSION_RATIO}, and orders / checkouts is never ` +
        "below 0; raise LOW_CONVERSION_RATIO above 0",
    );
  }
  if (s.HIGH_ABANDONMENT_RATIO >= 1) {
    conflicts.push(
      `Cannot fire high_cart_abandonment: HIGH_ABANDONMENT_RATIO is ${s.HIGH_ABANDONMENT_RATIO}, and abandoned / ` +
        "(abandoned + converted) carts is never above 1; lower HIGH_ABANDONMENT_RATIO below 1",
    );
  }
  if (s.SLOW_PAGES_SECONDS >= MAX_LOAD_TIME_SECONDS) {
    conflicts.push(
      `Cannot fire slow_pages: SLOW_PAGES_SECONDS is ${s.SLOW_PAGES_SECONDS}, and no page's loadTime is accepted ` +
        `above ${MAX_LOAD_TIME_SECONDS} s; lower SLOW_PAGES_SECONDS below ${MAX_LOAD_TIME_SECONDS}`,
    );
  }
  return conflicts;
}

/**
 * Fraud signals that count a user's kept earlier orders (actors/fraud.ts) and so never fire when the history kept
 * (USER_RECENT_ORDERS) is too short to reach their threshold: order_velocity needs more than FRAUD_VELOCITY_ORDERS
 * earlier orders, distinct_payment_or_country FRAUD_DISTINCT_LIMIT orders counting the one scored.
 */
function orderHistoryConflicts(s: DomainSettings): string[] {
  const kept = s.USER_RECENT_ORDERS;
  const conflicts: string[] = [];
  if (s.FRAUD_VELOCITY_ORDERS >= kept) {
    conflicts.push(
      `Cannot fire order_velocity: FRAUD_VELOCITY_ORDERS is ${s.FRAUD_VELOCITY_ORDERS}, but USER_RECENT_ORDERS ` +
        `(${kept}) keeps at most ${kept} earlier orders, and the signal needs more than FRAUD_VELOCITY_ORDERS; ` +
        `raise USER_RECENT_ORDERS above ${s.FRAUD_VELOCITY_ORDERS} or lower FRAUD_VELOCITY_ORDERS`,
    );
  }
  if (s.FRAUD_DISTINCT_LIMIT > kept + 1) {
    conflicts.push(
      `Cannot fire distinct_payment_or_country: FRAUD_DISTINCT_LIMIT is ${s.FRAUD_DISTINCT_LIMIT}, but ` +
        `USER_RECENT_ORDERS (${kept}) keeps at most ${kept} earlier orders, so an order is compared with at most ` +
        `${kept + 1} payment methods or countries; raise USER_RECENT_ORDERS to at least ` +
        `${s.FRAUD_DISTINCT_LIMIT - 1} or lower FRAUD_DISTINCT_LIMIT`,
    );
  }
  return conflicts;
}

/** Names of every domain setting, for documentation and the configuration module. */
export const DOMAIN_SETTING_NAMES = Object.keys(domainSettingsShape) as (keyof typeof domainSettingsShape)[];

/** The documented defaults. */
export const DEFAULT_DOMAIN_SETTINGS: DomainSettings = Object.freeze(domainSettingsSchema.parse({}));

/** Defaults overridden by `overrides` (already typed values), validated; for tests and embedding. */
export function domainSettings(overrides: Partial<Record<keyof DomainSettings, number>> = {}): DomainSettings {
  return Object.freeze(domainSettingsSchema.parse({ ...DEFAULT_DOMAIN_SETTINGS, ...overrides }));
}

/** What each setting means, for the README and start-up errors. */
export const DOMAIN_SETTING_DOCS: Readonly<Record<keyof typeof domainSettingsShape, string>> = {
  SESSION_GAP_MINUTES: "event-time gap after which a user's next event starts a new session",
  USER_DEDUPE_EVENTS: "eventIds remembered per user (as 52-bit hashes); a repeat among them is counted once",
  USER_RECENT_ALERTS: "alerts kept in a user's state",
  USER_RECENT_ORDERS: "orders kept per user for fraud signals and repeated-orderId detection",
  USER_RECENT_SESSIONS: "finished sessions kept in a user's state",
  CART_ABANDON_MINUTES:
    "a non-empty cart with no checkout or order this long after its last change raises cart_abandoned",
  CHECKOUT_ABANDON_MINUTES: "a checkout with no order this long after it raises checkout_abandoned",
  FRAUD_ALERT_THRESHOLD: "fraud score (0–1) at which fraud_suspected is raised",
  FRAUD_HIGH_TOTAL: "order total above which the high_total signal fires",
  FRAUD_HIGH_TOTAL_WEIGHT: "weight of high_total",
  FRAUD_VELOCITY_ORDERS: "order_velocity fires with more than this many earlier orders in the velocity window",
  FRAUD_VELOCITY_MINUTES: "velocity window",
  FRAUD_VELOCITY_WEIGHT: "weight of order_velocity",
  FRAUD_NIGHT_START_HOUR: "night_time window start hour (inclusive)",
  FRAUD_NIGHT_END_HOUR: "night_time window end hour (exclusive); may wrap past midnight",
  FRAUD_NIGHT_UTC_OFFSET_MINUTES:
    "store time zone for night_time, as minutes from UTC (occurredAt is read in UTC plus this)",
  FRAUD_NIGHT_WEIGHT: "weight of night_time",
  FRAUD_FIRST_ORDER_TOTAL: "a user's first order above this fires first_order_high",
  FRAUD_FIRST_ORDER_WEIGHT: "weight of first_order_high",
  FRAUD_AOV_MULTIPLIER: "aov_spike fires when the total is at least this many times the average order value",
  FRAUD_AOV_MIN_ORDERS: "earlier orders needed before aov_spike applies",
  FRAUD_AOV_WEIGHT: "weight of aov_spike",
  FRAUD_DISTINCT_LIMIT: "distinct payment methods or shipping countries that fire distinct_payment_or_country",
  FRAUD_DISTINCT_HOURS: "window of distinct_payment_or_country",
  FRAUD_DISTINCT_WEIGHT: "weight of distinct_payment_or_country",
  LOW_STOCK_THRESHOLD: "stock below this raises low_inventory (once per crossing); 0 raises out_of_stock",
  TRENDING_HALF_LIFE_MINUTES: "half-life of the trending score (event time)",
  TRENDING_VIEW_WEIGHT: "trending weight of a view",
  TRENDING_CART_WEIGHT: "trending weight of a cart add",
  TRENDING_PURCHASE_WEIGHT: "trending weight of an order line",
  RELATED_CANDIDATES: "co-viewed and co-bought products counted per product (bounded top-K)",
  FACT_DEDUPE_WINDOW:
    "source offsets per partition within which replayed facts are recognised; must exceed CHECKPOINT_MAX_MESSAGES plus the largest batch (10000 records)",
  FACT_DEDUPE_RECENT_IDS: "ids of timer-raised facts and inventory events remembered per actor for dedupe",
  RECS_TOP_K: "recommendations per request",
  RECS_MIN_INTERVAL_SECONDS: "least event time between two recommendation requests of a user",
  RECS_SESSION_ITEMS: "recent products of a session paired into co-views and co-buys (and order neighbours paired)",
  RECS_EXCLUDE_LIMIT: "products bought remembered per user, and most products excluded from a recommendation",
  RECS_CO_BOUGHT_WEIGHT: "a co-buy counts this many co-views in the recommendation score",
  ANALYTICS_RETENTION_MINUTES:
    "minutes of rollups the global actor keeps in memory; older finished minutes are stored in PostgreSQL",
  ANALYTICS_HISTORY_DAYS:
    "days of minute rollups kept in PostgreSQL for windows beyond the memory; no window reaches further back",
  CATEGORY_WINDOW_MINUTES: "width of the revenue-by-category windows",
  LOW_CONVERSION_RATIO: "orders / checkouts below this raises low_conversion",
  LOW_CONVERSION_WINDOW_MINUTES: "window of low_conversion",
  LOW_CONVERSION_MIN_CHECKOUTS: "checkouts needed in the window before low_conversion applies",
  HIGH_ABANDONMENT_RATIO: "abandoned / (abandoned + converted) carts above this raises high_cart_abandonment",
  HIGH_ABANDONMENT_WINDOW_MINUTES: "window of high_cart_abandonment",
  HIGH_ABANDONMENT_MIN_CARTS: "cart outcomes needed in the window before high_cart_abandonment applies",
  LOW_TRAFFIC_PAGE_VIEWS: "fewer page views than this in the window raises low_traffic",
  LOW_TRAFFIC_WINDOW_MINUTES: "window of low_traffic",
  SLOW_PAGES_SECONDS: "average loadTime above this raises slow_pages",
  SLOW_PAGES_WINDOW_MINUTES: "window of slow_pages",
  SLOW_PAGES_MIN_SAMPLES: "page views with a loadTime needed before slow_pages applies",
  BUSINESS_ALERT_COOLDOWN_MINUTES: "least time between two business alerts of the same type",
};

/** Minutes or seconds as milliseconds. */
export const minutesMs = (minutes: number): number => Math.round(minutes * 60_000);
