/**
 * prepareEvents() validation, table-driven for every event type: valid events, each required field
 * missing, each bound violated, unknown types, whole-batch rejection and the defaults applied.
 */
import assert from "node:assert/strict";
import {
  EVENT_TYPES,
  type EventType,
  MAX_AMOUNT,
  MAX_QUANTITY,
  MAX_USER_ID_LENGTH,
  type StoredEvent,
} from "../../actors/events.ts";
import { topicNames } from "../../engine/config.ts";
import { MAX_LISTED_PROBLEMS, PayloadTooLargeError, ValidationError } from "../../engine/errors.ts";
import { MAX_EVENT_RECORD_BYTES, type PreparedEvents, prepareEvents } from "../../engine/ingest.ts";

const NOW = Date.parse("2026-11-22T12:00:00.000Z");
const MINUTE_MS = 60_000;
const RULES = { maxFutureMs: 5 * MINUTE_MS };
const TOPICS = topicNames({ TOPIC_PREFIX: "t." });
const UUID_V4 = "3b241101-e2bb-4255-8caf-4136c566a962";
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type Json = Record<string, unknown>;

/** The smallest valid event of each type. */
const MINIMAL: Record<EventType, Json> = {
  page_viewed: { type: "page_viewed", userId: "u1", properties: { url: "https://shop.example/" } },
  product_viewed: { type: "product_viewed", userId: "u1", properties: { productId: "sku-1" } },
  search_performed: { type: "search_performed", userId: "u1", properties: { query: "red shoes" } },
  product_added_to_cart: { type: "product_added_to_cart", userId: "u1", properties: { productId: "sku-1", price: 10 } },
  product_removed_from_cart: { type: "product_removed_from_cart", userId: "u1", properties: { productId: "sku-1" } },
  checkout_started: { type: "checkout_started", userId: "u1" },
  order_completed: {
    type: "order_completed",
    userId: "u1",
    properties: { orderId: "o-1", items: [{ productId: "sku-1", quantity: 1, price: 10 }], total: 10 },
  },
  inventory_updated: { type: "inventory_updated", properties: { productId: "sku-1", stock: 0 } },
};

/** A valid event of each type with every optional field set. */
const FULL: Record<EventType, Json> = {
  page_viewed: {
    type: "page_viewed",
    userId: "u1",
    properties: { url: "https://shop.example/a", referrer: "https://google.com", title: "A", loadTime: 1.25 },
  },
  product_viewed: {
    type: "product_viewed",
    userId: "u1",
    properties: { productId: "sku-1", price: 0, category: "shoes", brand: "acme" },
  },
  search_performed: { type: "search_performed", userId: "u1", properties: { query: "", resultsCount: 0 } },
  product_added_to_cart: {
    type: "product_added_to_cart",
    userId: "u1",
    properties: { productId: "sku-1", quantity: 3, price: 0, category: "shoes", brand: "acme" },
  },
  product_removed_from_cart: {
    type: "product_removed_from_cart",
    userId: "u1",
    properties: { productId: "sku-1", quantity: 2 },
  },
  checkout_started: { type: "checkout_started", userId: "u1", properties: { cartValue: 99.5 } },
  order_completed: {
    type: "order_completed",
    userId: "u1",
    properties: {
      orderId: "o-1",
      items: [{ productId: "sku-1", quantity: 2, price: 10, category: "shoes" }, {
        productId: "sku-2",
        quantity: 1,
        price: 0,
      }],
      total: 20,
      currency: "EUR",
      paymentMethod: "card",
      shippingCountry: "DE",
    },
  },
  inventory_updated: { type: "inventory_updated", userId: "ops", properties: { productId: "sku-1", stock: 1000 } },
};

const ENVELOPE = {
  eventId: UUID_V4,
  sessionId: "s-1",
  occurredAt: "2026-11-22T13:59:00+02:00",
};

