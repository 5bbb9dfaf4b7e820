/**
 * Figures by category agree across answers: the realtime revenue by category (the global actor's minutes) and the
 * windowed top categories (`product_minutes`, as checkpoints store them) count each view, cart add and order line under
 * the category stated with it (an order line stating none: its cart item's), whatever the product was called before or
 * after, compared with each other and with sums computed here from the events.
 */
import assert from "node:assert/strict";
import type { ProductMinute } from "../../engine/outputs.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { ProductMinuteDeltas } from "../../engine/product_minutes.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { encodeStates, saveStates } from "../../sql/checkpoints.ts";
import { migrate } from "../../sql/migrations.ts";
import { storeProductMinutes } from "../../sql/product_minutes.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;
type Line = { productId: string; quantity: number; price: number; category?: string };

/** Sums per category computed from the events: each line under its stated category, else its user's cart item's. */
function expectedByCategory(events: readonly Json[]) {
  const sums: Record<string, { views: number; cartAdds: number; orders: number; unitsSold: number; revenue: number }> =
    {};
  const at = (c: string) => sums[c] ??= { views: 0, cartAdds: 0, orders: 0, unitsSold: 0, revenue: 0 };
  const carts = new Map<string, string>(); // user/product → category of the cart item
  for (const e of events) {
    const p = e.properties;
    if (e.type === "product_viewed" && p.category) at(p.category).views++;
    if (e.type === "product_added_to_cart" && p.category) {
      at(p.category).cartAdds++;
      carts.set(`${e.userId}/${p.productId}`, p.category);
    }
    if (e.type === "order_completed") {
      const counted = new Set<string>(); // an order counts once in each category it holds
      for (const line of p.items as Line[]) {
        const category = line.category || carts.get(`${e.userId}/${line.productId}`);
        if (!category) continue;
        if (!counted.has(category)) at(category).orders++;
        counted.add(category);
        at(category).unitsSold += line.quantity;
        at(category).revenue += line.quantity * line.price;
      }
    }
  }
  return sums;
}

/** The events folded, their product minutes stored in checkpoints of `perCheckpoint` deltas, answers asked. */
async function answers(events: readonly Json[], now: number, perCheckpoint: number) {
  const r = await fold(events, { partitions: 1, roundTrip: true });
  const dir = await Deno.makeTempDir({ prefix: "category-figures-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const rows = [...r.products.keys()].map((key) => ({
      key,
      state: r.persisted("product", key),
      timers: {},
      lastActiveAt: 1,
    }));
    await db.sql.begin((tx) => saveStates(tx, "product", 0, encodeStates("product", rows)));
    const minutes = r.outputs.filter((o) => o.topic === "productMinutes").map((o) => o.value as ProductMinute);
    for (let i = 0; i < minutes.length; i += perCheckpoint) {
      // Added up per checkpoint as the partition worker does.
      const deltas = new ProductMinuteDeltas();
      for (const m of minutes.slice(i, i + perCheckpoint)) deltas.add(m);
      await db.sql.begin((tx) => storeProductMinutes(tx, 0, deltas.values()));
    }
    const reader: StateReader = {
      read: (kind) =>
        Promise.resolve(kind === "global" ? { state: r.persisted("global", "global"), source: "memory" } : null),
    };
    const handle = createHandler(queryRoutes({ reader, sql: db.sql, now: () => now }), silentLogger);
    const get = async (path: string): Promise<Json> => {
      const response = await handle(new Request(`http://engine.test${path}`));
      assert.equal(response.status, 200, path);
      return await response.json();
    };
    const categories = async (by: string) =>
      Object.fromEntries((await get(`/v1/analytics/top-categories?by=${by}&window=15m`)).items.map((i: Json) => [
        i.category,
        { views: i.views, cartAdds: i.cartAdds, orders: i.orders, unitsSold: i.unitsSold, revenue: i.revenue },
      ]));
    return {
      realtime: await get("/v1/analytics/realtime"),
      byRevenue: await categories("revenue"),
      byViews: await categories("views"),
      byPurchases: await categories("purchases"),
      products: await get("/v1/analytics/top-products?by=revenue&window=15m"),
      product: (id: string) => r.persisted("product", id) as Json,
    };
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const revenues = (sums: Record<string, { revenue: number }>) =>
  Object.fromEntries(Object.entries(sums).filter(([, s]) => s.revenue > 0).map(([c, s]) => [c, s.revenue]));
const viewed = (sums: Record<string, { views: number }>) =>
  Object.fromEntries(Object.entries(sums).filter(([, s]) => s.views > 0));
const bought = (sums: Record<string, { unitsSold: number }>) =>
  Object.fromEntries(Object.entries(sums).filter(([, s]) => s.unitsSold > 0));
const sortedKeys = <V>(o: Record<string, V>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1));

