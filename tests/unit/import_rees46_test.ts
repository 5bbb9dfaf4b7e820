import assert from "node:assert/strict";
import { importRees46, mapRees46Row } from "../../actors/import/rees46.ts";
import { parseCsv, textChunks } from "../../actors/import/csv.ts";
import { newSummary } from "../../actors/import/summary.ts";
import type { StoredEvent, StoredEventOf } from "../../actors/events.ts";
import { fold } from "../helpers/fold.ts";

/** The shared data folder next to the repository (/work/shared/data). */
const path = new URL("../../../shared/data/rees46-2019-10-head5k.csv", import.meta.url);

async function load(): Promise<{ events: StoredEvent[]; summary: ReturnType<typeof newSummary> }> {
  const summary = newSummary();
  const file = await Deno.open(path);
  const events: StoredEvent[] = [];
  for await (const event of importRees46(parseCsv(textChunks(file.readable)), summary)) events.push(event);
  return { events, summary };
}

/** A REES46 row (the file's nine columns, price 35.79 by default); `extra` replaces columns by index. */
function row(type: string, price = "35.79", extra: Partial<Record<number, string>> = {}): string[] {
  const r = [
    "2019-10-01 00:00:05 UTC",
    type,
    "44600062",
    "2103807459595387724",
    "beauty.skin",
    "shiseido",
    price,
    "541312140",
    "72d7",
  ];
  for (const [i, v] of Object.entries(extra)) r[Number(i)] = v!;
  return r;
}

Deno.test("mapRees46Row() maps each event type and names what it skips", () => {
  const view = mapRees46Row(row("view"), 2) as StoredEvent;
  assert.equal(view.type, "product_viewed");
  assert.equal(view.userId, "541312140");
  assert.equal(view.sessionId, "72d7");
  assert.equal(view.occurredAt, "2019-10-01T00:00:05.000Z");
  assert.deepEqual(view.properties, {
    productId: "44600062",
    price: 35.79,
    category: "beauty.skin",
    brand: "shiseido",
  });
  assert.equal(view.eventId, (mapRees46Row(row("view"), 2) as StoredEvent).eventId, "stable across imports");
  assert.notEqual(view.eventId, (mapRees46Row(row("view"), 3) as StoredEvent).eventId, "identical rows stay distinct");
  const cart = mapRees46Row(row("cart", "10.00", { 4: "", 5: "" }), 2) as StoredEvent;
  assert.deepEqual([cart.type, cart.properties], ["product_added_to_cart", {
    productId: "44600062",
    quantity: 1,
    price: 10,
  }]);
  const removal = mapRees46Row(row("remove_from_cart"), 2) as StoredEvent;
  assert.deepEqual([removal.type, removal.properties], ["product_removed_from_cart", {
    productId: "44600062",
    quantity: 1,
  }]);
  const purchase = mapRees46Row(row("purchase"), 2) as StoredEvent;
  assert.deepEqual([purchase.type, purchase.properties], ["order_completed", {
    orderId: "rees46-72d7-44600062-1569888005",
    items: [{ productId: "44600062", quantity: 1, price: 35.79, category: "beauty.skin" }],
    total: 35.79,
    currency: "USD",
  }]);
  assert.deepEqual(mapRees46Row(row("wishlist"), 2), { skip: "unknown_event_type" });
  assert.deepEqual(mapRees46Row(row("view", "-1"), 2), { skip: "invalid_price" });
  assert.deepEqual(mapRees46Row(row("view", "abc"), 2), { skip: "invalid_price" });
  assert.deepEqual(mapRees46Row(row("view", "1", { 0: "2019-10-01T00:00:05Z" }), 2), { skip: "invalid_time" });
  // A day or hour that does not exist is a bad time, not an event the schema refuses ("invalid_event").
  assert.deepEqual(mapRees46Row(row("view", "1", { 0: "2019-02-30 00:00:05 UTC" }), 2), { skip: "invalid_time" });
  assert.deepEqual(mapRees46Row(row("view", "1", { 0: "2019-10-01 24:00:05 UTC" }), 2), { skip: "invalid_time" });
  assert.deepEqual(mapRees46Row(row("view", "1", { 7: "" }), 2), { skip: "missing_user" });
  assert.deepEqual(mapRees46Row(row("view", "1", { 2: "" }), 2), { skip: "missing_product" });
  assert.deepEqual(mapRees46Row(row("view", "1", { 7: "x".repeat(200) }), 2), { skip: "invalid_event" });
  assert.deepEqual(mapRees46Row(["too", "short"], 2), { skip: "invalid_row" });
});

Deno.test("importRees46() counts skipped rows by reason and names the record where each reason first occurred", async () => {
  const csv = [
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
    "2019-10-01 00:00:00 UTC,view,p1,1,,b,35.79,u1,s1",
    "2019-10-01 00:00:01 UTC,wishlist,p1,1,,b,35.79,u1,s1",
    "2019-10-01 00:00:02 UTC,view,p1,1,,b,-1,u1,s1",
    '2019-10-01 00:00:03 UTC,view,p1,1,"multi\nline",b,1,u1,s1',
    "2019-10-01 00:00:04 UTC,view,p1,1,,b,abc,u1,s1",
    "2019-10-01 00:00:05 UTC,view,p1,1,,b,35.79,u1",
  ].join("\n");
  const summary = newSummary();
  const events: StoredEvent[] = [];
  for await (const event of importRees46(parseCsv([csv]), summary)) events.push(event);
  assert.equal(events.length, 2);
  assert.deepEqual(summary.skipped, { unknown_event_type: 1, invalid_price: 2, invalid_row: 1 });
  // Records, header = 1 (the quoted newline makes the file one line longer than its records).
  assert.deepEqual(summary.firstSkipped, { unknown_event_type: 3, invalid_price: 4, invalid_row: 7 });
});