/** Required fields per type, as paths; each case removes one and expects a problem at that path. */
const REQUIRED: Record<EventType, string[]> = {
  page_viewed: ["userId", "properties", "properties.url"],
  product_viewed: ["userId", "properties", "properties.productId"],
  search_performed: ["userId", "properties", "properties.query"],
  product_added_to_cart: ["userId", "properties", "properties.productId", "properties.price"],
  product_removed_from_cart: ["userId", "properties", "properties.productId"],
  checkout_started: ["userId"],
  order_completed: [
    "userId",
    "properties",
    "properties.orderId",
    "properties.items",
    "properties.total",
    "properties.items.0.productId",
    "properties.items.0.quantity",
    "properties.items.0.price",
  ],
  inventory_updated: ["properties", "properties.productId", "properties.stock"],
};

/** One bound violation: set `path` of the type's full event to `value`; expect a problem at `path`. */
interface BoundCase {
  readonly type: EventType;
  readonly path: string;
  readonly value: unknown;
  readonly why: string;
}

const ENVELOPE_BOUNDS: Omit<BoundCase, "type">[] = [
  { path: "eventId", value: "not-a-uuid", why: "bad eventId" },
  { path: "eventId", value: 42, why: "numeric eventId" },
  { path: "sessionId", value: "", why: "empty sessionId" },
  { path: "occurredAt", value: "yesterday", why: "occurredAt not RFC 3339" },
  { path: "occurredAt", value: "2026-11-22T12:00:00", why: "occurredAt without offset" },
  { path: "occurredAt", value: "2026-02-30T12:00:00Z", why: "occurredAt on a day that does not exist" },
  { path: "occurredAt", value: 1_700_000_000_000, why: "occurredAt as epoch number" },
  // PostgreSQL has no year 0: an accepted event dated there failed every checkpoint of its partition.
  { path: "occurredAt", value: "0000-01-01T00:00:00Z", why: "occurredAt in year 0" },
  { path: "occurredAt", value: "0001-01-01T00:00:00+01:00", why: "occurredAt in year 0 once in UTC" },
  { path: "occurredAt", value: "1969-12-31T23:59:59.999Z", why: "occurredAt before 1970" },
];

const USER_BOUNDS: Omit<BoundCase, "type">[] = [
  { path: "userId", value: "", why: "empty userId" },
  { path: "userId", value: "u".repeat(MAX_USER_ID_LENGTH + 1), why: "userId of 129 chars" },
  { path: "userId", value: 7, why: "numeric userId" },
];

