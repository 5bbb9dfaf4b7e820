/**
 * Facts: the internal messages user actors emit so that every piece of state has exactly one
 * owner. Product-side facts go to `product-events` keyed by productId (the product actor owns
 * views, carts, sales and co-occurrence); activity facts go to the one-partition `analytics`
 * topic keyed "global" (the global actor owns the rollups). Times are epoch milliseconds of the
 * event (event time); money is integer millis (actors/money.ts). Every fact carries `factId`, the
 * emitter's `ctx.outputId(rule)`, which the receiver uses to drop replayed copies (dedupe.ts).
 */
import { z } from "zod";
import type { LogRecord } from "../engine/log.ts";
import { recordJson, storedEventOf, validate } from "./decode.ts";
import { EVENT_TYPES, MAX_ID_LENGTH, storableText, type StoredEventOf } from "./events.ts";
import { FUNNEL_STAGES } from "./session.ts";
import { ValidationError } from "../engine/errors.ts";

/** Longest list of product ids a fact carries (co-occurrence, exclusions). */
export const MAX_FACT_LIST = 1000;

const id = storableText(1, MAX_ID_LENGTH);
const ids = z.array(id).max(MAX_FACT_LIST);
const millis = z.number().int().min(0);
const time = z.number().int();
const label = storableText(0, 256).optional();

const base = {
  factId: storableText(1, 1024),
  productId: id,
  userId: storableText(1, 128),
  /** The user's session the fact belongs to. */
  session: storableText(1, 512),
  at: time,
  /** When the event was received, only if before `at` (a fast client clock): product minutes are pruned from here. */
  receivedAt: time.optional(),
};

/** Present when the user asks for recommendations based on this product (rate-limited by the user actor). */
const recommend = z.object({ exclude: ids }).optional();

/** Product-side facts, one schema per kind. */
export const productFactSchemas = {
  product_viewed: z.object({
    fact: z.literal("product_viewed"),
    ...base,
    priceMillis: millis.optional(),
    category: label,
    brand: label,
    /** Products viewed earlier in the same session (new pairs only). */
    coViewed: ids,
    recommend,
  }),
  product_added_to_cart: z.object({
    fact: z.literal("product_added_to_cart"),
    ...base,
    quantity: z.number().int().min(1),
    priceMillis: millis,
    category: label,
    brand: label,
    recommend,
  }),
  product_removed_from_cart: z.object({
    fact: z.literal("product_removed_from_cart"),
    ...base,
    /** Units actually removed (never more than were in the cart). */
    quantity: z.number().int().min(0),
  }),
  product_ordered: z.object({
    fact: z.literal("product_ordered"),
    ...base,
    orderId: id,
    quantity: z.number().int().min(1),
    revenueMillis: millis,
    category: label,
    /** An earlier line of the same order has the same category: the order already counts in its category's orders. */
    repeatsCategory: z.boolean().optional(),
    /**
     * The category is the user's cart item's, not one the order states: the line counts under it, but it is no report
     * of the product's category at the order's time (the cart add reported it, at its own time).
     */
    categoryFromCart: z.boolean().optional(),
    /** Other products bought in the same order or earlier in the same session. */
    coBought: ids,
  }),
  co_occurrence: z.object({
    fact: z.literal("co_occurrence"),
    ...base,
    relation: z.enum(["viewed", "bought"]),
    related: ids,
  }),
} as const;

/** Any product-side fact. */
export const productFact = z.discriminatedUnion("fact", [
  productFactSchemas.product_viewed,
  productFactSchemas.product_added_to_cart,
  productFactSchemas.product_removed_from_cart,
  productFactSchemas.product_ordered,
  productFactSchemas.co_occurrence,
]);
/** A product-side fact. */
export type ProductFact = z.output<typeof productFact>;
/** A product-side fact of one kind. */
export type ProductFactOf<K extends ProductFact["fact"]> = Extract<ProductFact, { fact: K }>;

const userEventType = z.enum(EVENT_TYPES.filter((t) => t !== "inventory_updated") as [string, ...string[]]);

