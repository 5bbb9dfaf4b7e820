import assert from "node:assert/strict";
import type { ActorContext } from "../../engine/actor.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogRecord } from "../../engine/log.ts";
import { applySale, applyUpdate, SALES_MEMORY, stockAlerts, UNKNOWN_INVENTORY } from "../../actors/inventory.ts";
import { createProductLogic, productLogic } from "../../actors/product.ts";
import type { ProductFact } from "../../actors/facts.ts";
import { domainSettings, minutesMs } from "../../actors/settings.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

const HOUR = 3600;

function record(value: unknown, offset = 0): LogRecord {
  return {
    topic: "product-events",
    partition: 0,
    offset,
    key: "p1",
    value: new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value)),
    headers: {},
    timestamp: 0,
  };
}

/** A context that records emissions; output ids derive from `source` like the runtime's. */
function recordingContext(source: string, now = 0) {
  const emitted: { topic: string; key: string; value: unknown }[] = [];
  const ctx: ActorContext = {
    now: () => now,
    emit: (topic, key, value) => emitted.push({ topic, key, value }),
    outputId: (rule) => `${source}-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  return { ctx, emitted };
}

Deno.test("productLogic.decode() accepts inventory_updated events and product facts, and rejects anything else", () => {
  const b = new EventBuilder();
  const inventory = b.inventory("p1", 5, 0);
  const decoded = productLogic.decode(record(inventory));
  assert.ok(!("fact" in decoded) && decoded.type === "inventory_updated" && decoded.properties.stock === 5);
  const fact = {
    fact: "product_viewed",
    factId: "events-0-1-p0",
    productId: "p1",
    userId: "u",
    session: "u/auto-1",
    at: 1,
    coViewed: [],
  };
  assert.deepEqual(productLogic.decode(record(fact)), fact);
  const rejected = [
    b.event("product_viewed", "u", 0, { productId: "p1" }), // a canonical event of another type
    { ...fact, fact: "product_teleported" },
    { ...fact, at: "yesterday" },
    { type: "inventory_updated", properties: { productId: "p1", stock: -1 } },
    "{not json",
    "[1,2]",
  ];
  for (const value of rejected) {
    assert.throws(() => productLogic.decode(record(value)), ValidationError, JSON.stringify(value));
  }
});

Deno.test("product statistics: views, unique viewers, cart adds and removals, orders, units, revenue, conversion", async () => {
  const b = new EventBuilder();
  const events = [];
  for (let i = 0; i < 10; i++) {
    events.push(
      b.event("product_viewed", `u${i % 4}`, i * 10, { productId: "p1", price: 12.5, category: "toys", brand: "acme" }),
    );
  }
  events.push(
    b.event("product_added_to_cart", "u0", 200, { productId: "p1", quantity: 2, price: 12.5 }),
    b.event("product_added_to_cart", "u1", 210, { productId: "p1", quantity: 1, price: 12.5 }),
    b.event("product_removed_from_cart", "u1", 220, { productId: "p1" }),
    b.event("order_completed", "u0", 300, {
      orderId: "o1",
      items: [{ productId: "p1", quantity: 2, price: 12.5 }, { productId: "p1", quantity: 1, price: 10 }],
      total: 35,
    }),
    b.event("order_completed", "u9", 400, {
      orderId: "o2",
      items: [{ productId: "p1", quantity: 1, price: 0.1 }],
      total: 0.1,
    }),
  );
  const r = await fold(events);
  const p = r.persisted("product", "p1") as Record<string, unknown>;
  assert.equal(p.views, 10);
  assert.equal(p.uniqueViewers, 4);
  assert.equal(p.cartAdds, 2);
  assert.equal(p.cartUnitsAdded, 3);
  assert.equal(p.cartRemovals, 1);
  assert.equal(p.cartUnitsRemoved, 1);
  assert.equal(p.orders, 2, "one per order, however many lines");
  assert.equal(p.unitsSold, 4);
  assert.equal(p.revenue, 35.1);
  assert.deepEqual(p.conversion, { viewToCart: 0.2, viewToPurchase: 0.2 });
  assert.equal(p.category, "toys");
  assert.equal(p.brand, "acme");
  assert.equal(p.price, 12.5);
});

Deno.test("product attributes: the value with the latest event time wins, whatever the arrival order", async () => {
  const b = new EventBuilder();
  const early = b.event("product_viewed", "u1", 0, { productId: "p1", category: "old", brand: "b1" });
  const late = b.event("product_viewed", "u2", 100, { productId: "p1", category: "new" });
  for (const order of [[early, late], [late, early]]) {
    const p = (await fold(order)).persisted("product", "p1") as Record<string, unknown>;
    assert.equal(p.category, "new");
    assert.equal(p.brand, "b1");
  }
});

Deno.test("low_inventory and out_of_stock: once per crossing, re-armed when stock is back at or above the threshold", async () => {
  const b = new EventBuilder();
  const order = (user: string, seconds: number, quantity: number) =>
    b.event("order_completed", user, seconds, {
      orderId: `o${seconds}`,
      items: [{ productId: "p1", quantity, price: 1 }],
      total: quantity,
    });
  const r = await fold([
    b.inventory("p1", 20, 0),
    order("a", 10, 11), // 9: below 10 → low_inventory
    order("b", 20, 1), // 8: still low, no repeat
    b.inventory("p1", 9, 30), // still low
    b.inventory("p1", 15, 40), // back above: re-armed
    order("c", 50, 6), // 9: low again
    order("d", 60, 9), // 0: out_of_stock (low already raised)
    order("e", 70, 1), // never below 0, no repeat
    b.inventory("p1", 3, 80), // back above 0, still low: re-arms out_of_stock only
    order("f", 90, 3), // 0 again
  ], { partitions: 1 });
  const stock = r.alerts.filter((a) => a.subject.kind === "product");
  assert.deepEqual(stock.map((a) => [a.type, (a.details as { stock: number }).stock, a.occurredAt]), [
    ["low_inventory", 9, new Date(b.time(10)).toISOString()],
    ["low_inventory", 9, new Date(b.time(50)).toISOString()],
    ["out_of_stock", 0, new Date(b.time(60)).toISOString()],
    ["out_of_stock", 0, new Date(b.time(90)).toISOString()],
  ]);
  assert.deepEqual(stock.map((a) => a.severity), ["warning", "warning", "critical", "critical"]);
  const p = r.products.get("p1")!;
  assert.equal(p.stock, 0);
  assert.equal(p.stockUpdatedAt, new Date(b.time(80)).toISOString());
  // A first update that is already low raises at once; a drop straight to 0 raises both.
  const direct = await fold([b.inventory("p2", 4, 0), b.inventory("p3", 50, 0), b.inventory("p3", 0, 10)]);
  assert.deepEqual(direct.alerts.map((a) => [a.subject.id, a.type]), [
    ["p2", "low_inventory"],
    ["p3", "low_inventory"],
    ["p3", "out_of_stock"],
  ]);
});

Deno.test("low_inventory: a stock at the threshold is not below it, one unit less is; back at the threshold re-arms", async () => {
  const b = new EventBuilder();
  const order = (user: string, seconds: number) =>
    b.event("order_completed", user, seconds, {
      orderId: `o${seconds}`,
      items: [{ productId: "p1", quantity: 1, price: 1 }],
      total: 1,
    });
  const r = await fold([
    b.inventory("p1", 10, 0), // at the default threshold (10): not below it
    order("a", 10), // 9: below
    b.inventory("p1", 10, 20), // back at the threshold: not below, so the next crossing raises again
    order("b", 30), // 9: below again
  ], { partitions: 1 });
  const stock = r.alerts.filter((a) => a.subject.kind === "product");
  assert.deepEqual(stock.map((a) => [a.type, (a.details as { stock: number }).stock, a.occurredAt]), [
    ["low_inventory", 9, new Date(b.time(10)).toISOString()],
    ["low_inventory", 9, new Date(b.time(30)).toISOString()],
  ]);
  assert.equal(r.products.get("p1")!.stock, 9);
});

Deno.test("stock: an update is a snapshot at its event time; sales after it count even if they arrived first", async () => {
  const b = new EventBuilder();
  const sale = (seconds: number, quantity: number) =>
    b.event("order_completed", `u${seconds}`, seconds, {
      orderId: `o${seconds}`,
      items: [{ productId: "p1", quantity, price: 1 }],
      total: quantity,
    });
  const first = b.inventory("p1", 100, 0);
  const update = b.inventory("p1", 50, 100);
  const before = sale(50, 5); // in the snapshot at 100
  const after = sale(150, 7); // after the snapshot
  const stale = b.inventory("p1", 999, 20); // older than the applied update
  const orders = [
    [first, before, update, after, stale],
    [first, after, before, update, stale],
    [first, stale, after, update, before],
  ];
  for (const events of orders) {
    const p = (await fold(events, { partitions: 1 })).products.get("p1")!;
    assert.equal(p.stock, 43, JSON.stringify(events.map((e) => e.occurredAt)));
  }
  const unknown = (await fold([sale(10, 2)])).products.get("p1")!;
  assert.equal(unknown.stock, null, "no stock before the first update");
});

Deno.test("stock: the first update takes into account the sales dated after it that arrived before it", async () => {
  const b = new EventBuilder();
  const sale = (user: string, seconds: number, quantity: number) =>
    b.event("order_completed", user, seconds, {
      orderId: `o-${user}`,
      items: [{ productId: "p1", quantity, price: 1 }],
      total: quantity,
    });
  const stockAlerts = (r: Awaited<ReturnType<typeof fold>>) =>
    r.alerts.filter((a) => a.subject.kind === "product").map((a) => [a.type, (a.details as { stock: number }).stock]);
  const update = b.inventory("p1", 12, 100);
  const early = sale("a", 50, 4); // dated before the snapshot: already in it
  const late = sale("b", 150, 5); // dated after it: 12 − 5 = 7, below the threshold (10)
  for (const roundTrip of [false, true, "packed"] as const) {
    const r = await fold([early, late, update], { partitions: 1, roundTrip });
    assert.equal(r.products.get("p1")!.stock, 7, `roundTrip ${roundTrip}`);
    assert.deepEqual(stockAlerts(r), [["low_inventory", 7]], `roundTrip ${roundTrip}`);
  }
  // Event-time order gives the same stock and the same crossing.
  const inOrder = await fold([early, update, late], { partitions: 1 });
  assert.equal(inOrder.products.get("p1")!.stock, 7);
  assert.deepEqual(stockAlerts(inOrder), [["low_inventory", 7]]);

  // A sale that empties the stock before the update arrives: both crossings, once each; a later sale raises nothing.
  const out = await fold(
    [sale("c", 200, 20), b.inventory("p2", 15, 0), sale("d", 300, 1)].map((e) =>
      JSON.parse(JSON.stringify(e).replaceAll('"p1"', '"p2"'))
    ),
    { partitions: 1 },
  );
  assert.equal(out.products.get("p2")!.stock, 0);
  assert.deepEqual(stockAlerts(out), [["low_inventory", 0], ["out_of_stock", 0]]);
});

Deno.test("stock: sales remembered before the first update are bounded by SALES_MEMORY, the oldest forgotten", () => {
  let inventory = UNKNOWN_INVENTORY;
  for (let i = 0; i <= SALES_MEMORY; i++) inventory = applySale(inventory, 1, 1000 + i);
  inventory = applySale(inventory, 2, 1000 + SALES_MEMORY); // the same instant as the newest: one entry
  assert.equal(inventory.level, null, "unknown until an update");
  assert.equal(inventory.sales.length, SALES_MEMORY);
  assert.deepEqual(inventory.sales[0], [1001, 1], "the oldest sale is forgotten");
  assert.deepEqual(inventory.sales[SALES_MEMORY - 1], [1000 + SALES_MEMORY, 3]);
  // An update dated before them all: every remembered sale (102 units) is subtracted, the forgotten one is not.
  assert.equal(applyUpdate(inventory, 500, 0).level, 500 - (SALES_MEMORY + 2));
  // An update in their midst keeps only the later ones.
  const mid = applyUpdate(inventory, 500, 1000 + SALES_MEMORY - 2);
  assert.deepEqual(mid.sales, [[1000 + SALES_MEMORY - 1, 1], [1000 + SALES_MEMORY, 3]]);
  assert.equal(mid.level, 496);
});

Deno.test("trending score: decays with a one-hour half-life on event time, independent of arrival order", async () => {
  const b = new EventBuilder();
  const view = (user: string, seconds: number) => b.event("product_viewed", user, seconds, { productId: "p1" });
  const now = await fold([view("a", 0), view("b", 0)]);
  assert.equal((now.persisted("product", "p1") as { trendingScore: number }).trendingScore, 2);
  const hourLater = await fold([view("a", 0), view("b", HOUR)]);
  assert.equal((hourLater.persisted("product", "p1") as { trendingScore: number }).trendingScore, 1.5);
  const cart = await fold([b.event("product_added_to_cart", "a", 0, { productId: "p1", quantity: 1, price: 1 })]);
  assert.equal((cart.persisted("product", "p1") as { trendingScore: number }).trendingScore, 3, "a cart add weighs 3");

  const events = Array.from({ length: 40 }, (_, i) => view(`u${i}`, (i * 7919) % (5 * HOUR)));
  const forward = (await fold(events)).persisted("product", "p1") as Record<string, unknown>;
  const backward = (await fold([...events].reverse())).persisted("product", "p1") as Record<string, unknown>;
  assert.equal(forward.trendingScore, backward.trendingScore);
  assert.deepEqual(forward.trend, backward.trend);
  // Ten half-lives later the old buckets are gone.
  const aged = await fold([view("a", 0), view("b", 11 * HOUR)]);
  assert.equal(aged.products.get("p1")!.trend.length, 1);
});

Deno.test("related products: bounded co-view and co-buy counters; recommendations skip the cart, purchases and the product", async () => {
  const b = new EventBuilder();
  const events = [];
  // Sessions of users who viewed p1 then p2 (3 times), p1 then p3 (2 times), and bought p1 with p4 (once).
  for (const [user, other] of [["a", "p2"], ["b", "p2"], ["c", "p2"], ["d", "p3"], ["e", "p3"]]) {
    events.push(
      b.event("product_viewed", user, 0, { productId: "p1" }),
      b.event("product_viewed", user, 10, { productId: other }),
    );
  }
  events.push(b.event("order_completed", "f", 20, {
    orderId: "of",
    items: [{ productId: "p1", quantity: 1, price: 1 }, { productId: "p4", quantity: 1, price: 1 }],
    total: 2,
  }));
  // A user with p2 in the cart and p3 bought views p1.
  events.push(
    b.event("order_completed", "z", 100, {
      orderId: "oz",
      items: [{ productId: "p3", quantity: 1, price: 1 }],
      total: 1,
    }),
    b.event("product_added_to_cart", "z", 200, { productId: "p2", quantity: 1, price: 1 }),
    b.event("product_viewed", "z", 300, { productId: "p1" }),
  );
  const r = await fold(events);
  const p1 = r.persisted("product", "p1") as Record<string, unknown>;
  assert.deepEqual(p1.coViewed, { p2: 3, p3: 2 }, "persisted as plain objects");
  assert.deepEqual(p1.coBought, { p4: 1 });
  assert.deepEqual(p1.related, [
    { productId: "p2", score: 3 },
    { productId: "p4", score: 3 },
    { productId: "p3", score: 2 },
  ]);
  const forZ = r.recommendations.filter((x) => x.userId === "z" && x.basedOn === "p1");
  assert.equal(forZ.length, 1);
  assert.deepEqual(forZ[0].items, [{ productId: "p4", score: 3 }]);
  assert.equal(forZ[0].generatedAt, new Date(b.time(300)).toISOString());
  assert.match(forZ[0].recommendationId, /^product-events-\d+-\d+-rec$/);

  // The counters keep at most RELATED_CANDIDATES entries, the highest counts.
  const few = domainSettings({ RELATED_CANDIDATES: 2 });
  const bounded = await fold(events, { settings: few });
  assert.deepEqual(bounded.products.get("p1")!.coViewed, new Map([["p2", 3], ["p3", 2]]));
  assert.equal(bounded.products.get("p1")!.coBought.size, 1);
});

Deno.test("product facts replayed after a crash (same ids) are counted once; a fact below the window is a replay", () => {
  const logic = createProductLogic(domainSettings({ FACT_DEDUPE_WINDOW: 1024 }));
  const fact = (offset: number): ProductFact => ({
    fact: "product_ordered",
    factId: `events-3-${offset}-p0`,
    productId: "p1",
    userId: "u",
    session: "u/auto-1",
    at: 1000 + offset,
    orderId: `o${offset}`,
    quantity: 1,
    revenueMillis: 1000,
    coBought: [],
  });
  let state = logic.initial("p1");
  // Out of offset order within a batch, then the whole segment again (a replay), then new ones.
  const offsets = [5, 3, 4, 8, 3, 4, 5, 8, 9, 2000, 900, 977, 976];
  for (const offset of offsets) {
    state = logic.handle(state, fact(offset), recordingContext(`events-3-${offset}`).ctx) as typeof state;
  }
  assert.equal(state.orders, 7, "5, 3, 4, 8, 9, 2000, 977");
  assert.equal(state.duplicates, 6, "3, 4, 5, 8 again; 900 and 976 below the window of 2000");
  assert.equal(state.unitsSold, 7);
  // Inventory events are deduplicated by eventId.
  const b = new EventBuilder();
  const update = logic.decode(record(b.inventory("p1", 5, 0)));
  state = logic.handle(state, update, recordingContext("product-events-0-1").ctx) as typeof state;
  state = logic.handle(state, update, recordingContext("product-events-0-2").ctx) as typeof state;
  assert.equal(state.duplicates, 7);
});

Deno.test("productLogic persists a compact JSON form and restores it, also from a checkpoint with only stock", async () => {
  const b = new EventBuilder();
  const events = [
    b.inventory("p1", 30, 0),
    ...Array.from({ length: 50 }, (_, i) => b.event("product_viewed", `u${i}`, i, { productId: "p1", category: "c" })),
    b.event("order_completed", "u1", 100, {
      orderId: "o",
      items: [{ productId: "p1", quantity: 2, price: 3 }],
      total: 6,
    }),
  ];
  const plain = await fold(events);
  const roundTripped = await fold(events, { roundTrip: true });
  assert.deepEqual(roundTripped.persisted("product", "p1"), plain.persisted("product", "p1"));
  const persisted = plain.persisted("product", "p1") as { viewers: { p: number; sparse?: string } };
  assert.equal(persisted.viewers.p, 14);
  assert.ok(
    persisted.viewers.sparse !== undefined && persisted.viewers.sparse.length < 300,
    "50 viewers fit in a few hundred bytes",
  );

  const old = productLogic.restore({
    productId: "p9",
    stock: 7,
    stockUpdatedAt: "2026-01-01T00:00:00.000Z",
    eventCount: 1,
  });
  assert.equal(old.stock, 7);
  assert.equal(old.inventory.level, 7);
  assert.equal(old.views, 0);
});

Deno.test("trending buckets and score do not depend on the arrival order of a view and a later stock update", async () => {
  const HOUR = 3600;
  const b = new EventBuilder();
  const view = b.event("product_viewed", "u1", 0, { productId: "p1" });
  const stock = b.inventory("p1", 50, 11 * HOUR); // ten half-lives (1 h by default) after the view, and more
  const persisted = async (events: Record<string, unknown>[]) =>
    (await fold(events)).persisted("product", "p1") as { trendingScore: number; trend: unknown[] };
  const viewFirst = await persisted([view, stock]);
  const stockFirst = await persisted([stock, view]);
  // The stock update moved the horizon the view's bucket was dropped behind, when it came first.
  assert.deepEqual(stockFirst.trend, viewFirst.trend);
  assert.equal(stockFirst.trendingScore, viewFirst.trendingScore);
  assert.equal(viewFirst.trend.length, 1);
});

Deno.test("two views keep the same trending buckets in either arrival order, whatever the half-life's milliseconds", () => {
  // 0.0167 minutes = 1,002 ms: buckets of 83 ms, and ten half-lives (10,020 ms) are not a whole number of them.
  const s = domainSettings({ TRENDING_HALF_LIFE_MINUTES: 0.0167 });
  const logic = createProductLogic(s);
  const half = minutesMs(s.TRENDING_HALF_LIFE_MINUTES);
  const width = Math.floor(half / 12);
  const horizon = 10 * half;
  const newer = 1000 * width + 70; // late in its bucket
  const older = 879 * width; // its bucket ends between (newer's bucket − horizon) and (newer − horizon)
  assert.ok(older + width > 1000 * width - horizon && older + width <= newer - horizon);
  const ctx: ActorContext = {
    now: () => 0,
    emit: () => {},
    outputId: (rule) => `x-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  const view = (at: number, n: number) => ({
    fact: "product_viewed",
    factId: `f${n}`,
    productId: "p1",
    userId: `u${n}`,
    session: `u${n}/auto-1`,
    at,
    coViewed: [],
  });
  const buckets = (order: number[]) => {
    let state = logic.initial("p1");
    order.forEach((at, n) => state = logic.handle(state, view(at, n) as never, ctx) as typeof state);
    return state.trend.map((b) => b[0]);
  };
  // The horizon came from the newest bucket's start one way and the newest view's exact time the other.
  assert.deepEqual(buckets([newer, older]), buckets([older, newer]));
});

