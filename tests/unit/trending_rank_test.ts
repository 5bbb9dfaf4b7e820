/**
 * Ranking by trend: each product's score is stored as of its own last event, so the ranking decays
 * every score to one time (the window's end) before comparing them (SPEC: "a trending score
 * (exponentially decayed, 1-hour half-life)"; "top products ... by ... trend").
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { encodeStates, saveStates } from "../../sql/checkpoints.ts";
import { migrate } from "../../sql/migrations.ts";
import { EventBuilder, fold, type FoldResult } from "../helpers/fold.ts";

const HOUR = 3600;

/** A ranking over a fresh embedded database: `seed` fills it, `get(path)` asks the query routes. */
async function withRanking(
  global: unknown,
  now: number,
  seed: (sql: Sql) => Promise<void>,
  check: (get: (path: string) => Promise<{ items: Record<string, unknown>[] }>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "trending-rank-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await seed(db.sql);
    const reader: StateReader = {
      read: (kind) => Promise.resolve(kind === "global" ? { state: global, source: "memory" } : null),
    };
    const handle = createHandler(queryRoutes({ reader, sql: db.sql, now: () => now }), silentLogger);
    await check(async (path) => {
      const response = await handle(new Request(`http://engine.test${path}`));
      assert.equal(response.status, 200, path);
      return await response.json();
    });
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checkpoints the folded states of `keys`, as product checkpoints store them. */
function saveProducts(sql: Sql, r: FoldResult, keys: readonly string[]): Promise<unknown> {
  const rows = keys.map((key) => ({ key, state: r.persisted("product", key), timers: {}, lastActiveAt: 1 }));
  return sql.begin((tx) => saveStates(tx, "product", 0, encodeStates("product", rows)));
}

/** A product's minute of activity in `product_minutes`, as checkpoints store it. */
function minuteOf(
  sql: Sql,
  m: { product: string; at: number; views?: number; carts?: number; category?: string },
): Promise<unknown> {
  return sql`insert into product_minutes (product_id, minute, partition, category, views, cart_adds, orders, units,
               revenue_millis) values (${m.product}, ${new Date(m.at)}, 0, ${m.category ?? null}, ${m.views ?? 0},
               ${m.carts ?? 0}, 0, 0, 0)`;
}

/** Each item's id (`productId` or `category`) and `trendingScore`. */
const scoresOf = (items: Record<string, unknown>[]) =>
  Object.fromEntries(items.map((i) => [i.productId ?? i.category, i.trendingScore as number]));

Deno.test("top products by trend rank the product busy now above one busy a day ago, with scores decayed to the window's end", async () => {
  // "ancient" is viewed 2,000 hours before t0, "old" 100 times at t0 and never since, "hot" 10 times 23 hours later.
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_viewed", "z", -2000 * HOUR, { productId: "ancient" }),
    ...Array.from({ length: 100 }, (_, i) => b.event("product_viewed", `a${i}`, i, { productId: "old" })),
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `b${i}`, 23 * HOUR + i, { productId: "hot" })),
  ]);
  await withRanking(r.persisted("global", "global"), b.time(23 * HOUR + 60), async (sql) => {
    await saveProducts(sql, r, ["ancient", "old", "hot"]);
    // Both products have views within the last 24 hours (product_minutes, as checkpoints store them).
    await minuteOf(sql, { product: "old", at: b.time(0), views: 100 });
    await minuteOf(sql, { product: "hot", at: b.time(23 * HOUR), views: 10 });
  }, async (get) => {
    for (const window of ["24h", "all"]) {
      const body = await get(`/v1/analytics/top-products?by=trending&window=${window}`);
      const scores = scoresOf(body.items);
      // The window ends at 23:01 (the minute after the latest event): hot's views are 1 minute old at most.
      assert.deepEqual(
        body.items.map((i) => i.productId),
        window === "all" ? ["hot", "old", "ancient"] : ["hot", "old"],
      );
      assert.ok(scores.hot > 9.8 && scores.hot < 10, `hot ${scores.hot}`);
      assert.equal(scores.old, Math.round(100 * 2 ** -23 * 1e6) / 1e6, "old: 100 views 23 half-lives back");
      if (window === "all") assert.equal(scores.ancient, 0, "2,000 half-lives back: nothing left, and no underflow");
    }
  });
});