for (const perCheckpoint of [1, 100]) {
  Deno.test(`revenue, purchases and views by category count each line and view under its own category in realtime and top-categories alike, when the product changes category mid-minute (checkpoints of ${perCheckpoint} deltas)`, async () => {
    const b = new EventBuilder();
    const order = (user: string, id: string, seconds: number, items: Line[]) =>
      b.event("order_completed", user, seconds, {
        orderId: id,
        items,
        total: items.reduce((sum, l) => sum + l.quantity * l.price, 0),
      });
    const events = [
      b.event("product_viewed", "u1", 0, { productId: "p1", category: "phones" }),
      b.event("product_added_to_cart", "u1", 5, { productId: "p1", price: 100, category: "phones" }),
      order("u1", "o1", 10, [{ productId: "p1", quantity: 1, price: 100, category: "phones" }]),
      // The storefront recategorises p1 within the same minute.
      b.event("product_viewed", "u2", 30, { productId: "p1", category: "tablets" }),
      b.event("product_added_to_cart", "u2", 35, { productId: "p1", price: 50, category: "tablets" }),
      // A late view, dated before the recategorisation, under the category of its time.
      b.event("product_viewed", "u5", 15, { productId: "p1", category: "phones" }),
      // A line stating no category: its cart item's (tablets).
      order("u2", "o2", 70, [{ productId: "p1", quantity: 2, price: 50 }]),
      // A page still showing the old category sells p1 as a phone; p2 is a toy.
      order("u3", "o3", 130, [
        { productId: "p1", quantity: 1, price: 20, category: "phones" },
        { productId: "p2", quantity: 3, price: 10, category: "toys" },
      ]),
      b.event("product_viewed", "u4", 140, { productId: "p2", category: "toys" }),
    ];
    const expected = expectedByCategory(events);
    assert.deepEqual(revenues(expected), { phones: 120, tablets: 100, toys: 30 }, "the test's own sums");
    const a = await answers(events, b.time(150), perCheckpoint);

    assert.deepEqual(sortedKeys(a.realtime.last15.revenueByCategory), sortedKeys(revenues(expected)), "realtime");
    const windows: Record<string, number> = {};
    for (const w of a.realtime.revenueByCategory) {
      for (const [c, v] of Object.entries(w.revenue as Record<string, number>)) windows[c] = (windows[c] ?? 0) + v;
    }
    assert.deepEqual(sortedKeys(windows), sortedKeys(revenues(expected)), "realtime revenueByCategory windows");
    assert.deepEqual(sortedKeys(revenues(a.byRevenue)), sortedKeys(revenues(expected)), "top-categories by revenue");
    assert.deepEqual(sortedKeys(bought(a.byPurchases)), sortedKeys(bought(expected)), "top-categories by purchases");
    assert.deepEqual(sortedKeys(viewed(a.byViews)), sortedKeys(viewed(expected)), "top-categories by views");
    // Each product's revenue is its lines' whatever their categories: the top products and the product answer agree.
    const p1 = a.products.items.find((i: Json) => i.productId === "p1");
    assert.equal(p1.revenue, 220);
    assert.equal(a.product("p1").revenue, 220);
    // The product's category is the latest reported, the last line's (phones), in its answer and in the ranking alike.
    assert.equal(a.product("p1").category, "phones");
    assert.equal(p1.category, "phones");
  });
}

Deno.test("an order of several products of one category counts once in that category's orders, as it does in the realtime orders", async () => {
  const b = new EventBuilder();
  const events = [
    b.event("product_added_to_cart", "u1", 0, { productId: "shirt", price: 20, category: "apparel" }),
    b.event("order_completed", "u1", 10, {
      orderId: "o1",
      items: [
        { productId: "shirt", quantity: 1, price: 20 }, // apparel, from the cart
        { productId: "socks", quantity: 2, price: 5, category: "apparel" },
        { productId: "cap", quantity: 1, price: 15, category: "apparel" },
        { productId: "mug", quantity: 1, price: 8, category: "kitchen" },
      ],
      total: 63,
    }),
    b.event("order_completed", "u2", 20, {
      orderId: "o2",
      items: [{ productId: "socks", quantity: 1, price: 5, category: "apparel" }],
      total: 5,
    }),
  ];
  const expected = expectedByCategory(events);
  assert.deepEqual([expected.apparel.orders, expected.kitchen.orders], [2, 1], "the test's own counts");
  for (const perCheckpoint of [1, 100]) {
    const a = await answers(events, b.time(30), perCheckpoint);
    assert.equal(a.realtime.last15.orders, 2);
    assert.deepEqual(sortedKeys(a.byRevenue), sortedKeys(expected), `top-categories (checkpoints of ${perCheckpoint})`);
    assert.deepEqual(sortedKeys(revenues(a.byRevenue)), sortedKeys(a.realtime.last15.revenueByCategory));
    // Each product still counts the orders holding it.
    const products = Object.fromEntries(a.products.items.map((i: Json) => [i.productId, i.orders]));
    assert.deepEqual(products, { shirt: 1, socks: 2, cap: 1, mug: 1 });
  }
});

Deno.test("an order line taking its category from the cart does not report it as the product's category at the order's time", async () => {
  const b = new EventBuilder();
  const events = [
    b.event("product_added_to_cart", "u1", 0, { productId: "p1", price: 100, category: "phones" }),
    // The storefront recategorises p1 while it is in u1's cart; u1's order states no category.
    b.event("product_viewed", "u2", 60, { productId: "p1", category: "tablets" }),
    b.event("order_completed", "u1", 120, {
      orderId: "o1",
      items: [{ productId: "p1", quantity: 1, price: 100 }],
      total: 100,
    }),
  ];
  const a = await answers(events, b.time(130), 100);
  // The line's revenue is the cart item's category's, in both answers ...
  assert.deepEqual(a.realtime.last15.revenueByCategory, { phones: 100 });
  assert.deepEqual(revenues(a.byRevenue), { phones: 100 });
  // ... but the storefront's latest report of the product is still tablets: the cart's phones dates from the add.
  assert.equal(a.product("p1").category, "tablets");
  assert.equal(a.products.items[0].category, "tablets");
});