Deno.test("stock: a sale at an update's instant is in it; a later update of the same instant replaces it", () => {
  const updated = applyUpdate(UNKNOWN_INVENTORY, 50, 1000);
  assert.equal(applySale(updated, 5, 1000).level, 50, "a sale dated at the snapshot is already in it");
  assert.equal(applySale(updated, 5, 1001).level, 45);
  // Two updates of one instant follow their arrival order: the later-arriving one is the snapshot.
  const again = applyUpdate(applySale(updated, 5, 1001), 30, 1000);
  assert.deepEqual([again.reported, again.level], [30, 25]);
  assert.equal(applyUpdate(again, 70, 999).level, 25, "an older update is stale");
});

Deno.test("stock: beyond SALES_MEMORY after an update the oldest sale is folded into the snapshot, not lost", () => {
  let inventory = applyUpdate(UNKNOWN_INVENTORY, 1000, 0);
  for (let i = 1; i <= SALES_MEMORY + 5; i++) inventory = applySale(inventory, 2, i);
  assert.equal(inventory.sales.length, SALES_MEMORY);
  assert.equal(inventory.reported, 1000 - 5 * 2);
  assert.equal(inventory.level, 1000 - (SALES_MEMORY + 5) * 2);
});

Deno.test("out_of_stock: raised at 0 only, not at 1; once per crossing", () => {
  const at = (level: number, lowAlerted = true, outAlerted = false) =>
    stockAlerts({ ...UNKNOWN_INVENTORY, level, reported: level, reportedAt: 0, lowAlerted, outAlerted }, 10);
  assert.deepEqual(at(1).raised, []);
  assert.deepEqual(at(0).raised, ["out_of_stock"]);
  assert.deepEqual(at(0, true, true).raised, []);
  assert.deepEqual(at(0, false).raised, ["low_inventory", "out_of_stock"]);
  assert.deepEqual(at(1, true, true).inventory.outAlerted, false, "back above 0 re-arms");
});

