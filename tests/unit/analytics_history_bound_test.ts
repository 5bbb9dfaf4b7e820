/**
 * Windows longer than ANALYTICS_HISTORY_DAYS: every windowed analytics answer (funnel, top products, top categories)
 * covers at most the history kept, counted back from the window's end, and says so (`historyDays`, and `from` where
 * the history starts), whatever else PostgreSQL or the global actor's memory still holds: a product partition that
 * went quiet keeps its older minutes (only a partition's own checkpoints prune them), and a memory longer than the
 * history holds older minutes too.
 */
import assert from "node:assert/strict";
import type { AnalyticsFact } from "../../actors/facts.ts";
import { createGlobalLogic } from "../../actors/global.ts";
import { productLogic } from "../../actors/product.ts";
import { initialProduct } from "../../actors/product_state.ts";
import { domainSettings } from "../../actors/settings.ts";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { HistoryReader } from "../../http/analytics_window.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { encodeStates, saveStates } from "../../sql/checkpoints.ts";
import { migrate } from "../../sql/migrations.ts";
import { runGlobal } from "../helpers/global_actor.ts";
import { noSql } from "./http_fixture.ts";

const MIN = 60_000;
const DAY = 1440 * MIN;
const END = Date.UTC(2026, 2, 10, 12, 0, 0);
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** A page view and a product view at each of `times`. */
function views(times: readonly number[]): AnalyticsFact[] {
  return times.flatMap((at, i) =>
    [
      { fact: "activity", factId: `f${i}-page`, at, userId: `u${i}`, session: `s${i}`, type: "page_viewed" },
      {
        fact: "activity",
        factId: `f${i}-product`,
        at: at + 1,
        userId: `u${i}`,
        session: `s${i}`,
        type: "product_viewed",
      },
    ] as AnalyticsFact[]
  );
}

/** A product's minute in `product_minutes`, on `partition`, as its partition's checkpoints store it. */
function productMinute(sql: Sql, m: { product: string; at: number; views: number; partition: number }) {
  return sql`insert into product_minutes (product_id, minute, partition, category, views, cart_adds, orders, units,
               revenue_millis) values (${m.product}, ${new Date(m.at)}, ${m.partition}, ${"c-" + m.product},
               ${m.views}, 0, 0, 0, 0)`;
}

Deno.test("with ANALYTICS_HISTORY_DAYS=7, a 30d ranking does not count a quiet product partition's minutes 10 days old, and says it covers 7 days", async () => {
  const dir = await Deno.makeTempDir({ prefix: "history-bound-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    // Partition 1 went quiet 10 days ago: no checkpoint of its own has pruned its minutes since. Partition 0's did.
    await productMinute(db.sql, { product: "quiet", at: END - 10 * DAY, views: 50, partition: 1 });
    await productMinute(db.sql, { product: "busy", at: END - DAY, views: 5, partition: 0 });
    const states = ["quiet", "busy"].map((key) => ({
      key,
      state: productLogic.persist(initialProduct(key)),
      timers: {},
      lastActiveAt: END,
    }));
    await db.sql.begin((tx) => saveStates(tx, "product", 0, encodeStates("product", states)));
    const handle = createHandler(
      queryRoutes({
        reader: {
          read: (kind) => Promise.resolve(kind === "global" ? { state: { lastEventAt: END }, source: "memory" } : null),
        },
        sql: db.sql,
        now: () => END,
        historyDays: 7,
      }),
      silentLogger,
    );
    const get = async (path: string): Promise<Json> => {
      const response = await handle(new Request(`http://engine.test${path}`));
      assert.equal(response.status, 200, path);
      return await response.json();
    };
    const to = new Date(END + MIN).toISOString();
    const kept = new Date(END + MIN - 7 * DAY).toISOString();
    for (const by of ["views", "trending"]) {
      const month = await get(`/v1/analytics/top-products?window=30d&by=${by}`);
      assert.deepEqual(month.items.map((i: Json) => i.productId), ["busy"], `by=${by}`);
      assert.deepEqual([month.from, month.to, month.minutes, month.historyDays], [kept, to, 30 * 1440, 7], `by=${by}`);
    }
    const categories = await get("/v1/analytics/top-categories?window=30d");
    assert.deepEqual(categories.items.map((i: Json) => i.category), ["c-busy"]);
    assert.deepEqual([categories.from, categories.historyDays], [kept, 7]);
    // A window within the history is not cut, and says nothing of it.
    const week = await get("/v1/analytics/top-products?window=7d");
    assert.deepEqual([week.from, week.historyDays], [kept, undefined]);
    assert.deepEqual(week.items.map((i: Json) => i.productId), ["busy"]);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with ANALYTICS_HISTORY_DAYS=1, a 7d funnel counts one day, even when the global actor's memory holds three, and says so", async () => {
  // Three days of memory, one of history: the memory still holds the days the history no longer keeps.
  const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 3 * 1440, ANALYTICS_HISTORY_DAYS: 1 });
  const { state } = runGlobal(settings, views([END - 2 * DAY, END - 30 * MIN, END]));
  const read: [string, string][] = [];
  const history: HistoryReader = (from, to) => {
    read.push([new Date(from).toISOString(), new Date(to).toISOString()]);
    return Promise.resolve({ count: 0, total: { minute: from } } as never);
  };
  const handle = createHandler(
    queryRoutes({
      reader: { read: () => Promise.resolve({ state: createGlobalLogic(settings).persist(state), source: "memory" }) },
      sql: noSql,
      now: () => END,
      history,
      historyDays: 1,
    }),
    silentLogger,
  );
  const funnel = async (window: string): Promise<Json> => {
    const response = await handle(new Request(`http://engine.test/v1/analytics/funnel?window=${window}`));
    assert.equal(response.status, 200, window);
    return await response.json();
  };
  const day = await funnel("24h");
  assert.equal(day.steps.productViewed, 2);
  assert.equal(day.historyDays, undefined, "24 hours fit in one day of history");
  const week = await funnel("7d");
  assert.deepEqual(week.steps, day.steps, "the view two days back is past the history: not counted");
  assert.deepEqual([week.from, week.to, week.minutes, week.historyDays], [day.from, day.to, 7 * 1440, 1]);
  assert.equal(week.fromStorage, false);
  assert.deepEqual(read, [], "nothing before the history is read from PostgreSQL");
});

Deno.test("with ANALYTICS_HISTORY_DAYS=7, a 30d funnel reads PostgreSQL from where the history starts, and says so", async () => {
  const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60, ANALYTICS_HISTORY_DAYS: 7 });
  const { state } = runGlobal(settings, views([END - 3 * DAY, END]));
  const read: [string, string][] = [];
  const history: HistoryReader = (from, to) => {
    read.push([new Date(from).toISOString(), new Date(to).toISOString()]);
    return Promise.resolve({ count: 0, total: { minute: from } } as never);
  };
  const handle = createHandler(
    queryRoutes({
      reader: { read: () => Promise.resolve({ state: createGlobalLogic(settings).persist(state), source: "memory" }) },
      sql: noSql,
      now: () => END,
      history,
      historyDays: 7,
    }),
    silentLogger,
  );
  const response = await handle(new Request("http://engine.test/v1/analytics/funnel?window=30d"));
  assert.equal(response.status, 200);
  const month: Json = await response.json();
  const kept = new Date(END + MIN - 7 * DAY).toISOString();
  assert.deepEqual([month.from, month.historyDays, month.storage?.from], [kept, 7, kept]);
  assert.deepEqual(read.map(([from]) => from), [kept]);
});