const PROPERTY_BOUNDS: BoundCase[] = [
  { type: "page_viewed", path: "properties.url", value: "", why: "empty url" },
  { type: "page_viewed", path: "properties.loadTime", value: -1, why: "negative loadTime" },
  { type: "page_viewed", path: "properties.loadTime", value: 1e306, why: "loadTime that overflows a sum" },
  { type: "page_viewed", path: "properties", value: [], why: "properties as an array" },
  { type: "product_viewed", path: "properties.price", value: -0.01, why: "negative price" },
  { type: "product_viewed", path: "properties.productId", value: "", why: "empty productId" },
  { type: "product_viewed", path: "properties.productId", value: "p".repeat(257), why: "productId of 257 chars" },
  { type: "search_performed", path: "properties.resultsCount", value: -1, why: "negative resultsCount" },
  { type: "search_performed", path: "properties.resultsCount", value: 1.5, why: "fractional resultsCount" },
  { type: "product_added_to_cart", path: "properties.quantity", value: 0, why: "quantity 0" },
  { type: "product_added_to_cart", path: "properties.quantity", value: 1.5, why: "fractional quantity" },
  { type: "product_added_to_cart", path: "properties.quantity", value: "2", why: "quantity as a string" },
  { type: "product_added_to_cart", path: "properties.price", value: -5, why: "negative price" },
  { type: "product_added_to_cart", path: "properties.price", value: null, why: "null price" },
  { type: "product_added_to_cart", path: "properties.price", value: MAX_AMOUNT + 1, why: "price above MAX_AMOUNT" },
  { type: "product_added_to_cart", path: "properties.price", value: MAX_AMOUNT, why: "3 × price above MAX_AMOUNT" },
  { type: "product_added_to_cart", path: "properties.quantity", value: MAX_QUANTITY + 1, why: "huge quantity" },
  { type: "product_removed_from_cart", path: "properties.quantity", value: 0, why: "quantity 0" },
  { type: "checkout_started", path: "properties.cartValue", value: -1, why: "negative cartValue" },
  { type: "order_completed", path: "properties.items", value: [], why: "items empty" },
  { type: "order_completed", path: "properties.items.0.quantity", value: 0, why: "line item quantity 0" },
  { type: "order_completed", path: "properties.items.1.price", value: -1, why: "negative line item price" },
  { type: "order_completed", path: "properties.total", value: -0.5, why: "negative total" },
  // Accepted, 1e306 made the user's revenue null and dead-lettered the order's product facts.
  { type: "order_completed", path: "properties.total", value: 1e306, why: "total above MAX_AMOUNT" },
  { type: "order_completed", path: "properties.items.0.price", value: 1e306, why: "line item price above MAX_AMOUNT" },
  { type: "order_completed", path: "properties.items.0.price", value: MAX_AMOUNT / 2 + 1, why: "2 × price too much" },
  { type: "order_completed", path: "properties.items.1.quantity", value: MAX_QUANTITY + 1, why: "huge line quantity" },
  { type: "checkout_started", path: "properties.cartValue", value: MAX_AMOUNT + 1, why: "cartValue above MAX_AMOUNT" },
  { type: "order_completed", path: "properties.currency", value: "usd", why: "lower-case currency" },
  { type: "order_completed", path: "properties.currency", value: "US", why: "two-letter currency" },
  { type: "order_completed", path: "properties.currency", value: "EURO", why: "four-letter currency" },
  // Three capital letters but no ISO 4217 code: accepted, and stored in the user's order history as a currency.
  { type: "order_completed", path: "properties.currency", value: "XYZ", why: "not an ISO 4217 code" },
  { type: "order_completed", path: "properties.currency", value: "EUS", why: "a typo of EUR or USD" },
  { type: "inventory_updated", path: "properties.stock", value: -1, why: "stock -1" },
  { type: "inventory_updated", path: "properties.stock", value: 2.5, why: "fractional stock" },
  { type: "inventory_updated", path: "properties.productId", value: "", why: "empty productId" },
];

const BOUNDS: BoundCase[] = [
  ...EVENT_TYPES.flatMap((type) => ENVELOPE_BOUNDS.map((c) => ({ ...c, type }))),
  ...EVENT_TYPES.filter((t) => t !== "inventory_updated").flatMap((type) => USER_BOUNDS.map((c) => ({ ...c, type }))),
  ...PROPERTY_BOUNDS,
];

function prepare(raw: unknown[], batch = raw.length > 1): PreparedEvents {
  return prepareEvents(raw, { rules: RULES, topics: TOPICS, nowMs: NOW, batch });
}

/** The ValidationError that preparing `raw` throws. */
function rejection(raw: unknown[], batch = raw.length > 1): ValidationError {
  try {
    prepare(raw, batch);
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${error}`);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(raw).slice(0, 200)} to be rejected`);
}

function clone(value: Json): Json {
  return structuredClone(value);
}

/** Sets (or with `remove`, deletes) the value at a dotted path. */
function edit(event: Json, path: string, value: unknown, remove = false): Json {
  const copy = clone(event);
  const keys = path.split(".");
  let at = copy as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) at = at[key] as Record<string, unknown>;
  const last = keys[keys.length - 1];
  if (remove) delete at[last];
  else at[last] = value;
  return copy;
}

function paths(error: ValidationError): string[] {
  return error.problems.map((p) => p.path);
}

Deno.test("prepareEvents() accepts the minimal and the full event of every type", () => {
  for (const type of EVENT_TYPES) {
    for (const event of [MINIMAL[type], FULL[type], { ...FULL[type], ...ENVELOPE }]) {
      const { events, records } = prepare([event]);
      assert.equal(events.length, 1, type);
      assert.equal(events[0].type, type);
      assert.equal(records.length, 1);
    }
  }
});

Deno.test("prepareEvents() names the path of each missing required field, for every type", () => {
  for (const type of EVENT_TYPES) {
    for (const path of REQUIRED[type]) {
      const error = rejection([edit(FULL[type], path, undefined, true)]);
      assert.ok(paths(error).includes(path), `${type} without ${path}: got ${JSON.stringify(error.problems)}`);
    }
  }
});

