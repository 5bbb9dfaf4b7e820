/**
 * The query routes over a real engine, on each log: after a few shoppers browse, buy and drain a
 * product's stock, recommendations, related products, realtime analytics, the funnel, top products
 * and alerts answer with the values those events imply. The engine registers its ADVERTISED_URL.
 * On Kafka and PostgreSQL: with a one-hour memory, the global actor's finished minutes go to
 * `analytics_minutes` and a 24-hour funnel is completed from them (`fromStorage`); a replay of the
 * analytics partition rewrites them identically.
 */
import assert from "node:assert/strict";
import { SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { topicNames } from "../../engine/config.ts";
import { connectDatabase } from "../../engine/database.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { createStateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { deploy, forEachLog, onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase, testConfig } from "../helpers/services.ts";

const MIN = 60_000;
/** What the engine under test registers for query routing (no other instance dials it here). */
const ADVERTISED = "http://engine-under-test.example:8080";
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** Five shoppers view pA (all), pB (three) and pC (one); u0 buys pA; p9's stock of 12 is sold out. */
function events(t0: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const add = (type: string, userId: string | undefined, at: number, properties: Record<string, unknown>) =>
    out.push({ type, ...(userId ? { userId } : {}), occurredAt: new Date(at).toISOString(), properties });
  add("inventory_updated", undefined, t0, { productId: "p9", stock: 12 });
  add("page_viewed", "lurker", t0, { url: "/" });
  const viewed = ["pA", "pB", "pC"];
  for (let u = 0; u < 5; u++) {
    const start = t0 + u * 30_000;
    add("page_viewed", `u${u}`, start, { url: "/" });
    for (let k = 0; k < 3 - Math.min(2, Math.ceil(u / 2)); k++) {
      add("product_viewed", `u${u}`, start + (k + 1) * MIN, { productId: viewed[k], price: 25, category: "toys" });
    }
  }
  add("product_added_to_cart", "u0", t0 + 7 * MIN, { productId: "pA", price: 25, quantity: 2 });
  add("checkout_started", "u0", t0 + 7.5 * MIN, { cartValue: 50 });
  add("order_completed", "u0", t0 + 8 * MIN, {
    orderId: "o-u0",
    items: [{ productId: "pA", quantity: 2, price: 25 }],
    total: 50,
  });
  add("order_completed", "dave", t0 + 8.5 * MIN, {
    orderId: "o-dave",
    items: [{ productId: "p9", quantity: 3, price: 10 }],
    total: 30,
  });
  add("order_completed", "erin", t0 + 9 * MIN, {
    orderId: "o-erin",
    items: [{ productId: "p9", quantity: 9, price: 10 }],
    total: 90,
  });
  return out.sort((a, b) => String(a.occurredAt).localeCompare(String(b.occurredAt)));
}

forEachLog(
  "the query routes answer recommendations, related, realtime, funnel, top products and alerts from real state",
  { settings: { CLOCK_IDLE_MS: "500", ADVERTISED_URL: ADVERTISED } },
  async ({ config }) => {
    const engine = await startEngine(config, silentLogger);
    // The engine's own connection: PGlite serves one, and PostgreSQL answers the same on it.
    const sql = engine.clients.sql;
    try {
      // The instance registers ADVERTISED_URL for query routing, not the address it is bound to.
      const [registered] = await sql<{ http_url: string }[]>`
        select http_url from instances where instance_id = ${engine.instanceId}`;
      assert.equal(registered?.http_url, ADVERTISED);
      assert.notEqual(engine.url, ADVERTISED);

      const t0 = Date.now() - 10 * MIN;
      const batch = events(t0);
      const views = batch.filter((e) => e.type === "product_viewed").length;
      assert.equal(views, 9);
      const posted = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
      });
      assert.equal(posted.status, 202, await posted.text());

      const reader = createStateReader(engine.runtime, new SqlCheckpointStore(sql));
      const handle = createHandler(queryRoutes({ reader, sql, now: Date.now }), silentLogger);
      const get = async (path: string): Promise<{ status: number; body: Json }> => {
        const response = await handle(new Request(`http://engine.test${path}`));
        return { status: response.status, body: await response.json() };
      };
      /** Polls `path` until `ready` holds for its 200 body. */
      const until = (path: string, ready: (body: Json) => boolean) =>
        eventually(
          path,
          async () => {
            const { status, body } = await get(path);
            return status === 200 && ready(body) ? body : undefined;
          },
          30_000,
          200,
        );

      // Top products (checkpointed product states): pA has the most views, p9 the most units and revenue.
      // Each product partition checkpoints on its own: wait until every view is counted.
      const viewsCounted = (b: Json) => b.items.reduce((n: number, p: Json) => n + p.views, 0) === views;
      const byViews = await until("/v1/analytics/top-products?by=views", viewsCounted);
      assert.deepEqual(byViews.items.slice(0, 3).map((p: Json) => [p.productId, p.views]), [
        ["pA", 5],
        ["pB", 3],
        ["pC", 1],
      ]);
      const byUnits = await until(
        "/v1/analytics/top-products?by=purchases&limit=2",
        (b) => b.items[0]?.unitsSold === 12 && b.items[1]?.unitsSold === 2,
      );
      assert.deepEqual(byUnits.items.map((p: Json) => p.productId), ["p9", "pA"]);
      assert.equal(byUnits.items[1].unitsSold, 2);
      const byRevenue = await until(
        "/v1/analytics/top-products?by=revenue&limit=1",
        (b) => b.items[0]?.revenue === 120,
      );
      assert.deepEqual(byRevenue.items.map((p: Json) => p.productId), ["p9"]);
      // A ranking by a measure lists only products with some of it: p9 was never viewed, pB and pC never sold.
      const ids = async (path: string) => (await get(path)).body.items.map((p: Json) => p.productId);
      assert.deepEqual(await ids("/v1/analytics/top-products?by=views&limit=100"), ["pA", "pB", "pC"]);
      assert.deepEqual(await ids("/v1/analytics/top-products?by=purchases&limit=100"), ["p9", "pA"]);
      assert.deepEqual(await ids("/v1/analytics/top-products?by=revenue&limit=100"), ["p9", "pA"]);
      assert.deepEqual(await ids("/v1/analytics/top-products?by=views&window=all&limit=100"), ["pA", "pB", "pC"]);
      assert.deepEqual(await ids("/v1/analytics/top-products?by=purchases&window=all&limit=100"), ["p9", "pA"]);
      const trending = await get("/v1/analytics/top-products?by=trending&limit=100");
      assert.equal(trending.status, 200);
      assert.equal(trending.body.items.length, 4);
      const scores = trending.body.items.map((p: Json) => p.trendingScore);
      assert.deepEqual(scores, [...scores].sort((a, b) => b - a), "ordered by trending score");
      const allTime = await get("/v1/analytics/top-products?by=trending&window=all&limit=100");
      assert.equal(allTime.status, 200);
      assert.deepEqual(
        allTime.body.items.map((p: Json) => [p.productId, p.trendingScore]),
        trending.body.items.map((p: Json) => [p.productId, p.trendingScore]),
        "every product has a fact in the last 24 hours, and both compare scores at the same minute",
      );

      // Alerts: p9 went low, then out of stock.
      const all = await until(
        "/v1/alerts",
        (b) => ["low_inventory", "out_of_stock"].every((t) => b.items.some((a: Json) => a.type === t)),
      );
      const times = all.items.map((a: Json) => a.occurredAt);
      assert.deepEqual(times, [...times].sort().reverse(), "newest first");
      const outOfStock = await get("/v1/alerts?type=out_of_stock");
      assert.equal(outOfStock.body.items.length, 1);
      assert.deepEqual(outOfStock.body.items[0].subject, { kind: "product", id: "p9" });
      assert.equal(outOfStock.body.items[0].severity, "critical");
      assert.equal((await get("/v1/alerts?limit=1")).body.items.length, 1);
      const future = new Date(Date.now() + 60 * MIN).toISOString();
      assert.deepEqual((await get(`/v1/alerts?since=${encodeURIComponent(future)}`)).body.items, []);
      const since = new Date(t0 + 8.75 * MIN).toISOString();
      const late = (await get(`/v1/alerts?since=${encodeURIComponent(since)}&type=low_inventory`)).body.items;
      assert.ok(late.every((a: Json) => a.type === "low_inventory" && a.occurredAt >= since));

      // Realtime and funnel, from the global actor's minute rollups.
      const realtime = await until(
        "/v1/analytics/realtime",
        (b) => b.last15.orders === 3 && b.last15.eventsByType.product_viewed === views,
      );
      assert.equal(realtime.last15.eventsByType.product_viewed, views);
      assert.equal(realtime.last15.revenue, 170);
      assert.ok(realtime.last15.activeUsers >= 5);
      assert.ok(realtime.last1.orders <= realtime.last5.orders && realtime.last5.orders <= 3);
      assert.equal(realtime.topProducts[0].productId, "pA");
      const funnel = await until(
        "/v1/analytics/funnel?window=1h",
        (b) => b.steps.orderCompleted === 3 && b.steps.productViewed === views,
      );
      assert.deepEqual(funnel.steps, { productViewed: views, addedToCart: 1, checkoutStarted: 1, orderCompleted: 3 });
      assert.equal(funnel.minutes, 60);
      assert.equal(funnel.conversion.viewToCart, Math.round((1 / views) * 1e6) / 1e6);
      const narrow = await get("/v1/analytics/funnel?window=1m");
      assert.ok(narrow.body.steps.productViewed < views, "a 1-minute window sees fewer views than an hour");

      // Related products of pA: co-viewed pB and pC.
      const related = await until("/v1/products/pA/related", (b) => b.items.length >= 2);
      assert.deepEqual(related.items.map((r: Json) => r.productId).sort(), ["pB", "pC"]);
      assert.equal((await get("/v1/products/pA/related?limit=1")).body.items.length, 1);
      assert.equal((await get("/v1/products/nope/related")).status, 404);

      // Recommendations: a shopper who got some; a known user without any; an unknown user.
      const [stored] = await eventually(
        "stored recommendations",
        async () => {
          const rows = await sql<{ user_id: string; payload: Json }[]>`
          select user_id, payload from latest_recommendations order by user_id limit 1`;
          return rows.length > 0 ? rows : undefined;
        },
        30_000,
        200,
      );
      const recs = await get(`/v1/users/${stored.user_id}/recommendations`);
      assert.equal(recs.status, 200);
      assert.equal(recs.body.userId, stored.user_id);
      assert.ok(recs.body.items.length > 0);
      assert.deepEqual(recs.body.items, stored.payload.items);
      assert.match(
        recs.body.recommendationId,
        /^.+-\d+-\d+(\.\d+)?-rec$/,
        "the id the recommendation was published with",
      );
      await until("/v1/users/lurker/recommendations", () => true);
      assert.deepEqual((await get("/v1/users/lurker/recommendations")).body, { userId: "lurker", items: [] });
      const unknown = await get("/v1/users/nobody/recommendations");
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.status, 404);
    } finally {
      await engine.stop();
    }
  },
);