Deno.test("a REES46 price not written in plain decimal digits is skipped as invalid_price, as the API refuses it", () => {
  // Number() read these as 16, 1000, 0.5, 5, 12 and so on: a corrupt field became an order of another amount.
  for (const price of ["0x10", "1e3", "1E-2", ".5", "5.", "+5", "0b1", "0o7", "1_000", "12abc", "Infinity", "1,5"]) {
    assert.deepEqual(mapRees46Row(row("purchase", price), 2), { skip: "invalid_price" }, price);
  }
  // Over what the API takes as a price (MAX_AMOUNT): it was skipped as invalid_event, which named no field.
  assert.deepEqual(mapRees46Row(row("purchase", "1000000000.01"), 2), { skip: "invalid_price" });
  // The dataset's own forms; spaces around a field are trimmed, as for every field of the row.
  for (
    const [price, value] of [["35.79", 35.79], ["0", 0], ["0.00", 0], ["1000", 1000], [" 12 ", 12], [
      "1000000000",
      1e9,
    ]] as const
  ) {
    const order = mapRees46Row(row("purchase", price), 2) as StoredEventOf<"order_completed">;
    assert.equal(order.properties.total, value, price);
  }
});

Deno.test("REES46 head5k replayed through the actors matches an independent aggregation of the CSV", async () => {
  // Independent figures, straight from the text (this file has no quoted fields).
  const lines = (await Deno.readTextFile(path)).trim().split("\n").slice(1);
  type Expected = { views: number; carts: number; purchases: number; revenueCents: number; viewers: Set<string> };
  const expected = new Map<string, Expected>();
  const userViews = new Map<string, number>();
  const userOrders = new Map<string, number>();
  const userRevenueCents = new Map<string, number>();
  const types = new Map<string, number>();
  for (const line of lines) {
    const [, type, product, , , , price, user] = line.split(",");
    const e = expected.get(product) ?? { views: 0, carts: 0, purchases: 0, revenueCents: 0, viewers: new Set() };
    types.set(type, (types.get(type) ?? 0) + 1);
    if (type === "view") {
      e.views++;
      e.viewers.add(user);
      userViews.set(user, (userViews.get(user) ?? 0) + 1);
    }
    if (type === "cart") e.carts++;
    if (type === "purchase") {
      e.purchases++;
      e.revenueCents += Math.round(Number(price) * 100);
      userOrders.set(user, (userOrders.get(user) ?? 0) + 1);
      userRevenueCents.set(user, (userRevenueCents.get(user) ?? 0) + Math.round(Number(price) * 100));
    }
    expected.set(product, e);
  }
  assert.deepEqual(Object.fromEntries(types), { view: 4895, cart: 50, purchase: 54 }, "the data README's figures");

  const { events, summary } = await load();
  assert.deepEqual(summary, { rows: 4999, mapped: 4999, rowsMapped: 4999, skipped: {}, firstSkipped: {} });
  const result = await fold(events);
  assert.equal(result.deadLetters.length, 0);
  assert.equal(result.products.size, expected.size);
  assert.equal(result.products.size, 2305);
  assert.equal(result.users.size, 1747);
  let checked = 0;
  for (const [productId, e] of expected) {
    const p = result.products.get(productId)!;
    assert.equal(p.views, e.views, `${productId} views`);
    assert.equal(p.cartAdds, e.carts, `${productId} cart adds`);
    assert.equal(p.orders, e.purchases, `${productId} purchases`);
    assert.equal(p.unitsSold, e.purchases, `${productId} units`);
    assert.equal(p.revenueMillis, e.revenueCents * 10, `${productId} revenue`);
    const unique = p.viewers.estimate();
    assert.ok(
      Math.abs(unique - e.viewers.size) <= Math.max(1, e.viewers.size * 0.02),
      `${productId} viewers ${unique}`,
    );
    checked++;
  }
  assert.equal(checked, 2305);
  for (const [userId, u] of result.users) {
    assert.equal(u.productViews, userViews.get(userId) ?? 0, `${userId} views`);
    assert.equal(u.orders.count, userOrders.get(userId) ?? 0, `${userId} orders`);
    assert.equal(u.orders.revenueMillis, (userRevenueCents.get(userId) ?? 0) * 10, `${userId} revenue`);
  }
  const minutes = result.global!.minutes;
  assert.equal(minutes.reduce((n, m) => n + (m.events.product_viewed ?? 0), 0), 4895);
  assert.equal(minutes.reduce((n, m) => n + m.orders, 0), 54);
  const totalCents = [...expected.values()].reduce((n, e) => n + e.revenueCents, 0);
  assert.equal(minutes.reduce((n, m) => n + m.revenueMillis, 0), totalCents * 10);
});
