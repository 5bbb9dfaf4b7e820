/**
 * The canonical storefront events: one zod schema per type, the single source of truth for
 * validation at the HTTP edge, for decoding records in the actors, and for TypeScript types.
 */
import { z } from "zod";

/** Longest accepted user id, per the specification. */
export const MAX_USER_ID_LENGTH = 128;
/** Events dated further than this into the future are rejected at ingestion. */
export const DEFAULT_MAX_FUTURE_MS = 5 * 60_000;

/**
 * Free text of `min`–`max` characters without U+0000: PostgreSQL cannot store that character in
 * jsonb or text, so an accepted event carrying it would fail every checkpoint of its partition.
 */
export function storableText(min: number, max: number): z.ZodString {
  return z.string().min(min).max(max).refine((value) => !value.includes("\u0000"), {
    message: "must not contain the NUL character (U+0000)",
  });
}

const id = storableText(1, 256);
const userId = storableText(1, MAX_USER_ID_LENGTH);
const money = z.number().finite().min(0);
const timestamp = z.iso.datetime({ offset: true });

const envelope = {
  eventId: z.uuid().optional().describe("Idempotency key; the server assigns a UUIDv7 when absent"),
  userId,
  sessionId: storableText(1, 256).optional().describe("Client session id; a change starts a new session"),
  occurredAt: timestamp.optional().describe(
    "RFC 3339 time of the event; defaults to the receive time; rejected when too far in the future (default 5 minutes)",
  ),
};

const lineItem = z.object({
  productId: id,
  quantity: z.number().int().min(1),
  price: money,
  category: storableText(0, 256).optional(),
});

/** Every event type with its properties. */
export const eventSchemas = {
  page_viewed: z.object({
    ...envelope,
    type: z.literal("page_viewed"),
    properties: z.object({
      url: storableText(1, 4096),
      referrer: storableText(0, 4096).optional(),
      title: storableText(0, 1024).optional(),
      loadTime: z.number().finite().min(0).optional(),
    }),
  }).meta({ id: "PageViewedEvent", description: "A storefront page was viewed; `loadTime` in seconds." }),
  product_viewed: z.object({
    ...envelope,
    type: z.literal("product_viewed"),
    properties: z.object({
      productId: id,
      price: money.optional(),
      category: storableText(0, 256).optional(),
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
      quantity: z.number().int().min(1).default(1),
      price: money,
      category: storableText(0, 256).optional(),
      brand: storableText(0, 256).optional(),
    }),
  }).meta({
    id: "ProductAddedToCartEvent",
    description: "A product was added to the cart (`quantity` defaults to 1).",
  }),
  product_removed_from_cart: z.object({
    ...envelope,
    type: z.literal("product_removed_from_cart"),
    properties: z.object({
      productId: id,
      quantity: z.number().int().min(1).optional(),
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
      currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code such as USD").default("USD"),
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

/** The key an event is partitioned by: the product for inventory, otherwise the user. */
export function partitionKey(event: IncomingEvent): string {
  return event.type === "inventory_updated" ? event.properties.productId : event.userId;
}
