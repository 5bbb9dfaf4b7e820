/**
 * The edges of the analytics windows: a window of N minutes is the N minute rows before the minute boundary after the
 * latest event, from its first instant (inclusive) to its last (exclusive), in the funnel (the global actor's minutes)
 * and in the rankings (`product_minutes`) alike, so that figures shown side by side agree.
 */
import assert from "node:assert/strict";
import type { ProductMinute } from "../../engine/outputs.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { migrate } from "../../sql/migrations.ts";
import { storeProductMinutes } from "../../sql/product_minutes.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

const MINUTE = 60;
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

Deno.test("window=1h holds the 60 minute rows before the boundary after the latest event: a view on its first instant counts, one a millisecond earlier does not, in the funnel and the rankings alike", async () => {
  const b = new EventBuilder(Date.UTC(2026, 0, 5, 11, 0, 0));
  const view = (user: string, seconds: number, productId: string) =>
    b.event("product_viewed", user, seconds, { productId, category: "c" });
  const r = await fold([
    view("u1", -0.001, "early"), // 10:59:59.999: the minute before the window
    view("u2", 0, "first"), // 11:00:00.000: the window's first instant
    view("u3", 60 * MINUTE - 0.001, "last"), // 11:59:59.999: the latest event, so the window ends at 12:00
  ], { partitions: 1 });
  const dir = await Deno.makeTempDir({ prefix: "window-edges-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const minutes = r.outputs.filter((o) => o.topic === "productMinutes").map((o) => o.value as ProductMinute);
    assert.equal(minutes.length, 3);
    await db.sql.begin((tx) => storeProductMinutes(tx, 0, minutes));
    const global = r.persisted("global", "global");
    const handle = createHandler(
      queryRoutes({
        reader: { read: (kind) => Promise.resolve(kind === "global" ? { state: global, source: "memory" } : null) },
        sql: db.sql,
        now: () => b.time(60 * MINUTE),
      }),
      silentLogger,
    );
    const get = async (path: string): Promise<Json> => {
      const response = await handle(new Request(`http://engine.test${path}`));
      assert.equal(response.status, 200, path);
      return await response.json();
    };
    const span = [new Date(b.time(0)).toISOString(), new Date(b.time(60 * MINUTE)).toISOString()];
    const funnel = await get("/v1/analytics/funnel?window=1h");
    assert.deepEqual([funnel.from, funnel.to, funnel.minutes], [...span, 60]);
    assert.equal(funnel.steps.productViewed, 2);
    const products = await get("/v1/analytics/top-products?window=1h");
    assert.deepEqual([products.from, products.to, products.minutes], [...span, 60]);
    assert.deepEqual(products.items.map((i: Json) => [i.productId, i.views]), [["first", 1], ["last", 1]]);
    const categories = await get("/v1/analytics/top-categories?window=1h");
    assert.deepEqual(categories.items.map((i: Json) => [i.category, i.views]), [["c", 2]]);
    // A longer window holds the view a millisecond before the hour; the realtime minute, the latest event's alone.
    assert.equal((await get("/v1/analytics/funnel?window=24h")).steps.productViewed, 3);
    assert.deepEqual((await get("/v1/analytics/top-categories?window=24h")).items.map((i: Json) => i.views), [3]);
    const realtime = await get("/v1/analytics/realtime");
    assert.equal(realtime.last1.eventsByType.product_viewed, 1);
    assert.deepEqual(realtime.topProducts.map((i: Json) => i.productId), ["last"]);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