Deno.test("prepareEvents() names the path of each violated bound, for every type", () => {
  for (const { type, path, value, why } of BOUNDS) {
    const error = rejection([edit(FULL[type], path, value)]);
    assert.ok(paths(error).includes(path), `${type}, ${why}: got ${JSON.stringify(error.problems)}`);
    for (const problem of error.problems) assert.ok(problem.message.length > 0, `${type}, ${why}: empty message`);
  }
});

Deno.test("prepareEvents() accepts values exactly on the bounds", () => {
  const edge = [
    edit(FULL.page_viewed, "userId", "u".repeat(MAX_USER_ID_LENGTH)),
    edit(FULL.product_added_to_cart, "properties.quantity", 1),
    edit(FULL.inventory_updated, "properties.stock", 0),
    edit(FULL.order_completed, "properties.total", 0),
    edit(FULL.page_viewed, "occurredAt", new Date(NOW + 5 * MINUTE_MS).toISOString()),
    edit(FULL.page_viewed, "occurredAt", "1970-01-01T00:00:00Z"),
  ];
  assert.equal(prepare(edge).events.length, edge.length);
});

Deno.test("prepareEvents() takes ISO 4217 codes, current and recently withdrawn, and names the currency of one that is none", () => {
  const codes = [
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CHF",
    "SLE",
    "VES",
    "ZWG",
    "XCG",
    "XAD",
    "XAU",
    "XXX",
    "HRK",
    "SLL",
    "ANG",
    "BGN",
  ];
  const accepted = prepare(codes.map((currency) => edit(FULL.order_completed, "properties.currency", currency)));
  assert.deepEqual(accepted.events.map((e) => e.type === "order_completed" && e.properties.currency), codes);
  const error = rejection([FULL.order_completed, edit(FULL.order_completed, "properties.currency", "XYZ")]);
  assert.deepEqual(error.problems, [{
    path: "1.properties.currency",
    message: 'is not an ISO 4217 currency code: "XYZ"',
  }]);
});

Deno.test("prepareEvents() rejects an event dated more than 5 minutes ahead, of every type", () => {
  for (const type of EVENT_TYPES) {
    const error = rejection([edit(FULL[type], "occurredAt", new Date(NOW + 6 * MINUTE_MS).toISOString())]);
    assert.deepEqual(paths(error), ["occurredAt"]);
    assert.match(error.problems[0].message, /future/);
  }
  // The rule uses the instant, not the wall-clock digits: 12:04 in UTC+1 is 11:04Z, fine.
  assert.equal(prepare([edit(FULL.page_viewed, "occurredAt", "2026-11-22T12:04:00+01:00")]).events.length, 1);
  const ahead = rejection([edit(FULL.page_viewed, "occurredAt", "2026-11-22T12:06:00Z")]);
  assert.deepEqual(paths(ahead), ["occurredAt"]);
});

Deno.test("prepareEvents() rejects an unknown or missing type, listing the allowed types", () => {
  for (const type of ["product_exploded", "", "PAGE_VIEWED", "__proto__", 5, null, undefined]) {
    const error = rejection([{ ...FULL.page_viewed, type }]);
    assert.deepEqual(paths(error), ["type"], `type ${String(type)}`);
    for (const allowed of EVENT_TYPES) assert.ok(error.problems[0].message.includes(allowed), allowed);
  }
});

Deno.test("prepareEvents() lists a time too far ahead with the event's other problems, and an unknown type with the envelope's", () => {
  const ahead = new Date(NOW + 6 * MINUTE_MS).toISOString();
  const both = rejection([edit(edit(FULL.product_viewed, "occurredAt", ahead), "properties.price", -1)]);
  assert.deepEqual(paths(both).sort(), ["occurredAt", "properties.price"]);
  // A time whose form is wrong is named once, for its form.
  assert.deepEqual(paths(rejection([edit(FULL.page_viewed, "occurredAt", "2099-01-01 10:00:00")])), ["occurredAt"]);
  const unknown = rejection([{ type: "product_view", userId: "", eventId: "nope", occurredAt: ahead, properties: {} }]);
  assert.deepEqual(paths(unknown).sort(), ["eventId", "occurredAt", "type", "userId"]);
  // The envelope of an unknown type is checked, not required: a user id may be what is missing.
  assert.deepEqual(paths(rejection([{ type: "stock_changed", properties: {} }])), ["type"]);
});

