/**
 * Figures by category over a real engine, on each log, across a restart: the realtime revenue by category (the
 * global actor) and the windowed top categories (`product_minutes` in PostgreSQL) count each order line under its
 * own category (else its cart item's), and each order once per category, as sums computed here from the events.
 */
import assert from "node:assert/strict";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { forEachLog } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

const MIN = 60_000;
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

forEachLog(
  "revenue and orders by category agree between the realtime answer and top-categories, before and after a restart",
  async (deployment) => {
    const t0 = Math.floor(Date.now() / MIN) * MIN - 8 * MIN;
    const event = (type: string, userId: string, at: number, properties: Json) => ({
      type,
      userId,
      occurredAt: new Date(t0 + at).toISOString(),
      properties,
    });
    const order = (userId: string, orderId: string, at: number, items: Json[]) =>
      event("order_completed", userId, at, {
        orderId,
        items,
        total: items.reduce((sum, i) => sum + i.quantity * i.price, 0),
      });
    const before = [
      event("product_added_to_cart", "u1", 5_000, { productId: "p1", price: 100, category: "phones" }),
      order("u1", "o1", 10_000, [{ productId: "p1", quantity: 1, price: 100, category: "phones" }]),
      // p1 is recategorised within the minute; u2 adds it as a tablet.
      event("product_viewed", "u2", 30_000, { productId: "p1", category: "tablets" }),
      event("product_added_to_cart", "u2", 35_000, { productId: "p1", price: 50, category: "tablets" }),
      order("u3", "o3", 2 * MIN, [
        { productId: "p1", quantity: 1, price: 20, category: "phones" },
        { productId: "p2", quantity: 3, price: 10, category: "toys" },
        { productId: "p3", quantity: 1, price: 5, category: "toys" },
      ]),
    ];
    const after = [
      // u2's cart, checkpointed before the restart, gives the line its category.
      order("u2", "o2", 5 * MIN, [{ productId: "p1", quantity: 2, price: 50 }]),
      order("u4", "o4", 6 * MIN, [
        { productId: "p2", quantity: 1, price: 10, category: "toys" },
        { productId: "p4", quantity: 1, price: 7, category: "apparel" },
      ]),
    ];

    /** Posts `events`, then waits for both answers to give `revenue` by category, and checks the orders. */
    const check = async (url: string, events: Json[], revenue: Json, orders: Json) => {
      const post = await fetch(`${url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(events),
      });
      assert.equal(post.status, 202, await post.text());
      const get = async (path: string): Promise<Json> => {
        const response = await fetch(`${url}${path}`);
        assert.equal(response.status, 200, path);
        return await response.json();
      };
      const sorted = (o: Json) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1));
      await eventually(
        "realtime revenue by category",
        async () => {
          const body = await get("/v1/analytics/realtime");
          return JSON.stringify(sorted(body.last15.revenueByCategory)) === JSON.stringify(revenue) ? body : undefined;
        },
        30_000,
        200,
      );
      const ranked = await eventually(
        "top categories by revenue",
        async () => {
          const body = await get("/v1/analytics/top-categories?by=revenue&window=15m");
          const seen = sorted(Object.fromEntries(body.items.map((i: Json) => [i.category, i.revenue])));
          return JSON.stringify(seen) === JSON.stringify(revenue) ? body : undefined;
        },
        30_000,
        200,
      );
      assert.deepEqual(sorted(Object.fromEntries(ranked.items.map((i: Json) => [i.category, i.orders]))), orders);
    };

    let engine = await startEngine(deployment.config, silentLogger);
    try {
      await check(engine.url, before, { phones: 120, toys: 35 }, { phones: 2, toys: 1 });
    } finally {
      await engine.stop();
    }
    engine = await startEngine(deployment.config, silentLogger);
    try {
      await check(
        engine.url,
        after,
        { apparel: 7, phones: 120, tablets: 100, toys: 45 },
        { apparel: 1, phones: 2, tablets: 1, toys: 2 },
      );
    } finally {
      await engine.stop();
    }
  },
);