Deno.test("top categories by trend weigh each minute's views, cart adds and orders as the trending score, decayed to the window's end", async () => {
  const b = new EventBuilder();
  // The latest event is at 23:00:00, so the window ends at 23:01.
  await withRanking({ lastEventAt: b.time(23 * HOUR) }, b.time(23 * HOUR), async (sql) => {
    await minuteOf(sql, { product: "p-shoe", category: "shoes", at: b.time(0), views: 100 }); // 23 hours back
    await minuteOf(sql, { product: "p-hat", category: "hats", at: b.time(23 * HOUR), views: 10 });
    await minuteOf(sql, { product: "p-sock", category: "socks", at: b.time(23 * HOUR), carts: 2 }); // 3 each
  }, async (get) => {
    const ranked = async (by: string) => (await get(`/v1/analytics/top-categories?by=${by}&window=24h`)).items;
    // By views, socks (cart adds only) has none: left out.
    assert.deepEqual((await ranked("views")).map((c) => c.category), ["shoes", "hats"]);
    const minute = 2 ** (-1 / 60); // one minute of a 60-minute half-life
    assert.deepEqual((await ranked("trending")).map((c) => [c.category, c.trendingScore]), [
      ["hats", Math.round(10 * minute * 1e6) / 1e6],
      ["socks", Math.round(6 * minute * 1e6) / 1e6],
      ["shoes", Math.round(100 * 2 ** (-(23 * 60 + 1) / 60) * 1e6) / 1e6],
    ]);
  });
});

for (const hours of [2, 24, 30]) {
  Deno.test(`a restock ${hours} hours after the latest storefront event does not move a product's trending rank`, async () => {
    await restockedAndPlain(hours);
  });
}

/** "restocked" and "plain" get the same 10 views at t0; "restocked" also gets a stock update `hours` later (the warehouse feed, while the storefront is quiet). */
async function restockedAndPlain(hours: number): Promise<void> {
  const b = new EventBuilder();
  const r = await fold([
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `a${i}`, i, { productId: "restocked" })),
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `b${i}`, i, { productId: "plain" })),
    b.inventory("restocked", 50, hours * HOUR),
  ]);
  await withRanking(r.persisted("global", "global"), b.time((hours + 1) * HOUR), async (sql) => {
    await saveProducts(sql, r, ["restocked", "plain"]);
    for (const product of ["restocked", "plain"]) await minuteOf(sql, { product, at: b.time(0), views: 10 });
  }, async (get) => {
    for (const window of ["1h", "all"]) {
      const scores = scoresOf((await get(`/v1/analytics/top-products?by=trending&window=${window}`)).items);
      // Both had the same 10 views in the same minute: at the window's end their scores are equal.
      assert.ok(
        Math.abs(scores.restocked - scores.plain) < 1e-4,
        `window=${window}: restocked ${scores.restocked} vs plain ${scores.plain} for identical activity`,
      );
    }
  });
}

Deno.test("top products by views, purchases or revenue give each item's trending score at the window's end, as the ranking by trend does", async () => {
  // "old" is viewed 100 times at t0 and never since, "hot" 10 times 23 hours later: a 24-hour window holds both.
  const b = new EventBuilder();
  const r = await fold([
    ...Array.from({ length: 100 }, (_, i) => b.event("product_viewed", `a${i}`, i, { productId: "old" })),
    ...Array.from({ length: 10 }, (_, i) => b.event("product_viewed", `b${i}`, 23 * HOUR + i, { productId: "hot" })),
  ]);
  await withRanking(r.persisted("global", "global"), b.time(23 * HOUR + 60), async (sql) => {
    await saveProducts(sql, r, ["old", "hot"]);
    await minuteOf(sql, { product: "old", at: b.time(0), views: 100 });
    await minuteOf(sql, { product: "hot", at: b.time(23 * HOUR), views: 10 });
  }, async (get) => {
    const byTrend = scoresOf((await get("/v1/analytics/top-products?by=trending&window=24h")).items);
    assert.equal(byTrend.old, Math.round(100 * 2 ** -23 * 1e6) / 1e6, "old: 100 views 23 half-lives back");
    const byViews = await get("/v1/analytics/top-products?by=views&window=24h");
    assert.deepEqual(byViews.items.map((i) => i.productId), ["old", "hot"]);
    // Not the score stored as of old's own last view (100), 23 hours before the window's end.
    assert.deepEqual(scoresOf(byViews.items), byTrend);
    // The realtime top products (15 minutes: hot alone) likewise.
    const realtime = await get("/v1/analytics/realtime") as unknown as { topProducts: Record<string, unknown>[] };
    assert.deepEqual(scoresOf(realtime.topProducts), { hot: byTrend.hot });
  });
});