Deno.test("prepareEvents() lists the edge's own problems (a currency no ISO 4217 code, an id of . or ..) with every other", () => {
  const ahead = new Date(NOW + 6 * MINUTE_MS).toISOString();
  const badCurrency = edit(FULL.order_completed, "properties.currency", "XYZ");
  // With a problem the schema finds, and with a time too far ahead: one answer lists them all.
  assert.deepEqual(paths(rejection([edit(badCurrency, "properties.total", -1)])).sort(), [
    "properties.currency",
    "properties.total",
  ]);
  assert.deepEqual(paths(rejection([edit(badCurrency, "occurredAt", ahead)])).sort(), [
    "occurredAt",
    "properties.currency",
  ]);
  const dots = edit(edit(FULL.order_completed, "userId", ".."), "properties.items.1.productId", ".");
  assert.deepEqual(paths(rejection([edit(edit(dots, "properties.total", -1), "occurredAt", ahead)])).sort(), [
    "occurredAt",
    "properties.items.1.productId",
    "properties.total",
    "userId",
  ]);
  assert.deepEqual(
    paths(rejection([edit(edit(FULL.product_viewed, "properties.productId", "."), "properties.price", -1)])).sort(),
    ["properties.price", "properties.productId"],
  );
  // A type without a product id drops one as an unknown field, whatever its value.
  assert.equal(prepare([edit(MINIMAL.page_viewed, "properties.productId", "..")]).events.length, 1);
  // An unknown type: its envelope's user id too.
  assert.deepEqual(paths(rejection([{ type: "product_view", userId: "..", properties: {} }])).sort(), [
    "type",
    "userId",
  ]);
  // In a batch, each event's own, prefixed by its index.
  assert.deepEqual(paths(rejection([MINIMAL.page_viewed, edit(badCurrency, "properties.total", -1)])).sort(), [
    "1.properties.currency",
    "1.properties.total",
  ]);
});

Deno.test("prepareEvents() refuses the nil and the max UUID as an eventId: shared by every event, all but one were dropped", () => {
  // A client that leaves an id unset often sends the nil UUID (a default Guid): every such event of a user, or of a
  // product's stock, after the first was counted as a repeat of it, and silently lost.
  for (const id of ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]) {
    for (const type of EVENT_TYPES) {
      const problems = rejection([{ ...MINIMAL[type], eventId: id }]).problems;
      assert.deepEqual(problems.map((p) => p.path), ["eventId"], `${type} ${id}`);
      assert.match(problems[0].message, /leave eventId out/);
    }
  }
  // Listed with the event's other problems, as every edge check is.
  assert.deepEqual(
    paths(rejection([{ ...edit(MINIMAL.page_viewed, "userId", ""), eventId: "00000000-0000-0000-0000-000000000000" }]))
      .sort(),
    ["eventId", "userId"],
  );
  // Any other UUID is still an id of its own.
  assert.equal(prepare([{ ...MINIMAL.page_viewed, eventId: "00000000-0000-4000-8000-000000000001" }]).events.length, 1);
});

Deno.test("prepareEvents() refuses two events of one request sharing an eventId with different content; a repeat is kept", () => {
  const id = { eventId: UUID_V4 };
  const view = { ...MINIMAL.product_viewed, ...id };
  // Events sharing an id are one event: the second, another product's view, was answered 202 and then dropped.
  const other = edit(view, "properties.productId", "sku-2");
  const error = rejection([MINIMAL.page_viewed, view, other]);
  assert.deepEqual(paths(error), ["2.eventId"]);
  assert.match(error.problems[0].message, /repeats the eventId of event 1/);
  // The id in upper case is the same id; listed with the batch's other problems.
  assert.deepEqual(
    paths(rejection([view, { ...other, eventId: UUID_V4.toUpperCase() }, edit(MINIMAL.page_viewed, "userId", "")])),
    ["1.eventId", "2.userId"],
  );
  // The same event twice (a client's queue that sent it again), keys in another order included: one event, accepted.
  const reordered = { properties: { productId: "sku-1" }, userId: "u1", ...id, type: "product_viewed" };
  const { events } = prepare([view, MINIMAL.page_viewed, reordered]);
  assert.deepEqual(events.map((e) => e.eventId), [UUID_V4, events[1].eventId, UUID_V4]);
  // Ids given to no other event, and server-assigned ones, are never repeats.
  assert.equal(prepare([MINIMAL.page_viewed, MINIMAL.page_viewed, view]).events.length, 3);
});

