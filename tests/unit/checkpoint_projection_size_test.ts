/**
 * A checkpoint's projections can be large: with CHECKPOINT_MAX_MESSAGES raised (up to 10,000,000), one checkpoint of a
 * product partition holds a delta per product and minute of its facts, and one of the `analytics` partition a history
 * batch per minute its clock moved. Storing them must not depend on how many there are: the newest history bound was
 * taken with `Math.max(...all)`, whose arguments V8 refuses past about 125,000 (RangeError), so such a checkpoint
 * failed on every retry and its partition stopped.
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { AnalyticsHistory, ProductMinute } from "../../engine/outputs.ts";
import { storeAnalyticsHistory } from "../../sql/analytics_minutes.ts";
import { migrate } from "../../sql/migrations.ts";
import { storeProductMinutes } from "../../sql/product_minutes.ts";

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 5, 0, 0);
/** Past the arguments V8 takes in one call. */
const MANY = 150_000;

Deno.test(`a checkpoint of ${MANY} product minutes and of ${MANY} history batches is stored and pruned (PostgreSQL, via PGlite)`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "projection-size-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    // An import's product partition: a view of one product a minute for 104 days, the newest bound last.
    const deltas: ProductMinute[] = Array.from({ length: MANY }, (_, i) => ({
      productId: "p1",
      minute: T0 + i * MINUTE,
      category: null,
      brand: null,
      views: 1,
      cartAdds: 0,
      orders: 0,
      units: 0,
      revenueMillis: 0,
      keepFrom: T0 + i * MINUTE - 30 * 1440 * MINUTE,
    }));
    await db.sql.begin((tx) => storeProductMinutes(tx, 0, deltas));
    const [products] = await db.sql<{ n: string; first: Date }[]>`
      select count(*)::text as n, min(minute) as first from product_minutes`;
    assert.deepEqual([Number(products.n), products.first.getTime()], [30 * 1440 + 1, deltas.at(-1)!.keepFrom]);

    // The analytics partition's clock moved a minute at a time: one batch each (its minutes left out for brevity).
    await db.sql`insert into analytics_minutes (minute, events, orders, revenue_millis, page_views, load_time_ms_sum,
                   load_time_samples, checkouts, carts_converted, carts_abandoned, checkouts_abandoned,
                   category_revenue_millis, active_users, active_sessions)
                 values (${new Date(T0)}, '{}', 0, 0, 0, 0, 0, 0, 0, 0, 0, '{}', 0, 0)`;
    const batches: AnalyticsHistory[] = Array.from({ length: MANY }, (_, i) => ({ minutes: [], keepFrom: T0 + i }));
    await db.sql.begin((tx) => storeAnalyticsHistory(tx, batches));
    const [history] = await db.sql<{ n: string }[]>`select count(*)::text as n from analytics_minutes`;
    assert.equal(Number(history.n), 0, "the stored minute before the newest bound was deleted");
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
