/**
 * An upgrade of a populated database: the schema of an earlier release (migrations up to `fromName`) with the rows an
 * engine of that release wrote, then every migration, then the current code reading and checkpointing on it. Run on
 * PGlite (tests/unit/migration_upgrade_test.ts) and on PostgreSQL (tests/integration/checkpoint_store_test.ts).
 */
import assert from "node:assert/strict";
import { SqlCheckpointStore } from "../../engine/checkpoint.ts";
import type { Sql } from "../../engine/database.ts";
import { NO_PROJECTIONS } from "../../engine/outputs.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { sumAnalyticsMinutes } from "../../sql/analytics_minutes.ts";
import { expireStates, loadState } from "../../sql/checkpoints.ts";
import { loadReplayed } from "../../sql/dlq.ts";
import { partitionOwner } from "../../sql/instances.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";
import { rankCategoriesInWindow, rankProductsInWindow, storeProductMinutes } from "../../sql/product_minutes.ts";
import { latestRecommendations, listAlerts, listStoredAlerts, topProducts } from "../../sql/queries.ts";
import { claimStateOwner, stateOwner } from "../../sql/state_owner.ts";

const MINUTE = Date.parse("2026-11-20T10:00:00.000Z");
const TOPICS = ["events", "product-events", "analytics"];

/** Migrates `sql` up to `fromName` (e.g. "007_"), stores an engine's rows of that schema, then migrates to the latest. */
export async function upgradePopulated(sql: Sql, fromName: string): Promise<void> {
  const all = await readMigrations();
  const before = all.filter((m) => m.name < fromName || m.name.startsWith(fromName));
  assert.ok(before.length < all.length, `${fromName} is not the latest migration`);
  await migrate(sql, before);
  const has = (name: string) => before.some((m) => m.name.startsWith(name));
  await sql`insert into actor_states (kind, key, partition, state, timers, next_timer_at, last_active_at)
            values ('user', 'alice', 3, ${sql.json({ cart: { p1: 2 } })}, ${sql.json({ cart: MINUTE + 1_800_000 })},
                    ${MINUTE + 1_800_000}, ${MINUTE}),
                   ('product', 'p1', 1, ${
    sql.json({ productId: "p1", views: 7, revenue: 19.98 })
  }, '{}', null, ${MINUTE})`;
  if (has("013_")) {
    await sql`insert into partition_checkpoints (group_id, topic, partition, next_offset, epoch, owner, clock,
                sources_published)
              values ('g', 'analytics', 0, 9, 2, 'old-1', ${MINUTE}, ${MINUTE - 60_000})`;
  }
  await sql`insert into partition_checkpoints (group_id, topic, partition, next_offset, epoch, owner)
            values ('g', 'events', 3, 42, 3, 'old-1')`;
  await sql`insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at, details)
            values ('a-1', 'cart_abandoned', 'warning', 'user', 'alice', ${new Date(MINUTE)}, ${
    sql.json({ cartValue: 5 })
  })`;
  await sql`insert into latest_recommendations (user_id, payload, generated_at)
            values ('alice', ${sql.json({ userId: "alice", items: [{ productId: "p2", score: 1 }] })}, ${new Date(
    MINUTE,
  )})`;
  await sql`insert into dlq_replays (group_id, partition, "offset") values ('g', 0, 17)`;
  await sql`insert into instances (instance_id, http_url) values ('old-1', 'http://10.0.0.1:8080')`;
  await sql`insert into analytics_minutes (minute, events, orders, revenue_millis, page_views, load_time_ms_sum,
              load_time_samples, checkouts, carts_converted, carts_abandoned, checkouts_abandoned,
              category_revenue_millis, active_users, active_sessions)
            values (${new Date(MINUTE)}, ${sql.json({ page_viewed: 3 })}, 1, 19980, 3, 3000, 3, 1, 1, 0, 0,
                    ${sql.json({ toys: 19980 })}, 2, 2)`;
  await sql`insert into product_minutes (product_id, minute, partition, category, brand, views, cart_adds, orders,
              units, revenue_millis)
            values ('p1', ${new Date(MINUTE)}, 1, 'toys', null, 7, 1, 1, 2, 19980)`;

  const applied = await migrate(sql);
  assert.deepEqual(applied, all.slice(before.length).map((m) => m.name), "the missing migrations, in order");
}