Deno.test("prepareEvents() lists at most MAX_LISTED_PROBLEMS problems, saying so, and checks no event after that", () => {
  const items = (n: number) => edit(FULL.order_completed, "properties.items", Array.from({ length: n }, () => ({})));
  // One event: 999 items of `{}` are 2,997 problems (product, quantity and price of each).
  const one = rejection([items(999)], false);
  assert.equal(one.problems.length, MAX_LISTED_PROBLEMS);
  assert.equal(one.message, `the event is invalid; only the first ${MAX_LISTED_PROBLEMS} problems are listed`);
  // Exactly MAX_LISTED_PROBLEMS over the whole batch: every one listed, nothing said.
  const exact = rejection([MINIMAL.page_viewed, items(333), edit(MINIMAL.page_viewed, "userId", "")]);
  assert.equal(exact.problems.length, MAX_LISTED_PROBLEMS);
  assert.equal(exact.message, "2 of 3 events are invalid; none was accepted");
  // Reached before the end: the rest is not checked, and the answer says which events those are.
  const cut = rejection([items(334), MINIMAL.page_viewed, edit(MINIMAL.page_viewed, "userId", "")]);
  assert.equal(cut.problems.length, MAX_LISTED_PROBLEMS);
  assert.ok(cut.problems.every((p) => p.path.startsWith("0.")));
  assert.equal(
    cut.message,
    `at least 1 of 3 events are invalid; none was accepted; only the first ${MAX_LISTED_PROBLEMS} problems are listed, ` +
      "and events 1–2 were not checked",
  );
});

Deno.test("prepareEvents() rejects values that are not JSON objects", () => {
  for (const value of [null, 42, "page_viewed", [], true]) {
    assert.deepEqual(paths(rejection([value], false)), ["(root)"], JSON.stringify(value));
  }
  assert.deepEqual(paths(rejection([MINIMAL.page_viewed, null, []], true)), ["1", "2"]);
});

Deno.test("prepareEvents() rejects a whole batch for one invalid event, naming its index and field path", () => {
  const batch = [MINIMAL.page_viewed, MINIMAL.product_viewed, edit(FULL.product_added_to_cart, "properties.price", -1)];
  const error = rejection(batch);
  assert.deepEqual(paths(error), ["2.properties.price"]);
  assert.match(error.message, /1 of 3 events are invalid; none was accepted/);
});

Deno.test("prepareEvents() lists every problem of every invalid event in a batch", () => {
  const batch = [
    edit(edit(FULL.order_completed, "properties.currency", "usd"), "properties.items", []),
    MINIMAL.page_viewed,
    { ...MINIMAL.page_viewed, type: "nope" },
    edit(MINIMAL.inventory_updated, "properties.stock", -1),
    edit(FULL.page_viewed, "occurredAt", new Date(NOW + 6 * MINUTE_MS).toISOString()),
  ];
  const error = rejection(batch);
  assert.deepEqual(paths(error).sort(), [
    "0.properties.currency",
    "0.properties.items",
    "2.type",
    "3.properties.stock",
    "4.occurredAt",
  ]);
  assert.match(error.message, /4 of 5 events are invalid/);
});

Deno.test("prepareEvents() takes an occurredAt written with a lower-case t and z (RFC 3339 allows them)", () => {
  const [event] = prepare([edit(FULL.page_viewed, "occurredAt", "2026-11-22t11:59:00.5+01:00")]).events;
  assert.equal(event.occurredAt, "2026-11-22T10:59:00.500Z");
  assert.equal(
    prepare([edit(FULL.page_viewed, "occurredAt", "2026-11-22t11:00:00z")]).events[0].occurredAt,
    "2026-11-22T11:00:00.000Z",
  );
  assert.deepEqual(paths(rejection([edit(FULL.page_viewed, "occurredAt", "2026-11-22t12:06:00z")])), ["occurredAt"]);
});

