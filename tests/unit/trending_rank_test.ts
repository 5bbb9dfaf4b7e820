/**
 * Ranking by trend: each product's score is stored as of its own last event, so the ranking decays
 * every score to one time (the window's end) before comparing them (SPEC: "a trending score
 * (exponentially decayed, 1-hour half-life)"; "top products ... by ... trend").
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { saveStates } from "../../sql/checkpoints.ts";
import { migrate } from "../../sql/migrations.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

const HOUR = 3600;

/** "ancient" is viewed 2,000 hours before t0, "old" 100 times at t0 and never since, "hot" 10 times 23 hours later. */
async function ancientOldAndHot() {
  const b = new EventBuilder();
  const events = [
    b.event("product_viewed", "z", -2000 * HOUR, { productId: "ancient" }),
    ...Array.from({ length: 100 }, (_, i) => b.event("product_viewed", `a${i}`, i, { productId: "old" })),
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `b${i}`, 23 * HOUR + i, { productId: "hot" })),
  ];
  return { b, r: await fold(events) };
}

Deno.test("top products by trend rank the product busy now above one busy a day ago, with scores decayed to the window's end", async () => {
  const { b, r } = await ancientOldAndHot();
  const dir = await Deno.makeTempDir({ prefix: "trending-rank-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await db.sql.begin((tx) =>
      saveStates(
        tx,
        "product",
        0,
        ["ancient", "old", "hot"].map((key) => ({
          key,
          state: r.persisted("product", key),
          timers: {},
          lastActiveAt: 1,
        })),
      )
    );
    // Both products have views within the last 24 hours (product_minutes, as checkpoints store them).
    for (const [product, at, views] of [["old", b.time(0), 100], ["hot", b.time(23 * HOUR), 10]] as const) {
      await db.sql`insert into product_minutes (product_id, minute, partition, views, cart_adds, orders, units,
                     revenue_millis) values (${product}, ${new Date(at)}, 0, ${views}, 0, 0, 0, 0)`;
    }
    const global = r.persisted("global", "global");
    const reader: StateReader = {
      read: (kind) => Promise.resolve(kind === "global" ? { state: global, source: "memory" } : null),
    };
    const handle = createHandler(
      queryRoutes({ reader, sql: db.sql, now: () => b.time(23 * HOUR + 60) }),
      silentLogger,
    );
    for (const window of ["24h", "all"]) {
      const response = await handle(
        new Request(`http://engine.test/v1/analytics/top-products?by=trending&window=${window}`),
      );
      assert.equal(response.status, 200);
      const body = await response.json() as { items: { productId: string; trendingScore: number }[] };
      const scores = Object.fromEntries(body.items.map((i) => [i.productId, i.trendingScore]));
      // The window ends at 23:01 (the minute after the latest event): hot's views are 1 minute old at most.
      assert.deepEqual(
        body.items.map((i) => i.productId),
        window === "all" ? ["hot", "old", "ancient"] : ["hot", "old"],
      );
      assert.ok(scores.hot > 9.8 && scores.hot < 10, `hot ${scores.hot}`);
      assert.equal(scores.old, Math.round(100 * 2 ** -23 * 1e6) / 1e6, "old: 100 views 23 half-lives back");
      if (window === "all") assert.equal(scores.ancient, 0, "2,000 half-lives back: nothing left, and no underflow");
    }
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("top categories by trend weigh each minute's views, cart adds and orders as the trending score, decayed to the window's end", async () => {
  const b = new EventBuilder();
  const dir = await Deno.makeTempDir({ prefix: "trending-rank-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const rows = [
      ["p-shoe", "shoes", b.time(0), 100, 0], // busy 23 hours before the window's end
      ["p-hat", "hats", b.time(23 * HOUR), 10, 0],
      ["p-sock", "socks", b.time(23 * HOUR), 0, 2], // two cart adds weigh 3 each
    ] as const;
    for (const [product, category, at, views, carts] of rows) {
      await db.sql`insert into product_minutes (product_id, minute, partition, category, views, cart_adds, orders,
                     units, revenue_millis) values (${product}, ${new Date(at)}, 0, ${category}, ${views}, ${carts},
                     0, 0, 0)`;
    }
    // The latest event is at 23:00:00, so the window ends at 23:01.
    const global = { lastEventAt: b.time(23 * HOUR) };
    const reader: StateReader = {
      read: (kind) => Promise.resolve(kind === "global" ? { state: global, source: "memory" } : null),
    };
    const handle = createHandler(queryRoutes({ reader, sql: db.sql, now: () => b.time(23 * HOUR) }), silentLogger);
    const get = async (by: string) => {
      const response = await handle(new Request(`http://engine.test/v1/analytics/top-categories?by=${by}&window=24h`));
      assert.equal(response.status, 200);
      return (await response.json()).items as { category: string; trendingScore?: number }[];
    };
    assert.deepEqual((await get("views")).map((c) => c.category), ["shoes", "hats", "socks"]);
    const trending = await get("trending");
    const minute = 2 ** (-1 / 60); // one minute of a 60-minute half-life
    assert.deepEqual(trending.map((c) => [c.category, c.trendingScore]), [
      ["hats", Math.round(10 * minute * 1e6) / 1e6],
      ["socks", Math.round(6 * minute * 1e6) / 1e6],
      ["shoes", Math.round(100 * 2 ** (-(23 * 60 + 1) / 60) * 1e6) / 1e6],
    ]);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restock after the latest storefront event does not sink a product's trending rank: scores decay both ways", async () => {
  const b = new EventBuilder();
  // "restocked" and "plain" get the same 10 views at t0; "restocked" also gets a stock update two hours
  // later (the warehouse feed, while the storefront is quiet).
  const events = [
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `a${i}`, i, { productId: "restocked" })),
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `b${i}`, i, { productId: "plain" })),
    b.inventory("restocked", 50, 2 * HOUR),
  ];
  const r = await fold(events);
  const dir = await Deno.makeTempDir({ prefix: "trending-rank-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await db.sql.begin((tx) =>
      saveStates(
        tx,
        "product",
        0,
        ["restocked", "plain"].map((key) => ({ key, state: r.persisted("product", key), timers: {}, lastActiveAt: 1 })),
      )
    );
    for (const product of ["restocked", "plain"]) {
      await db.sql`insert into product_minutes (product_id, minute, partition, views, cart_adds, orders, units,
                     revenue_millis) values (${product}, ${new Date(b.time(0))}, 0, 10, 0, 0, 0, 0)`;
    }
    const global = r.persisted("global", "global");
    const reader: StateReader = {
      read: (kind) => Promise.resolve(kind === "global" ? { state: global, source: "memory" } : null),
    };
    const handle = createHandler(queryRoutes({ reader, sql: db.sql, now: () => b.time(3 * HOUR) }), silentLogger);
    for (const window of ["1h", "all"]) {
      const response = await handle(
        new Request(`http://engine.test/v1/analytics/top-products?by=trending&window=${window}`),
      );
      assert.equal(response.status, 200);
      const body = await response.json() as { items: { productId: string; trendingScore: number }[] };
      const scores = Object.fromEntries(body.items.map((i) => [i.productId, i.trendingScore]));
      // Both had the same 10 views in the same minute: at the window's end their scores are equal.
      assert.ok(
        Math.abs(scores.restocked - scores.plain) < 1e-4,
        `window=${window}: restocked ${scores.restocked} vs plain ${scores.plain} for identical activity`,
      );
    }
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