Deno.test("a product's lastEventAt is its latest event time, whatever the arrival order", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.inventory("p1", 50, 100),
    b.event("product_viewed", "u", 50, { productId: "p1" }),
  ], { partitions: 1 });
  assert.equal(r.products.get("p1")!.lastEventAt, b.time(100));
});

Deno.test("product attributes: of one instant the larger value wins, in either arrival order; an empty one is ignored", async () => {
  const b = new EventBuilder();
  const shoes = b.event("product_viewed", "u1", 0, { productId: "p1", category: "shoes", price: 20 });
  const hats = b.event("product_viewed", "u2", 0, { productId: "p1", category: "hats", price: 30 });
  const empty = b.event("product_viewed", "u3", 100, { productId: "p1", category: "" });
  for (const order of [[shoes, hats, empty], [hats, shoes, empty]]) {
    const p = (await fold(order)).persisted("product", "p1") as Record<string, unknown>;
    assert.equal(p.category, "shoes");
    assert.equal(p.price, 30);
  }
});

Deno.test("product removals count the units the cart actually gave up", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "p1", quantity: 5, price: 1 }),
    b.event("product_removed_from_cart", "u", 10, { productId: "p1", quantity: 2 }),
    b.event("product_removed_from_cart", "u", 20, { productId: "p1", quantity: 9 }), // only 3 left
  ]);
  const p = r.products.get("p1")!;
  assert.deepEqual([p.cartRemovals, p.cartUnitsRemoved, p.cartUnitsAdded], [2, 5, 5]);
});