Deno.test("prepareEvents() applies defaults: quantity 1, currency USD, empty checkout properties", () => {
  const { events } = prepare([MINIMAL.product_added_to_cart, MINIMAL.order_completed, MINIMAL.checkout_started]);
  const [added, order, checkout] = events as [
    StoredEvent & { properties: { quantity: number } },
    StoredEvent & { properties: { currency: string } },
    StoredEvent,
  ];
  assert.equal(added.properties.quantity, 1);
  assert.equal(order.properties.currency, "USD");
  assert.deepEqual(checkout.properties, {});
});

Deno.test("prepareEvents() assigns UUIDv7 ids and times, keeping a client's eventId and normalising occurredAt", () => {
  const { events } = prepare([MINIMAL.page_viewed, { ...FULL.page_viewed, ...ENVELOPE }]);
  const [assigned, kept] = events;
  assert.match(assigned.eventId, UUID_V7);
  assert.equal(assigned.occurredAt, new Date(NOW).toISOString());
  assert.equal(assigned.receivedAt, new Date(NOW).toISOString());
  assert.equal(kept.eventId, UUID_V4);
  assert.equal(kept.occurredAt, "2026-11-22T11:59:00.000Z");
  assert.equal(kept.sessionId, "s-1");
});

Deno.test("prepareEvents() drops unknown fields instead of storing them", () => {
  const { events } = prepare([{ ...FULL.page_viewed, extra: { deep: [1, 2] }, properties: { url: "/", x: 1 } }]);
  assert.equal("extra" in events[0], false);
  assert.deepEqual(events[0].properties, { url: "/" });
});

Deno.test("prepareEvents() routes user events to `events` by userId and inventory to `product-events` by productId", () => {
  const { records, events } = prepare(EVENT_TYPES.map((type) => FULL[type]));
  for (const [index, record] of records.entries()) {
    const type = EVENT_TYPES[index];
    const inventory = type === "inventory_updated";
    assert.equal(record.topic, inventory ? TOPICS.productEvents : TOPICS.events, type);
    assert.equal(record.key, inventory ? "sku-1" : "u1", type);
    assert.deepEqual(JSON.parse(record.value as string), events[index]);
  }
});

/** Paths of every string in `value`, e.g. `properties.items.0.productId`. */
function stringPaths(value: unknown, prefix = ""): string[] {
  if (typeof value === "string") return [prefix];
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, inner]) => stringPaths(inner, prefix ? `${prefix}.${key}` : key));
}

Deno.test("prepareEvents() rejects U+0000 and unpaired surrogates (which PostgreSQL cannot store) in every text field, naming it", () => {
  const formatted = new Set(["type", "eventId", "occurredAt", "properties.currency"]);
  // JSON carries both as escapes ("\u0000", "\ud800"); jsonb refuses them, and an accepted event
  // holding one failed every checkpoint of its partition.
  const unstorable = [
    { text: "\u0000", says: "U+0000" },
    { text: "\ud800", says: "surrogate" },
    { text: "\udc00x", says: "surrogate" },
    { text: "x\ud83d", says: "surrogate" },
  ];
  let checked = 0;
  for (const type of EVENT_TYPES) {
    const event = { ...FULL[type], ...ENVELOPE };
    for (const path of stringPaths(event).filter((p) => !formatted.has(p))) {
      const original = path.split(".").reduce((at: unknown, key) => (at as Record<string, unknown>)[key], event);
      for (const { text, says } of unstorable) {
        const error = rejection([edit(event, path, `${original}${text}x`)]);
        const problem = error.problems.find((p) => p.path === path);
        assert.ok(problem?.message.includes(says), `${type} ${path}: got ${JSON.stringify(error.problems)}`);
        checked++;
      }
      // A paired surrogate (an emoji) is ordinary text.
      prepare([edit(event, path, `${original}\ud83d\ude00`)]);
    }
  }
  assert.ok(checked >= 120, `every text field of every type (${checked})`);
});

