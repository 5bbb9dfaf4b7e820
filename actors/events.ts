/**
 * The canonical storefront events: one zod schema per type, the single source of truth for
 * validation at the HTTP edge, for decoding records in the actors, and for TypeScript types.
 */
import { z } from "zod";
import { parseTime } from "./time_parse.ts";

/** Longest accepted user id, per the specification. */
export const MAX_USER_ID_LENGTH = 128;
/** Longest accepted product (and order) id. */
export const MAX_ID_LENGTH = 256;
/** Events dated further than this into the future are rejected at ingestion. */
export const DEFAULT_MAX_FUTURE_MS = 5 * 60_000;
/**
 * The furthest an event read from the log may be dated after its `receivedAt`, and so the largest
 * MAX_EVENT_FUTURE_MS: a typo (2062 for 2026) would move its partition's clock decades ahead and
 * expire every windowed history before it.
 */
export const MAX_AHEAD_OF_RECEIPT_MS = 86_400_000;

/** Largest price, total or line value (price × quantity) accepted: sums stay exact in integer thousandths. */
export const MAX_AMOUNT = 1_000_000_000;
/** Largest quantity of one product in one cart change or order line. */
export const MAX_QUANTITY = 1_000_000;
/** Longest page load time accepted, in seconds: anything longer is a client's clock or unit error. */
export const MAX_LOAD_TIME_SECONDS = 3_600;

/**
 * Free text of `min`–`max` characters that PostgreSQL can store: no U+0000 and no unpaired UTF-16
 * surrogate (JSON allows both as escapes, jsonb refuses them), or an accepted event carrying one
 * would fail every checkpoint of its partition.
 */
export function storableText(min: number, max: number): z.ZodString {
  return z.string().min(min).max(max)
    .refine((value) => !value.includes("\u0000"), { message: "must not contain the NUL character (U+0000)" })
    .refine((value) => value.isWellFormed(), { message: "must not contain an unpaired UTF-16 surrogate" });
}

const id = storableText(1, MAX_ID_LENGTH);
/** A category name: it becomes a key of revenue by category, where `__proto__` would be dropped on the way. */
const category = storableText(0, 256).refine((value) => value !== "__proto__", {
  message: 'must not be "__proto__" (categories are keys of revenue by category)',
});
const userId = storableText(1, MAX_USER_ID_LENGTH);
const money = z.number().finite().min(0).max(MAX_AMOUNT);
const quantity = z.number().int().min(1).max(MAX_QUANTITY);
/** `price × quantity` of a cart change or order line within MAX_AMOUNT. */
const lineValue = {
  check: (line: { quantity?: number; price: number }) => line.price * (line.quantity ?? 1) <= MAX_AMOUNT,
  message: { message: `price × quantity must be at most ${MAX_AMOUNT}`, path: ["price"] },
};
/**
 * Instants an event may carry (epoch ms): from the Unix epoch to the end of year 9999. PostgreSQL
 * refuses year 0 and ISO text past 9999 ("+010000-…"), and an accepted event it cannot store
 * would fail every checkpoint of its partition; nothing in a shop happened before 1970.
 */
export const EARLIEST_TIME_MS = 0;
export const LATEST_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Whether an instant (epoch ms) is within the range events and queries may use. */
export function isStorableTime(ms: number): boolean {
  return ms >= EARLIEST_TIME_MS && ms <= LATEST_TIME_MS;
}

/**
 * RFC 3339 time text with its `T` and `Z` in upper case: RFC 3339 allows them in lower case, which
 * the check below (zod's ISO datetime) refuses. Every other character of such text is a digit or
 * punctuation, so upper-casing it changes nothing else. Anything but a string is returned as is.
 */
export function upperCaseTime<T>(value: T): T {
  return typeof value === "string" && LOWER_T_OR_Z.test(value) ? value.toUpperCase() as T : value;
}
const LOWER_T_OR_Z = /[tz]/;

/** A positive offset whose `+` a URL query turned into a space (`since=…T00:00:00+01:00` written unencoded). */
const SPACE_FOR_PLUS = /T\d\d:\d\d(:\d\d(\.\d+)?)? \d\d:\d\d$/i;

/** Why text is not RFC 3339, with the likely cause when a URL query decoded its `+` into a space. */
function notRfc3339(input: unknown): string {
  const message = "must be an RFC 3339 time with an offset, e.g. 2026-01-01T00:00:00Z or 2026-01-01T01:00:00+01:00";
  return typeof input === "string" && SPACE_FOR_PLUS.test(input)
    ? `${message} (a space stands before the offset: in a URL query, write its + as %2B)`
    : message;
}

/**
 * RFC 3339 text with an offset, of an instant between 1970 and the end of 9999 (UTC). Text that is
 * not RFC 3339 gets that one problem (`abort`), not also the range's: its Date.parse is NaN.
 */
export const timestamp = z.iso.datetime({ offset: true, abort: true, error: (issue) => notRfc3339(issue.input) })
  .refine((text) => isStorableTime(parseTime(text)), {
    message: "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z",
  });

const envelope = {
  eventId: z.uuid().optional().describe("Idempotency key; the server assigns a UUIDv7 when absent"),
  userId,
  sessionId: storableText(1, 256).optional().describe("Client session id; a change starts a new session"),
  occurredAt: timestamp.optional().describe(
    "RFC 3339 time of the event; defaults to the receive time; rejected when too far in the future (default 5 minutes)",
  ),
};