Deno.test("a view of a product with no related products yet sends no recommendation, though the request counts", async () => {
  const b = new EventBuilder();
  const r = await fold([b.event("product_viewed", "u", 0, { productId: "p1" })]);
  assert.deepEqual(r.recommendations, []);
  assert.equal(r.products.get("p1")!.recommendationsSent, 0);
  assert.equal(r.users.get("u")!.recommendations.count, 1);
});

Deno.test("trending: a view older than the horizon behind the newest activity is dropped, in either arrival order", async () => {
  const b = new EventBuilder();
  const old = b.event("product_viewed", "u1", 0, { productId: "p1" });
  const recent = b.event("product_viewed", "u2", 12 * 3600, { productId: "p1" });
  const inOrder = (await fold([old, recent])).products.get("p1")!.trend;
  const late = (await fold([recent, old])).products.get("p1")!.trend;
  assert.deepEqual(late, inOrder);
  assert.deepEqual(inOrder.map(([start]) => start), [b.time(12 * 3600)]);
});

Deno.test("a recommendation is the top RECS_TOP_K left after the exclusions; one they empty is not sent, though asked", async () => {
  const b = new EventBuilder();
  const events = [];
  // base's co-views: q1 3, q2 2, q3 1.
  for (const [user, viewed] of [["a", ["q1", "q2", "q3"]], ["b", ["q1", "q2"]], ["c", ["q1"]]] as const) {
    events.push(b.event("product_viewed", user, 0, { productId: "base" }));
    viewed.forEach((productId, i) => events.push(b.event("product_viewed", user, 1 + i, { productId })));
  }
  events.push(
    b.event("product_viewed", "z", 600, { productId: "base" }),
    b.event("product_added_to_cart", "y", 600, { productId: "q1", quantity: 1, price: 1 }),
    b.event("product_viewed", "y", 700, { productId: "base" }),
    b.event("order_completed", "x", 600, {
      orderId: "ox",
      items: ["q1", "q2", "q3"].map((productId) => ({ productId, quantity: 1, price: 1 })),
      total: 3,
    }),
    b.event("product_viewed", "x", 700, { productId: "base" }),
  );
  const r = await fold(events, { settings: domainSettings({ RECS_TOP_K: 2 }) });
  const on = (userId: string) => r.recommendations.filter((x) => x.userId === userId && x.basedOn === "base");
  assert.deepEqual(on("z").map((x) => x.items), [[{ productId: "q1", score: 3 }, { productId: "q2", score: 2 }]]);
  assert.deepEqual(on("y").map((x) => x.items), [[{ productId: "q2", score: 2 }, { productId: "q3", score: 1 }]]);
  // Everything base relates to was bought: no message; the request still counts in the user's state (asked for).
  assert.deepEqual(on("x"), []);
  assert.equal(r.users.get("x")!.recommendations.count, 1);
  assert.equal(r.users.get("x")!.recommendations.lastRequestedAt, new Date(b.time(700)).toISOString());
});

