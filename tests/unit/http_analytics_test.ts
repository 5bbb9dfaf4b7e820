/**
 * The realtime analytics route over the global state a fold of events ends with (no database: every
 * window here lies within the actor's memory).
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { INSTANCE_HEADER, type QueryRouter, type StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { analyticsAnswer, topProductsAnswer } from "../../http/query_responses.ts";
import { createHandler } from "../../http/server.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

/** A database that answers every query with no rows. */
const emptySql = ((_strings: TemplateStringsArray, ..._values: unknown[]) => Promise.resolve([])) as unknown as Sql;

Deno.test("GET /v1/analytics/realtime reports revenue by category in 5-minute windows, and per window of its own", async () => {
  const b = new EventBuilder();
  const order = (id: string, at: number, category: string, price: number) =>
    b.event("order_completed", "u1", at, {
      orderId: id,
      items: [{ productId: `p-${id}`, quantity: 1, price, category }],
      total: price,
    });
  const r = await fold([order("o1", 0, "shoes", 10), order("o2", 60, "hats", 7), order("o3", 360, "shoes", 4.5)], {
    partitions: 1,
  });
  const reader: StateReader = {
    read: (kind) =>
      Promise.resolve(kind === "global" ? { state: r.persisted("global", "global"), source: "memory" } : null),
  };
  const handle = createHandler(queryRoutes({ reader, sql: emptySql, now: () => b.time(400) }), silentLogger);
  const response = await handle(new Request("http://engine.test/v1/analytics/realtime"));
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.deepEqual(body.revenueByCategory, [
    { windowStart: "2026-01-05T10:00:00.000Z", windowEnd: "2026-01-05T10:05:00.000Z", revenue: { shoes: 10, hats: 7 } },
    { windowStart: "2026-01-05T10:05:00.000Z", windowEnd: "2026-01-05T10:10:00.000Z", revenue: { shoes: 4.5 } },
  ]);
  assert.deepEqual(body.last1.revenueByCategory, { shoes: 4.5 }, "the minute of the latest event");
  assert.deepEqual(body.last15.revenueByCategory, { shoes: 14.5, hats: 7 });
});

Deno.test("GET /v1/analytics/funnel counts the sessions that reached each stage, so no session step passes 100%", async () => {
  const b = new EventBuilder();
  const add = (user: string, at: number, productId: string) =>
    b.event("product_added_to_cart", user, at, { productId, price: 1 });
  const events = [
    // u1 lands, views one product, adds three, checks out and buys: one session through every stage.
    b.event("page_viewed", "u1", 0, { url: "/" }),
    b.event("product_viewed", "u1", 5, { productId: "p1" }),
    add("u1", 10, "p1"),
    add("u1", 11, "p2"),
    add("u1", 12, "p3"),
    b.event("checkout_started", "u1", 20),
    b.event("order_completed", "u1", 30, {
      orderId: "o1",
      items: [{ productId: "p1", quantity: 1, price: 1 }],
      total: 1,
    }),
    // u2 only lands; u3's first event is a product view (visited and viewed at once), and it comes twice.
    b.event("page_viewed", "u2", 40, { url: "/" }),
    b.event("product_viewed", "u3", 50, { productId: "p1" }),
    // u1 comes back after the 30-minute gap: a second session, which only visits.
    b.event("page_viewed", "u1", 45 * 60, { url: "/" }),
    // A late view of u1's first session (arriving after the second opened) moves no session's stage.
    b.event("product_viewed", "u1", 60, { productId: "p9" }),
  ];
  const repeated = { ...events[8] }; // the same eventId again: counted once
  const r = await fold([...events, repeated], { partitions: 1 });
  const reader: StateReader = {
    read: (kind) =>
      Promise.resolve(kind === "global" ? { state: r.persisted("global", "global"), source: "memory" } : null),
  };
  const handle = createHandler(queryRoutes({ reader, sql: emptySql, now: () => b.time(46 * 60) }), silentLogger);
  const response = await handle(new Request("http://engine.test/v1/analytics/funnel?window=1h"));
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.deepEqual(body.funnelSessions, {
    visited: 4,
    viewed_product: 2,
    added_to_cart: 1,
    started_checkout: 1,
    purchased: 1,
  });
  assert.deepEqual(body.sessionConversion, {
    visitToView: 0.5,
    viewToCart: 0.5,
    cartToCheckout: 1,
    checkoutToPurchase: 1,
    visitToPurchase: 0.25,
  });
  assert.equal(body.conversion.viewToCart, 1, "event counts: three adds over three views (one of them late)");
  assert.equal(body.steps.addedToCart, 3);
  const realtime = await (await handle(new Request("http://engine.test/v1/analytics/realtime"))).json();
  assert.deepEqual(realtime.last1.funnelSessions.visited, 1, "u1's second session, in the latest minute");
});