/**
 * The envelope's fields alone, `userId` optional: checked for an event whose `type` is unknown, so
 * that one answer still lists every problem the envelope has.
 */
export const eventEnvelope = z.object({ ...envelope, userId: userId.optional() });

const lineItem = z.object({
  productId: id,
  quantity,
  price: money,
  category: category.optional(),
}).refine(lineValue.check, lineValue.message);

/** Every event type with its properties. */
export const eventSchemas = {
  page_viewed: z.object({
    ...envelope,
    type: z.literal("page_viewed"),
    properties: z.object({
      url: storableText(1, 4096),
      referrer: storableText(0, 4096).optional(),
      title: storableText(0, 1024).optional(),
      loadTime: z.number().finite().min(0).max(MAX_LOAD_TIME_SECONDS).optional(),
    }),
  }).meta({ id: "PageViewedEvent", description: "A storefront page was viewed; `loadTime` in seconds." }),
  product_viewed: z.object({
    ...envelope,
    type: z.literal("product_viewed"),
    properties: z.object({
      productId: id,
      price: money.optional(),
      category: category.optional(),
      brand: storableText(0, 256).optional(),
    }),
  }).meta({ id: "ProductViewedEvent", description: "A product page or tile was viewed." }),
  search_performed: z.object({
    ...envelope,
    type: z.literal("search_performed"),
    properties: z.object({
      query: storableText(0, 1024),
      resultsCount: z.number().int().min(0).optional(),
    }),
  }).meta({ id: "SearchPerformedEvent", description: "A search was run." }),
  product_added_to_cart: z.object({
    ...envelope,
    type: z.literal("product_added_to_cart"),
    properties: z.object({
      productId: id,
      quantity: quantity.default(1),
      price: money,
      category: category.optional(),
      brand: storableText(0, 256).optional(),
    }).refine(lineValue.check, lineValue.message),
  }).meta({
    id: "ProductAddedToCartEvent",
    description: "A product was added to the cart (`quantity` defaults to 1).",
  }),
  product_removed_from_cart: z.object({
    ...envelope,
    type: z.literal("product_removed_from_cart"),
    properties: z.object({
      productId: id,
      quantity: quantity.optional(),
    }),
  }).meta({
    id: "ProductRemovedFromCartEvent",
    description: "A product was removed from the cart (no `quantity`: all of it).",
  }),
  checkout_started: z.object({
    ...envelope,
    type: z.literal("checkout_started"),
    properties: z.object({ cartValue: money.optional() }).default({}),
  }).meta({ id: "CheckoutStartedEvent", description: "Checkout began." }),
  order_completed: z.object({
    ...envelope,
    type: z.literal("order_completed"),
    properties: z.object({
      orderId: id,
      items: z.array(lineItem).min(1).max(1000),
      total: money,
      currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code such as USD").default("USD")
        .describe("ISO 4217 code (the HTTP edge refuses three letters that are none: actors/currency.ts)"),
      paymentMethod: storableText(0, 64).optional(),
      shippingCountry: storableText(0, 64).optional(),
    }),
  }).meta({ id: "OrderCompletedEvent", description: "An order was placed (`currency` defaults to USD)." }),
  inventory_updated: z.object({
    ...envelope,
    userId: userId.optional(),
    type: z.literal("inventory_updated"),
    properties: z.object({
      productId: id,
      stock: z.number().int().min(0),
    }),
  }).meta({
    id: "InventoryUpdatedEvent",
    description: "A product's stock level; keyed by product, so `userId` is optional.",
  }),
} as const;

/** The names of all event types. */
export type EventType = keyof typeof eventSchemas;
/** All event types, in specification order. */
export const EVENT_TYPES = Object.keys(eventSchemas) as EventType[];

/** An event as posted by a client, after validation. */
export const incomingEvent = z.discriminatedUnion(
  "type",
  Object.values(eventSchemas) as [
    (typeof eventSchemas)[EventType],
    ...(typeof eventSchemas)[EventType][],
  ],
).meta({
  id: "Event",
  description: "One storefront event; `type` selects the shape of `properties`.",
  discriminator: { propertyName: "type" },
});
/** An event as posted, after validation and defaults. */
export type IncomingEvent = z.output<typeof incomingEvent>;

/** Fields the server fills in before an event is appended to the log. */
const stored = { eventId: z.uuid(), occurredAt: timestamp, receivedAt: timestamp };

/** An event as stored in the log: id and times always present. */
export const storedEvent = z.discriminatedUnion(
  "type",
  Object.values(eventSchemas).map((s) => s.extend(stored)) as unknown as [
    z.ZodObject,
    ...z.ZodObject[],
  ],
);
/** An event as stored in the log and handled by actors. */
export type StoredEvent = IncomingEvent & { eventId: string; occurredAt: string; receivedAt: string };
/** A stored event of one type. */
export type StoredEventOf<T extends EventType> = Extract<StoredEvent, { type: T }>;

/**
 * The time an event moves its partition's clock to: when it occurred, but never after it was
 * received. A client clock a few minutes fast (accepted up to MAX_EVENT_FUTURE_MS) would otherwise
 * carry every other key of the partition past their timers' deadlines early.
 */
export function clockTimeOf(event: StoredEvent): number {
  const occurred = parseTime(event.occurredAt);
  const received = parseTime(event.receivedAt);
  return occurred < received ? occurred : received;
}

/** The key an event is partitioned by: the product for inventory, otherwise the user. */
export function partitionKey(event: IncomingEvent): string {
  return event.type === "inventory_updated" ? event.properties.productId : event.userId;
}