Deno.test("a product's related list holds twice RECS_TOP_K products", async () => {
  const b = new EventBuilder();
  const views = ["p1", "p2", "p3", "p4"].map((productId, i) => b.event("product_viewed", "u", i, { productId }));
  const r = await fold(views, { settings: domainSettings({ RECS_TOP_K: 1 }) });
  const p4 = r.persisted("product", "p4") as { related: { productId: string }[] };
  assert.deepEqual(p4.related.map((x) => x.productId), ["p1", "p2"]);
});

Deno.test("stock: sales are kept in event-time order whatever their arrival, so the oldest is the one folded", () => {
  let inventory = applyUpdate(UNKNOWN_INVENTORY, 1000, 0);
  for (let i = 2; i <= SALES_MEMORY + 1; i++) inventory = applySale(inventory, 1, i);
  inventory = applySale(inventory, 5, 1); // late: the oldest sale, folded into the snapshot at once
  assert.deepEqual(inventory.sales[0], [2, 1]);
  assert.equal(inventory.reported, 995);
  // An update at 1 already holds the sale at 1: the sales after it (2…) are subtracted, the folded one not again.
  assert.equal(applyUpdate(inventory, 500, 1).level, 500 - SALES_MEMORY);
});

Deno.test("a product's eventCount and lastEventAt are its own events', not the co-occurrences other products send it", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_viewed", "u", 0, { productId: "p1" }),
    b.event("product_viewed", "u", 10, { productId: "p2" }), // p1 hears it was co-viewed with p2
    b.event("product_viewed", "u", 20, { productId: "p3" }), // and with p3
    b.event("order_completed", "u", 30, {
      orderId: "o1",
      items: [{ productId: "p2", quantity: 1, price: 5 }],
      total: 5,
    }),
    b.event("order_completed", "u", 40, {
      orderId: "o2",
      items: [{ productId: "p3", quantity: 1, price: 5 }],
      total: 5,
    }),
  ], { partitions: 1 });
  const p1 = r.products.get("p1")!;
  assert.ok(p1.coViewed.size > 0, "p1 did hear of its co-views");
  // It counted 3 events for one view, and its last event was another product's.
  assert.equal(p1.eventCount, 1);
  assert.equal(p1.lastEventAt, b.time(0));
  const p2 = r.products.get("p2")!;
  assert.ok(p2.coBought.size > 0, "p2 did hear of p3 bought after it in the session");
  assert.equal(p2.eventCount, 2, "its view and its order");
  assert.equal(p2.lastEventAt, b.time(30));
});