Deno.test("analytics answers name where the global state was read and who answered, as documented", async () => {
  const b = new EventBuilder();
  const r = await fold([b.event("page_viewed", "u1", 0, { url: "/" })], { partitions: 1 });
  const asOf = "2026-01-05T10:00:30.000Z";
  const reader: StateReader = {
    read: (kind) =>
      Promise.resolve(
        kind === "global"
          ? { state: r.persisted("global", "global"), source: "checkpoint", asOf, instance: "i1" }
          : null,
      ),
  };
  const handle = createHandler(queryRoutes({ reader, sql: emptySql, now: () => b.time(60) }), silentLogger);
  for (
    const path of [
      "/v1/analytics/realtime",
      "/v1/analytics/funnel",
      "/v1/analytics/top-products",
      "/v1/analytics/top-products?window=all&by=trending",
      "/v1/analytics/top-categories",
    ]
  ) {
    const response = await handle(new Request(`http://engine.test${path}`));
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get(INSTANCE_HEADER), "i1", path);
    const body = (path.includes("top-products") ? topProductsAnswer : analyticsAnswer).parse(await response.json());
    assert.deepEqual([body.source, body.asOf, body.instance], ["checkpoint", asOf, "i1"], path);
  }
  const totals = await (await handle(new Request("http://engine.test/v1/analytics/top-products?window=all"))).json();
  assert.deepEqual(totals, { by: "views", window: "all", items: [] }, "all-time totals read no global state");
});

Deno.test("analytics queries reading the global state take the owner's answer; all-time totals are never routed", async () => {
  const routed: string[] = [];
  const router: QueryRouter = {
    route: (
      kind,
      key,
      request,
    ) => (routed.push(`${kind}/${key} ${new URL(request.url).pathname}${new URL(request.url).search}`),
      Promise.resolve(Response.json({ fromTheOwner: true }))),
  };
  const reader: StateReader = { read: () => Promise.reject(new Error("the owner answers: nothing is read here")) };
  const handle = createHandler(queryRoutes({ reader, router, sql: emptySql, now: () => 0 }), silentLogger);
  for (
    const path of [
      "/v1/analytics/realtime",
      "/v1/analytics/funnel?window=30d",
      "/v1/analytics/top-products?window=1h",
      "/v1/analytics/top-products?window=all&by=trending",
      "/v1/analytics/top-categories?by=revenue",
    ]
  ) {
    const response = await handle(new Request(`http://engine.test${path}`));
    assert.deepEqual(await response.json(), { fromTheOwner: true }, path);
  }
  assert.deepEqual(routed, [
    "global/global /v1/analytics/realtime",
    "global/global /v1/analytics/funnel?window=30d",
    "global/global /v1/analytics/top-products?window=1h",
    "global/global /v1/analytics/top-products?window=all&by=trending",
    "global/global /v1/analytics/top-categories?by=revenue",
  ]);
  const totals = await handle(new Request("http://engine.test/v1/analytics/top-products?window=all&by=revenue"));
  assert.equal(totals.status, 200);
  assert.deepEqual(await totals.json(), { by: "revenue", window: "all", items: [] });
  assert.equal(routed.length, 5, "answered here, from PostgreSQL");
});