/** One shopper over the last five hours: a page and a product view every 5 minutes, an order every 30. */
function history(t0: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const add = (type: string, at: number, properties: Record<string, unknown>) =>
    out.push({ type, userId: "solo", occurredAt: new Date(at).toISOString(), properties });
  for (let m = 0; m < 300; m += 5) {
    const at = t0 + m * MIN;
    add("page_viewed", at, { url: "/" });
    add("product_viewed", at + 10_000, { productId: `p${m % 7}`, price: 10, category: "toys" });
    if (m % 30 === 0) {
      add("product_added_to_cart", at + 20_000, { productId: `p${m % 7}`, price: 10 });
      add("checkout_started", at + 30_000, {});
      add("order_completed", at + 40_000, {
        orderId: `o-${m}`,
        items: [{ productId: `p${m % 7}`, quantity: 1, price: 10, category: "toys" }],
        total: 10,
      });
    }
  }
  return out;
}

onlyOn(
  "embedded",
  "the engine ranks related products with its RECS_CO_BOUGHT_WEIGHT, in both product answers",
  async () => {
    const { deployment, remove } = await deploy("embedded", { RECS_CO_BOUGHT_WEIGHT: "4" });
    try {
      const engine = await startEngine(deployment.config, silentLogger);
      try {
        const at = (minutes: number) => new Date(Date.now() - 10 * MIN + minutes * MIN).toISOString();
        // x1 bought with x2 once (a co-buy: 4 co-views here, 3 by default), viewed with x3 in one session.
        const batch = [
          {
            type: "order_completed",
            userId: "w1",
            occurredAt: at(0),
            properties: {
              orderId: "o-w1",
              items: [{ productId: "x1", quantity: 1, price: 5 }, { productId: "x2", quantity: 1, price: 5 }],
              total: 10,
            },
          },
          { type: "product_viewed", userId: "w2", occurredAt: at(1), properties: { productId: "x1" } },
          { type: "product_viewed", userId: "w2", occurredAt: at(2), properties: { productId: "x3" } },
        ];
        const posted = await fetch(`${engine.url}/v1/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(batch),
        });
        assert.equal(posted.status, 202, await posted.text());
        const expected = [{ productId: "x2", score: 4 }, { productId: "x3", score: 1 }];
        const product = await eventually("x1's related products", async () => {
          const body = await (await fetch(`${engine.url}/v1/products/x1`)).json() as Json;
          return body.related?.length === 2 ? body : undefined;
        });
        assert.deepEqual(product.related, expected);
        const related = await (await fetch(`${engine.url}/v1/products/x1/related?limit=100`)).json() as Json;
        assert.deepEqual(related.items, expected);
      } finally {
        await engine.stop();
      }
    } finally {
      await remove();
    }
  },
);

onlyOn("kafka", {
  name:
    "analytics windows beyond the global actor's memory are completed from PostgreSQL; a replay rewrites that history",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    // One hour of minutes in memory; no wall-clock timers, so that only the posted events count.
    const config = testConfig(db.url, { ANALYTICS_RETENTION_MINUTES: "60", CLOCK_IDLE_MS: String(86_400_000) });
    const sql = connectDatabase({ url: db.url, maxConnections: 2 });
    let engine = await startEngine(config, silentLogger);
    try {
      const t0 = Date.now() - 300 * MIN;
      const batch = history(t0);
      // Minutes leave the memory once every events partition has passed them: with idle clocks off, each one needs a
      // record of its own by the history's end (a page view, which no funnel step counts).
      const end = new Date(Math.max(...batch.map((e) => Date.parse(String(e.occurredAt))))).toISOString();
      for (let partition = 0; partition < config.PARTITIONS; partition++) {
        let i = 0;
        while (partitionForKey(`bystander-${i}`, config.PARTITIONS) !== partition) i++;
        batch.push({ type: "page_viewed", userId: `bystander-${i}`, occurredAt: end, properties: { url: "/" } });
      }
      const posted = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
      });
      assert.equal(posted.status, 202, await posted.text());
      const get = async (path: string): Promise<Json> => {
        const response = await fetch(`${engine.url}${path}`);
        assert.equal(response.status, 200, path);
        return await response.json();
      };
      const rows = async () =>
        await sql<Json[]>`
          select minute, events, orders, revenue_millis, page_views, category_revenue_millis, active_users
            from analytics_minutes order by minute`;
      // Finished by the last partition's watermark, the minutes are stored by the checkpoint after it, and stay in
      // memory one more round, which an event of a later minute ends.
      await eventually("the finished minutes stored", async () => (await rows()).length > 0 || undefined, 30_000, 200);
      const later = {
        type: "page_viewed",
        userId: "solo",
        occurredAt: new Date(Date.parse(end) + MIN).toISOString(),
        properties: { url: "/" },
      };
      const next = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(later),
      });
      assert.equal(next.status, 202, await next.text());
      batch.push(later);
      const windowEnd = new Date(Math.floor(Date.parse(later.occurredAt) / MIN) * MIN + MIN).toISOString();
      const day = await eventually(
        "a 24-hour funnel with every order, ending at the later event's minute",
        async () => {
          const body = await get("/v1/analytics/funnel?window=24h");
          return body.steps.orderCompleted === 10 && body.to === windowEnd ? body : undefined;
        },
        30_000,
        200,
      );
      const stored = await rows();
      assert.deepEqual(day.steps, { productViewed: 60, addedToCart: 10, checkoutStarted: 10, orderCompleted: 10 });
      assert.equal(day.fromStorage, true);
      assert.ok(
        stored.every((r) => r.minute.toISOString() >= day.from),
        "every stored minute lies within the 24 hours",
      );
      // The window reads storage before the memory's oldest minute; the last round's finished minutes
      // are stored and still in memory, and are read from memory only.
      const readFromStorage = stored.filter((r) => r.minute.toISOString() < day.storage.to);
      assert.equal(day.storage.minutes, readFromStorage.length);
      const memoryFrom = Date.parse(day.storage.to);
      const ordersInMemory = batch.filter((e) =>
        e.type === "order_completed" && Date.parse(String(e.occurredAt)) >= memoryFrom
      ).length;
      const storedOrders = readFromStorage.reduce((n, r) => n + Number(r.orders), 0);
      assert.ok(storedOrders > 0 && ordersInMemory > 0, `${storedOrders} stored, ${ordersInMemory} in memory`);
      assert.equal(storedOrders + ordersInMemory, 10, "each order is either stored or in memory, never both");
      const sold = stored.find((r) => Number(r.orders) > 0)!;
      assert.deepEqual([sold.revenue_millis, sold.category_revenue_millis], ["10000", { toys: 10_000 }]);

      const hour = await get("/v1/analytics/funnel?window=1h");
      assert.equal(hour.fromStorage, false);
      const lastAt = Math.max(...batch.map((e) => Date.parse(String(e.occurredAt))));
      const to = Math.floor(lastAt / MIN) * MIN + MIN;
      const viewsInHour = batch.filter((e) => {
        const at = Date.parse(String(e.occurredAt));
        return e.type === "product_viewed" && at >= to - 60 * MIN && at < to;
      }).length;
      assert.equal(hour.steps.productViewed, viewsInHour);
      const realtime = await get("/v1/analytics/realtime");
      assert.equal(realtime.last15.fromStorage, false);

      // Replay the analytics partition from offset 0 with no global state, over tampered rows.
      await engine.stop();
      const analytics = topicNames(config).analytics;
      await sql`update partition_checkpoints set next_offset = 0 where topic = ${analytics}`;
      await sql`delete from actor_states where kind = 'global'`;
      await sql`update analytics_minutes set orders = -1, events = '{}'`;
      engine = await startEngine(config, silentLogger);
      const replayed = await eventually(
        "the replay rewrote the history",
        async () => {
          const now = await rows();
          return now.every((r) => Number(r.orders) >= 0) ? now : undefined;
        },
        30_000,
        200,
      );
      assert.deepEqual(replayed, stored, "the same finished minutes, stored again");
      const again = await eventually(
        "the replayed 24-hour funnel",
        async () => {
          const body = await get("/v1/analytics/funnel?window=24h");
          return body.steps.orderCompleted === 10 ? body : undefined;
        },
        30_000,
        200,
      );
      assert.deepEqual(again.steps, day.steps);
    } finally {
      await sql.end();
      await engine.stop();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name: "top products and categories are ranked over their window; a retried or fenced checkpoint adds nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url, { CLOCK_IDLE_MS: String(86_400_000) });
    const sql = connectDatabase({ url: db.url, maxConnections: 2 });
    const engine = await startEngine(config, silentLogger);
    let stopped = false;
    try {
      // pOld (garden) was viewed by six shoppers two hours ago; pNew (toys) by two, three minutes ago.
      const now = Date.now();
      const batch: Record<string, unknown>[] = [];
      const view = (userId: string, productId: string, category: string, at: number) =>
        batch.push({
          type: "product_viewed",
          userId,
          occurredAt: new Date(at).toISOString(),
          properties: { productId, price: 10, category },
        });
      for (let u = 0; u < 6; u++) view(`old${u}`, "pOld", "garden", now - 120 * MIN + u * 1000);
      for (let u = 0; u < 2; u++) view(`new${u}`, "pNew", "toys", now - 3 * MIN + u * 1000);
      const posted = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
      });
      assert.equal(posted.status, 202, await posted.text());
      const get = async (path: string): Promise<Json> => {
        const response = await fetch(`${engine.url}${path}`);
        assert.equal(response.status, 200, path);
        return await response.json();
      };
      const ids = (body: Json) => body.items.map((p: Json) => [p.productId ?? p.category, p.views]);

      // Views of six users (three user partitions) and the window's end (the global actor) arrive
      // at their own checkpoints: wait for all eight views and for the latest event.
      const latest = Math.floor((now - 3 * MIN + 1000) / MIN) * MIN + MIN;
      const day = await eventually(
        "both products counted in the 24-hour window",
        async () => {
          const body = await get("/v1/analytics/top-products?window=24h");
          const counted = body.items.reduce((n: number, p: Json) => n + p.views, 0) === 8;
          return counted && body.to === new Date(latest).toISOString() ? body : undefined;
        },
        30_000,
        200,
      );
      assert.deepEqual(ids(day), [["pOld", 6], ["pNew", 2]]);
      assert.equal(day.window, "24h");
      assert.equal(day.reference, "latestEvent");
      assert.deepEqual([day.from, day.to], [
        new Date(latest - 1440 * MIN).toISOString(),
        new Date(latest).toISOString(),
      ]);
      assert.equal(day.items[0].category, "garden");

      const recent = await get("/v1/analytics/top-products?window=5m");
      assert.deepEqual(ids(recent), [["pNew", 2]], "the 5-minute window ranks only the recent product");
      const allTime = await get("/v1/analytics/top-products?window=all");
      assert.deepEqual(ids(allTime), [["pOld", 6], ["pNew", 2]]);
      const trending = await get("/v1/analytics/top-products?by=trending&window=15m");
      assert.deepEqual(trending.items.map((p: Json) => p.productId), ["pNew"]);
      assert.deepEqual(ids(await get("/v1/analytics/top-categories?window=5m")), [["toys", 2]]);
      assert.deepEqual(ids(await get("/v1/analytics/top-categories?window=24h")), [["garden", 6], ["toys", 2]]);
      // Nothing was sold: rankings by purchases or revenue list nothing rather than unsold products.
      for (
        const path of ["top-products?by=purchases", "top-categories?by=revenue", "top-products?by=revenue&window=all"]
      ) {
        assert.deepEqual((await get(`/v1/analytics/${path}`)).items, [], path);
      }
      const trendingCategories = (await get("/v1/analytics/top-categories?by=trending&window=24h")).items;
      assert.deepEqual(trendingCategories.map((c: Json) => c.category).sort(), ["garden", "toys"]);
      const categoryScores = trendingCategories.map((c: Json) => c.trendingScore);
      assert.ok(categoryScores.every((n: number) => n > 0), JSON.stringify(categoryScores));
      assert.deepEqual(categoryScores, [...categoryScores].sort((x, y) => y - x), "ordered by trending score");
      const realtime = await get("/v1/analytics/realtime");
      assert.deepEqual(realtime.topProducts.map((p: Json) => p.productId), ["pNew"]);
      assert.equal(realtime.topProductsWindow.window, "15m");

      // Stored minutes add up to the products' all-time totals.
      const minutes = await sql<{ product_id: string; views: string; partition: number }[]>`
        select product_id, sum(views)::text as views, min(partition) as partition
          from product_minutes group by product_id order by product_id`;
      assert.deepEqual(minutes.map((r) => [r.product_id, Number(r.views)]), [["pNew", 2], ["pOld", 6]]);

      // A checkpoint of a fenced epoch, or the retry of one that already committed, adds nothing.
      await engine.stop();
      stopped = true;
      const topic = topicNames(config).productEvents;
      const partition = minutes[0].partition;
      const [row] = await sql<{ epoch: string; next_offset: string }[]>`
        select epoch, next_offset from partition_checkpoints where topic = ${topic} and partition = ${partition}`;
      const store = new SqlCheckpointStore(sql);
      const write = {
        tp: { topic, partition },
        groupId: config.GROUP_ID,
        clock: now,
        kind: "product",
        upserts: [],
        deletes: [],
        projections: {
          alerts: [],
          recommendations: [],
          analyticsHistory: [],
          productMinutes: [{
            productId: "pNew",
            minute: Math.floor(now / MIN) * MIN,
            category: "toys",
            brand: null,
            views: 100,
            cartAdds: 0,
            orders: 0,
            units: 0,
            revenueMillis: 0,
            keepFrom: 0,
          }],
        },
      };
      const epoch = Number(row.epoch);
      const next = Number(row.next_offset);
      const fenced = await store.commit({ ...write, epoch: epoch - 1, nextOffset: next + 1 });
      assert.equal(fenced.committed, false);
      const retried = await store.commit({ ...write, epoch, previousOffset: next - 1, nextOffset: next });
      assert.equal(retried.committed, true, "the earlier attempt committed");
      const [after] = await sql<{ views: string }[]>`
        select sum(views)::text as views from product_minutes where product_id = 'pNew'`;
      assert.equal(Number(after.views), 2, "nothing added twice");
    } finally {
      await sql.end();
      if (!stopped) await engine.stop();
      await db.drop();
    }
  },
});