/** Activity facts for the global actor. */
export const analyticsFactSchemas = {
  /** One per distinct user event. */
  activity: z.object({
    fact: z.literal("activity"),
    factId: base.factId,
    at: time,
    /** When the event was received, present only if before `at` (a fast client clock): the analytics clock stops here. */
    receivedAt: time.optional(),
    userId: base.userId,
    session: base.session,
    type: userEventType,
    /** page_viewed: seconds to load. */
    loadTime: z.number().finite().min(0).optional(),
    /** order_completed: order total and revenue per category (millis; "unknown" without a category). */
    revenueMillis: millis.optional(),
    categoryRevenue: z.record(storableText(0, 256), millis).optional(),
    /** A non-empty cart reached checkout or an order (the opposite of an abandoned cart). */
    cartConverted: z.boolean().optional(),
    /** Funnel stages the user's session reached for the first time with this event, in order. */
    reached: z.array(z.enum(FUNNEL_STAGES)).min(1).optional(),
  }),
  /** A cart or checkout abandonment raised by a user's timer. */
  abandonment: z.object({
    fact: z.literal("abandonment"),
    factId: base.factId,
    at: time,
    userId: base.userId,
    stage: z.enum(["cart", "checkout"]),
  }),
} as const;

/** Any analytics fact. */
export const analyticsFact = z.discriminatedUnion("fact", [
  analyticsFactSchemas.activity,
  analyticsFactSchemas.abandonment,
]);
/** An analytics fact. */
export type AnalyticsFact = z.output<typeof analyticsFact>;

/**
 * The time a fact moves the analytics clock to: its event time, but never past the event's receipt,
 * as for the partitions of `events` (events.ts clockTimeOf). Else one client clock minutes fast moved
 * every window's end into the future: the latest minutes looked empty and low_traffic fired.
 */
export function clockTimeOfFact(fact: AnalyticsFact): number {
  return fact.fact === "activity" && fact.receivedAt !== undefined && fact.receivedAt < fact.at
    ? fact.receivedAt
    : fact.at;
}

/** A product fact's time taken no later than its event's receipt, as clockTimeOfFact takes an activity's. */
export function clockTimeOfProductFact(fact: ProductFact): number {
  return fact.receivedAt !== undefined && fact.receivedAt < fact.at ? fact.receivedAt : fact.at;
}

/** What the product actor handles: canonical inventory updates and product-side facts. */
export type ProductMessage = StoredEventOf<"inventory_updated"> | ProductFact;

/** Decodes a `product-events` record: a product fact, or a canonical `inventory_updated` event. */
export function decodeProductMessage(record: LogRecord): ProductMessage {
  const json = recordJson(record);
  if (typeof json === "object" && json !== null && "fact" in json) return validate(productFact, json, "product fact");
  const event = storedEventOf(json, record);
  if (event.type !== "inventory_updated") {
    throw new ValidationError(`product-events accepts inventory_updated events and product facts, not '${event.type}'`);
  }
  return event as StoredEventOf<"inventory_updated">;
}

/**
 * What an `events` partition's checkpoint publishes to `analytics` after its facts: how far its clock has come, so
 * that the global actor evaluates a minute only once every partition has published its facts up to it. `clock` null:
 * the partition is idle and has never had a record, so it holds nothing back.
 */
export const sourceWatermarkSchema = z.object({
  fact: z.literal("watermark"),
  partition: z.number().int().min(0),
  /** The partition count of `events` at the publisher. */
  partitions: z.number().int().min(1),
  clock: time.nullable(),
});
/** A source partition's watermark. */
export type SourceWatermark = z.output<typeof sourceWatermarkSchema>;

/** What the global actor handles: analytics facts and the watermarks of the partitions that publish them. */
export type GlobalMessage = AnalyticsFact | SourceWatermark;

const globalMessage = z.discriminatedUnion("fact", [
  analyticsFactSchemas.activity,
  analyticsFactSchemas.abandonment,
  sourceWatermarkSchema,
]);

/** Decodes an `analytics` record. */
export function decodeAnalyticsFact(record: LogRecord): GlobalMessage {
  return validate(globalMessage, recordJson(record), "analytics fact");
}