Deno.test("prepareEvents() refuses a category named __proto__ wherever categories are given, naming the field", () => {
  // Categories become keys of revenue by category, where zod's records drop `__proto__`: an order's
  // revenue counted under it vanished from the category sums without a dead letter.
  let checked = 0;
  for (const type of EVENT_TYPES) {
    const event = { ...FULL[type], ...ENVELOPE };
    for (const path of stringPaths(event).filter((p) => p.endsWith(".category"))) {
      const error = rejection([edit(event, path, "__proto__")]);
      const problem = error.problems.find((p) => p.path === path);
      assert.ok(problem?.message.includes("__proto__"), `${type} ${path}: got ${JSON.stringify(error.problems)}`);
      prepare([edit(event, path, "proto")]);
      checked++;
    }
  }
  assert.ok(checked >= 3, `categories of product views, cart adds and order items (${checked})`);
});

Deno.test("prepareEvents() names an occurredAt that is not RFC 3339 once, not also as out of range", () => {
  for (const occurredAt of ["2016-12-31T23:59:60Z", "yesterday", "2026-11-22 12:00:00Z"]) {
    const error = rejection([{ ...MINIMAL.page_viewed, occurredAt }]);
    assert.deepEqual(paths(error), ["occurredAt"], `${occurredAt}: ${JSON.stringify(error.problems)}`);
    assert.match(error.problems[0].message, /RFC 3339/);
    assert.doesNotMatch(error.problems[0].message, /1970/);
  }
});

Deno.test("prepareEvents() takes an event whose log record (key and value) is exactly MAX_EVENT_RECORD_BYTES, not a byte more", () => {
  const options = { rules: RULES, topics: TOPICS, nowMs: NOW, batch: false };
  // An order of 1,000 lines with 3-byte characters in their product ids comes near the limit; `pad` ASCII
  // characters spread over their categories take it to the byte. The longest key shows the key counts too.
  const wide = "\u4e00".repeat(250);
  const order = (pad: number) => ({
    type: "order_completed",
    userId: "k".repeat(MAX_USER_ID_LENGTH),
    eventId: UUID_V4,
    occurredAt: "2026-11-22T11:00:00.000Z",
    properties: {
      orderId: "o-1",
      total: 1_000,
      items: Array.from({ length: 1_000 }, (_, i) => ({
        productId: `${wide}${i}`,
        quantity: 1,
        price: 1,
        category: "c".repeat(Math.max(0, Math.min(256, pad - 256 * i))),
      })),
    },
  });
  const base = prepareEvents([order(0)], options);
  const record = base.records[0];
  assert.equal(base.bytes, new TextEncoder().encode(record.key + record.value).byteLength);
  const fits = MAX_EVENT_RECORD_BYTES - base.bytes;
  assert.ok(fits > 0 && fits < 256 * 1_000, `${fits} bytes of padding`);
  assert.equal(prepareEvents([order(fits)], options).bytes, MAX_EVENT_RECORD_BYTES);
  assert.throws(() => prepareEvents([order(fits + 1)], options), (error: unknown) => {
    assert.ok(error instanceof PayloadTooLargeError, String(error));
    assert.match(error.message, new RegExp(`log record of ${MAX_EVENT_RECORD_BYTES + 1} bytes`));
    return true;
  });
});

Deno.test("prepareEvents() refuses null for an optional field, naming it, for every type (left out is how it has no value)", () => {
  let checked = 0;
  for (const type of EVENT_TYPES) {
    const full = { ...FULL[type], ...ENVELOPE } as Record<string, unknown>;
    const properties = Object.keys(full.properties as Record<string, unknown>).map((key) => `properties.${key}`);
    const optional = [...Object.keys(full).filter((key) => key !== "type" && key !== "properties"), ...properties]
      .filter((path) => !REQUIRED[type].includes(path));
    for (const path of optional) {
      const error = rejection([edit(full as Json, path, null)]);
      assert.deepEqual(paths(error), [path], `${type} with ${path}: null`);
      checked++;
    }
  }
  assert.ok(checked >= 20, `${checked} optional fields`);
});