/** What an engine of this version finds on a database `upgradePopulated` made, and a checkpoint it writes there. */
export async function checkUpgraded(sql: Sql, fromName: string): Promise<void> {
  const store = new SqlCheckpointStore(sql);
  const users = await store.load("user", ["alice"]);
  assert.deepEqual(users.get("alice"), {
    key: "alice",
    state: { cart: { p1: 2 } },
    timers: { cart: MINUTE + 1_800_000 },
    lastActiveAt: MINUTE,
  });
  assert.deepEqual(await store.loadTimers("user", 3), new Map([["alice", { cart: MINUTE + 1_800_000 }]]));
  // Rows written before 016 record no partition count: a claim finds alice's timer on the partition the count places
  // her on, whichever that is, and on no other.
  for (const count of [4, 8]) {
    const home = partitionForKey("alice", count);
    for (let partition = 0; partition < count; partition++) {
      assert.deepEqual(
        [...(await store.loadTimers("user", partition, count)).keys()],
        partition === home ? ["alice"] : [],
        `partition ${partition} of ${count}`,
      );
    }
  }
  assert.deepEqual((await listAlerts(sql, { limit: 10 })).map((a) => [a.alertId, a.occurredAt, a.details]), [
    ["a-1", new Date(MINUTE).toISOString(), { cartValue: 5 }],
  ]);
  // An alert stored before 020 is in the order=stored feed too (with 020's transaction id).
  assert.deepEqual((await listStoredAlerts(sql, { limit: 10 })).items.map((a) => a.alertId), ["a-1"]);
  assert.equal((await latestRecommendations(sql, "alice"))?.generatedAt, new Date(MINUTE).toISOString());
  // A DLQ record replayed before 015 names no topic nor time: it still matches its offset in any DLQ topic.
  assert.deepEqual(await loadReplayed(sql, "g", "events.dlq", 0, 0, 18), new Map([["0/17", null]]));
  assert.deepEqual(await partitionOwner(sql, "g", "events", 3, 60_000), {
    instanceId: "old-1",
    httpUrl: "http://10.0.0.1:8080",
  });
  const history = await sumAnalyticsMinutes(sql, MINUTE, MINUTE + 60_000);
  assert.equal(history.count, 1);
  assert.equal(history.total.revenueMillis, 19_980);
  assert.deepEqual(history.total.sessionsReached, {}, "minutes stored before 010 count no sessions");
  const windowed = await rankProductsInWindow(sql, "views", MINUTE, MINUTE + 60_000, 10, {
    at: MINUTE + 60_000,
    halfLifeMs: 3_600_000,
  });
  assert.deepEqual(windowed.map((p) => [p.productId, p.views, p.revenue, p.category]), [["p1", 7, 19.98, "toys"]]);
  assert.deepEqual((await topProducts(sql, "revenue", 10)).map((p) => [p.productId, p.revenue]), [["p1", 19.98]]);
  // A checkpoint adds to the minute stored before 018 under its category, and another category's facts to a row of
  // their own (018: one row per product, minute and category).
  const delta = (category: string, views: number) => ({
    productId: "p1",
    minute: MINUTE,
    category,
    brand: null,
    views,
    cartAdds: 0,
    orders: 0,
    units: 0,
    revenueMillis: 0,
    keepFrom: 0,
  });
  // An order line of the new version on the old row, of an order an earlier line already counted in toys: its units
  // and revenue add up, its order does not; the row's stored orders (no category_orders before 019) stand in for the
  // orders per category it held (a null category_orders left after the update would count the product's 2 orders).
  const line = { ...delta("toys", 1), orders: 1, categoryOrders: 0, units: 1, revenueMillis: 5_000 };
  await sql.begin((tx) => storeProductMinutes(tx, 1, [line, delta("games", 2)]));
  const categories = await rankCategoriesInWindow(sql, "views", MINUTE, MINUTE + 60_000, 10);
  assert.deepEqual(categories.map((c) => [c.category, c.views, c.orders, c.unitsSold, c.revenue]), [
    ["toys", 8, 1, 3, 24.98], // the order stored before 019 (no category_orders) still counts, the repeat not
    ["games", 2, 0, 0, 0],
  ]);

  // The group that built the state owns it once it starts (012); another group is refused.
  assert.deepEqual(await claimStateOwner(sql, "other", TOPICS), ["g"]);
  assert.deepEqual(await claimStateOwner(sql, "g", TOPICS), []);
  assert.equal(await stateOwner(sql), "g");

  // A new owner resumes where the old release left off: clock 0 before 008, no release before 013, generation 0.
  const claim = await store.claim({ topic: "events", partition: 3 }, "g", "new-1");
  assert.deepEqual(claim, { epoch: 4, nextOffset: 42, clock: 0 });
  if (fromName >= "013_") {
    const analytics = await store.claim({ topic: "analytics", partition: 0 }, "g", "new-1");
    assert.deepEqual(analytics, { epoch: 3, nextOffset: 9, clock: MINUTE, sourcesPublished: MINUTE - 60_000 });
  }
  const committed = await store.commit({
    tp: { topic: "events", partition: 3 },
    groupId: "g",
    epoch: claim.epoch,
    previousOffset: 42,
    nextOffset: 50,
    clock: MINUTE + 60_000,
    kind: "user",
    upserts: [{ key: "alice", state: { cart: {} }, timers: {}, lastActiveAt: MINUTE + 60_000 }],
    deletes: [],
    projections: NO_PROJECTIONS,
  });
  assert.deepEqual(committed, { committed: true, expired: 0 });
  assert.deepEqual((await loadState(sql, "user", "alice"))?.state, { cart: {} });
  assert.deepEqual(await store.stored({ topic: "events", partition: 3 }, "g"), {
    epoch: 4,
    nextOffset: 50,
    clock: MINUTE + 60_000,
  });
  // A row stored by the old release is swept by STATE_TTL_DAYS like any other: the product quiet since MINUTE goes at a
  // cutoff past it, not at MINUTE itself.
  assert.equal(await sql.begin((tx) => expireStates(tx, "product", 1, MINUTE)), 0);
  assert.equal(await sql.begin((tx) => expireStates(tx, "product", 1, MINUTE + 1)), 1);
}
