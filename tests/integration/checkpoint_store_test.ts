/**
 * SqlCheckpointStore on a real PostgreSQL server: atomic commits, fencing, timers, expiry, projections
 * (alerts, recommendations, and the analytics history with its sums).
 */
import assert from "node:assert/strict";
import { type CheckpointWrite, SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { connectDatabase } from "../../engine/database.ts";
import { loadForwardSecret } from "../../engine/forward_secret.ts";
import { type AnalyticsMinute, NO_PROJECTIONS } from "../../engine/outputs.ts";
import { sumAnalyticsMinutes } from "../../sql/analytics_minutes.ts";
import { advanceCheckpoint, loadState } from "../../sql/checkpoints.ts";
import { latestRecommendations, listAlerts, topProducts } from "../../sql/queries.ts";
import { rankCategoriesInWindow, rankProductsInWindow } from "../../sql/product_minutes.ts";
import postgres from "postgres";
import { migrate, readMigrations } from "../../sql/migrations.ts";
import { claimStateOwner, stateOwner } from "../../sql/state_owner.ts";
import { eventually, freshDatabase, services, uniqueName, within } from "../helpers/services.ts";
import { onlyOn } from "../helpers/modes.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";
import { checkUpgraded, upgradePopulated } from "../helpers/upgrade.ts";

const tp = { topic: "events", partition: 2 };
const alert = (id: string) => ({
  alertId: id,
  type: "cart_abandoned",
  severity: "warning",
  subject: { kind: "user", id: "alice" },
  occurredAt: "2026-11-01T10:30:00.000Z",
  details: { cartValue: 42 },
});

async function withStore(
  fn: (store: SqlCheckpointStore, sql: ReturnType<typeof connectDatabase>, url: string) => Promise<void>,
) {
  const db = await freshDatabase();
  const sql = connectDatabase({ url: db.url, maxConnections: 4 });
  try {
    await migrate(sql);
    await fn(new SqlCheckpointStore(sql), sql, db.url);
  } finally {
    await sql.end();
    await db.drop();
  }
}

const write = (epoch: number, nextOffset: number, extra: Partial<CheckpointWrite> = {}): CheckpointWrite => ({
  tp,
  groupId: "g",
  epoch,
  nextOffset,
  clock: nextOffset * 1_000,
  kind: "user",
  upserts: [],
  deletes: [],
  projections: NO_PROJECTIONS,
  ...extra,
});

onlyOn("postgresql", "migrate() applies every migration once and records it", async () => {
  const db = await freshDatabase();
  const sql = connectDatabase({ url: db.url, maxConnections: 2 });
  try {
    const first = await migrate(sql);
    assert.ok(first.length >= 3);
    assert.deepEqual(await migrate(sql), [], "a second run applies nothing");
    const rows = await sql`select id from schema_migrations order by id`;
    assert.deepEqual(rows.map((r) => r.id), first.map((_, i) => i + 1));
  } finally {
    await sql.end();
    await db.drop();
  }
});

for (const from of ["007_", "013_", "015_"]) {
  onlyOn(
    "postgresql",
    `a database populated at migration ${from.slice(0, 3)} migrates to the latest and keeps its rows`,
    async () => {
      const db = await freshDatabase();
      const sql = connectDatabase({ url: db.url, maxConnections: 4 });
      try {
        await upgradePopulated(sql, from);
        await checkUpgraded(sql, from);
      } finally {
        await sql.end();
        await db.drop();
      }
    },
  );
}

onlyOn(
  "postgresql",
  "instances starting at once on a fresh database: one applies the migrations, the others none",
  async () => {
    const db = await freshDatabase();
    const sql = connectDatabase({ url: db.url, maxConnections: 4 });
    try {
      const runs = await Promise.all([migrate(sql), migrate(sql), migrate(sql)]);
      const all = (await readMigrations()).map((m) => m.name);
      assert.deepEqual(runs.map((names) => names.length).sort(), [0, 0, all.length]);
      assert.deepEqual(runs.find((names) => names.length > 0), all, "in order");
      assert.equal((await sql`select id from schema_migrations`).length, all.length);
    } finally {
      await sql.end();
      await db.drop();
    }
  },
);

onlyOn(
  "postgresql",
  "instances starting at once on a fresh database whose transactions default to repeatable read or serializable",
  async () => {
    for (const isolation of ["repeatable read", "serializable"]) {
      const db = await freshDatabase();
      const admin = connectDatabase({ url: db.url, maxConnections: 1 });
      const [{ name }] = await admin<{ name: string }[]>`select current_database() as name`;
      await admin.unsafe(`alter database ${name} set default_transaction_isolation = '${isolation}'`);
      await admin.end();
      const sql = connectDatabase({ url: db.url, maxConnections: 4 });
      try {
        // Each start-up waits for the migration lock with a snapshot taken before the first one committed: read in
        // that snapshot, schema_migrations was empty, and the second start-up applied 001 again and failed.
        const runs = await Promise.all([migrate(sql), migrate(sql), migrate(sql)]);
        const all = (await readMigrations()).map((m) => m.name);
        assert.deepEqual(runs.map((names) => names.length).sort(), [0, 0, all.length], isolation);
        assert.equal((await sql`select id from schema_migrations`).length, all.length);
        // Two instances claiming one partition at once (a rebalance): the second waits for the first's row and bumps
        // the epoch it committed; in a snapshot taken before, it failed ("could not serialize access").
        const store = new SqlCheckpointStore(sql);
        const claims = await Promise.all([store.claim(tp, "g", "a"), store.claim(tp, "g", "b")]);
        assert.deepEqual(claims.map((c) => c.epoch).sort(), [1, 2], isolation);
        // Two instances reading their group's forward secret at once: the second's insert waits for the first's row
        // and returns its secret; in a snapshot taken before, it failed ("could not serialize access").
        const inserted = Promise.withResolvers<void>();
        const release = Promise.withResolvers<void>();
        const first = sql.begin(async (tx) => {
          await tx`insert into forward_secrets (group_id, secret) values ('g', 'first')`;
          inserted.resolve();
          await release.promise;
        });
        await inserted.promise;
        const second = loadForwardSecret(sql, "g");
        second.catch(() => {});
        // On this database only: pg_locks lists the whole server, where other test files' sessions wait too.
        await eventually("the second insert waits for the first", async () => {
          const [{ waiting }] = await sql<{ waiting: number }[]>`
            select count(*)::int as waiting from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock' and query like '%forward_secrets%'`;
          return waiting === 1 ? true : undefined;
        });
        release.resolve();
        await first;
        assert.equal(await second, "first", isolation);
      } finally {
        await sql.end();
        await db.drop();
      }
    }
  },
);

onlyOn(
  "postgresql",
  "a commit writes states, timers, the next offset and the clock together; a fenced epoch writes nothing",
  async () => {
    await withStore(async (store) => {
      const first = await store.claim(tp, "g", "instance-a");
      assert.deepEqual(first, { epoch: 1, nextOffset: 0, clock: 0 });
      const ok = await store.commit(write(first.epoch, 7, {
        upserts: [{ key: "alice", state: { views: 3 }, timers: { cart: 1000 }, lastActiveAt: 5 }],
      }));
      assert.equal(ok.committed, true);

      const second = await store.claim(tp, "g", "instance-b");
      assert.deepEqual(
        second,
        { epoch: 2, nextOffset: 7, clock: 7_000 },
        "the new owner resumes at the checkpoint, with its clock",
      );
      const stale = await store.commit(write(first.epoch, 9, {
        upserts: [{ key: "alice", state: { views: 99 }, timers: {}, lastActiveAt: 6 }],
      }));
      assert.equal(stale.committed, false);
      assert.deepEqual((await store.read("user", "alice"))?.state, { views: 3 }, "the fenced write left no trace");
      assert.deepEqual([...(await store.loadTimers("user", tp.partition))], [["alice", { cart: 1000 }]]);
      const loaded = await store.load("user", ["alice", "bob"]);
      assert.deepEqual([...loaded.keys()], ["alice"]);
      assert.equal(loaded.get("alice")?.lastActiveAt, 5);

      // The owner's own earlier attempt committed (a lost reply): a retry of it is acknowledged,
      // a later write that believes the older offset is told where the store stands.
      const believed = { previousOffset: 0 };
      const retry = await store.commit({ ...write(second.epoch, 7, { upserts: [] }), ...believed });
      assert.deepEqual(retry, { committed: true, expired: 0 });
      const diverged = await store.commit({
        ...write(second.epoch, 12, { upserts: [{ key: "alice", state: { views: 50 }, timers: {}, lastActiveAt: 7 }] }),
        ...believed,
      });
      assert.deepEqual(diverged, { committed: false, storedOffset: 7, storedClock: 7_000, expired: 0 });
      assert.deepEqual(
        await store.stored(tp, "g"),
        { epoch: 2, nextOffset: 7, clock: 7_000 },
        "where the store stands",
      );
      assert.equal(await store.stored(tp, "another-group"), null);
      assert.deepEqual((await store.read("user", "alice"))?.state, { views: 3 }, "nothing written");
    });
  },
);

onlyOn(
  "postgresql",
  "a claim of the state's owner racing another group's: it waits for that claim, then is refused naming its group",
  async () => {
    await withStore(async (_store, sql) => {
      const inserted = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      // The first start-up's claim, inserted but not yet committed when the second one reads the owner row.
      const first = sql.begin(async (tx) => {
        await tx`insert into state_owner (group_id) values ('actor-engine')`;
        inserted.resolve();
        await release.promise;
      });
      await inserted.promise;
      const second = claimStateOwner(sql, "actor-engin", ["events"]);
      await eventually("the second claim to wait for the first", async () => {
        const [{ waiting }] = await sql<{ waiting: number }[]>`
          select count(*)::int as waiting from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock' and query like '%state_owner%'`;
        return waiting === 1 ? true : undefined;
      });
      release.resolve();
      await first;
      assert.deepEqual(await second, ["actor-engine"]);
      assert.equal(await stateOwner(sql), "actor-engine");
    });
  },
);

onlyOn("postgresql", "alerts are stored once per alertId, even when a replay commits them again", async () => {
  await withStore(async (store, sql) => {
    const { epoch } = await store.claim(tp, "g", "a");
    const projections = { ...NO_PROJECTIONS, alerts: [alert("x-1"), alert("x-2")] };
    await store.commit(write(epoch, 1, { projections }));
    await store.commit(write(epoch, 2, { projections }));
    const rows = await sql`select alert_id, subject_id, details from alerts order by alert_id`;
    assert.deepEqual(rows.map((r) => r.alert_id), ["x-1", "x-2"]);
    assert.deepEqual(rows[0].details, { cartValue: 42 });
  });
});

onlyOn(
  "postgresql",
  "instances pruning alerts at once do not wait for each other: each skips the rows the other is deleting",
  async () => {
    await withStore(async (store, sql) => {
      const { epoch } = await store.claim(tp, "g", "a");
      const projections = { ...NO_PROJECTIONS, alerts: ["x-1", "x-2", "x-3", "x-4"].map(alert) };
      await store.commit(write(epoch, 1, { projections }));
      await sql`update alerts set created_at = now() - interval '2 days'`;
      let release!: () => void;
      const held = new Promise<void>((resolve) => release = resolve);
      let locked!: () => void;
      const lockTaken = new Promise<void>((resolve) => locked = resolve);
      // Another instance in the middle of its batch: the two oldest rows locked by its delete.
      const other = sql.begin(async (tx) => {
        await tx`delete from alerts where alert_id in ('x-1', 'x-2')`;
        locked();
        await held;
      });
      await lockTaken;
      const pruning = store.pruneAlerts(86_400_000, 10);
      try {
        assert.equal(await within(5_000, "the pruning beside a locked batch", pruning), 2);
      } finally {
        release();
        await other;
        await pruning.catch(() => {});
      }
      assert.equal((await sql`select alert_id from alerts`).length, 0);
    });
  },
);

onlyOn("postgresql", "the latest recommendations per user keep the newest by generatedAt", async () => {
  await withStore(async (store, sql) => {
    const { epoch } = await store.claim(tp, "g", "a");
    const rec = (at: string, productId: string) => ({
      userId: "alice",
      basedOn: { productId: "p" },
      items: [{ productId, score: 1 }],
      generatedAt: at,
    });
    await store.commit(write(epoch, 1, {
      projections: {
        ...NO_PROJECTIONS,
        recommendations: [rec("2026-11-01T10:00:00Z", "a"), rec("2026-11-01T11:00:00Z", "b")],
      },
    }));
    await store.commit(write(epoch, 2, {
      projections: { ...NO_PROJECTIONS, recommendations: [rec("2026-11-01T09:00:00Z", "old")] },
    }));
    const [row] = await sql`select payload from latest_recommendations where user_id = 'alice'`;
    assert.equal(row.payload.items[0].productId, "b");
  });
});

onlyOn(
  "postgresql",
  "expiry removes a partition's inactive actors without pending timers, and explicit deletes",
  async () => {
    await withStore(async (store) => {
      const { epoch } = await store.claim(tp, "g", "a");
      await store.commit(write(epoch, 1, {
        upserts: [
          { key: "old", state: {}, timers: {}, lastActiveAt: 100 },
          { key: "armed", state: {}, timers: { t: 5 }, lastActiveAt: 100 },
          { key: "recent", state: {}, timers: {}, lastActiveAt: 1000 },
          { key: "gone", state: {}, timers: {}, lastActiveAt: 1000 },
        ],
      }));
      const result = await store.commit(write(epoch, 2, { expireBefore: 500, deletes: ["gone"] }));
      assert.equal(result.expired, 1);
      assert.deepEqual([...(await store.load("user", ["old", "armed", "recent", "gone"])).keys()].sort(), [
        "armed",
        "recent",
      ]);
    });
  },
);

/** A stored minute at `T0 + i` minutes with `n` page views (and one order worth n, in a category). */
const T0 = Date.parse("2026-11-01T10:00:00.000Z");
const minute = (i: number, n: number): AnalyticsMinute => ({
  minute: T0 + i * 60_000,
  events: { page_viewed: n, order_completed: 1 },
  orders: 1,
  revenueMillis: n * 1000,
  pageViews: n,
  loadTimeMsSum: n * 100,
  loadTimeSamples: n,
  checkouts: 1,
  cartsConverted: 1,
  cartsAbandoned: 0,
  checkoutsAbandoned: 0,
  categoryRevenueMillis: { [i % 2 === 0 ? "even" : "odd"]: n * 1000 },
  activeUsers: n,
  activeSessions: n,
  sessionsReached: { visited: n, purchased: 1 },
});

onlyOn(
  "postgresql",
  "analytics history: finished minutes stored idempotently, summed over a range, pruned before keepFrom",
  async () => {
    await withStore(async (store, sql) => {
      const { epoch } = await store.claim({ topic: "analytics", partition: 0 }, "g", "a");
      const commit = (offset: number, minutes: AnalyticsMinute[], keepFrom: number, e = epoch) =>
        store.commit({
          ...write(e, offset, { kind: "global" }),
          tp: { topic: "analytics", partition: 0 },
          projections: { ...NO_PROJECTIONS, analyticsHistory: [{ minutes, keepFrom }] },
        });
      const first = [minute(0, 1), minute(1, 2), minute(2, 3)];
      await commit(1, first, T0);
      const rows = () => sql`select * from analytics_minutes order by minute`;
      const before = await rows();
      assert.equal(before.length, 3);
      await commit(2, first, T0); // a replay re-emits the same finished minutes
      const after = await rows();
      assert.deepEqual(after, before, "a replay rewrites identical rows");

      const sum = await sumAnalyticsMinutes(sql, T0, T0 + 2 * 60_000);
      assert.equal(sum.count, 2, "[from, to) holds minutes 0 and 1");
      assert.deepEqual(sum.total, {
        minute: T0,
        events: { page_viewed: 3, order_completed: 2 },
        orders: 2,
        revenueMillis: 3000,
        pageViews: 3,
        loadTimeMsSum: 300,
        loadTimeSamples: 3,
        checkouts: 2,
        cartsConverted: 2,
        cartsAbandoned: 0,
        checkoutsAbandoned: 0,
        categoryRevenueMillis: { even: 1000, odd: 2000 },
        activeUsers: 3,
        activeSessions: 3,
        sessionsReached: { visited: 3, purchased: 2 },
      });
      const empty = await sumAnalyticsMinutes(sql, T0 - 60 * 60_000, T0);
      assert.equal(empty.count, 0);
      assert.deepEqual(empty.total.events, {});
      assert.equal(empty.total.orders, 0);

      // A later batch moves keepFrom: older minutes go.
      await commit(3, [minute(3, 4)], T0 + 2 * 60_000);
      assert.deepEqual((await rows()).map((r) => r.page_views), ["3", "4"]);

      // A fenced-off checkpoint stores nothing.
      await store.claim({ topic: "analytics", partition: 0 }, "g", "b");
      const fenced = await commit(4, [minute(9, 9)], T0, epoch);
      assert.equal(fenced.committed, false);
      assert.deepEqual((await rows()).map((r) => r.page_views), ["3", "4"]);
    });
  },
);

/**
 * A checkpoint transaction that advanced the partition's offset (locking its row) and is held open until `release`:
 * an owner stopped in the middle of it, or a commit still finishing. `ended` settles once it has committed.
 */
/** Asserts that a new owner claims `tp` within 10 s while its old owner (at `epoch`) is stopped, from before its advance. */
async function assertClaimedWhileStopped(store: SqlCheckpointStore, epoch: number): Promise<void> {
  const claimed = await eventually(
    "a claim to take the partition while its old owner is still stopped",
    () => store.claim(tp, "g", "new-owner").catch(() => undefined),
    10_000,
    200,
  );
  assert.equal(claimed.epoch, epoch + 1);
  assert.equal(claimed.nextOffset, 0, "the old owner's advance was rolled back with its session");
}

async function heldCheckpoint(
  sql: ReturnType<typeof connectDatabase>,
  epoch: number,
  nextOffset: number,
  previousOffset: number,
): Promise<{ outcome: string; release: () => void; ended: Promise<unknown> }> {
  const advanced = Promise.withResolvers<string>();
  const release = Promise.withResolvers<void>();
  const ended = sql.begin(async (tx) => {
    const advance = await advanceCheckpoint(
      tx,
      "g",
      tp.topic,
      tp.partition,
      epoch,
      nextOffset,
      nextOffset * 1_000,
      previousOffset,
    );
    advanced.resolve(advance.outcome);
    await release.promise;
  });
  return { outcome: await advanced.promise, release: () => release.resolve(), ended };
}

onlyOn(
  "postgresql",
  "a claim behind a checkpoint transaction left open (its owner stopped) is refused, not held; later it resumes from what that committed",
  () =>
    withStore(async (store, sql) => {
      const first = await store.claim(tp, "g", "old-owner");
      // The old owner's checkpoint, held open after it advanced the offset (and so locked the row).
      const checkpoint = await heldCheckpoint(sql, first.epoch, 7, 0);
      assert.equal(checkpoint.outcome, "advanced");
      // Refused after the lock timeout, so that the claim does not hold up the assignment (and the consumer).
      await assert.rejects(store.claim(tp, "g", "new-owner"), (error: { code?: string }) => {
        assert.equal(error.code, "55P03", "lock_not_available");
        return true;
      });
      checkpoint.release(); // the old owner wakes: its checkpoint commits, its epoch was still current
      await checkpoint.ended;
      const claimed = await store.claim(tp, "g", "new-owner");
      assert.equal(claimed.epoch, first.epoch + 1, "the refused claim changed nothing");
      assert.equal(claimed.nextOffset, 7, "the new owner resumes from what the woken owner committed");
      assert.equal(claimed.clock, 7_000);
    }),
);

onlyOn(
  "postgresql",
  "an owner unsure whether its commit landed reads the checkpoint once that commit has ended, not the offset before it",
  () =>
    withStore(async (store, sql) => {
      const { epoch } = await store.claim(tp, "g", "owner");
      // A checkpoint still committing (its reply lost to its owner): the row is locked until it ends.
      const checkpoint = await heldCheckpoint(sql, epoch, 9, 0);
      assert.equal((await store.stored(tp, "g"))?.nextOffset, 0, "a plain read sees the offset before it");
      let settled: number | undefined;
      const reading = store.settled(tp, "g").then((claim) => (settled = claim?.nextOffset));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(settled, undefined, "the settled read waits while the commit is in flight");
      checkpoint.release();
      await checkpoint.ended;
      await within(5_000, "the settled read", reading);
      assert.equal(settled, 9, "and then reads what the commit left");
      // A transaction that never ends (its owner stopped) makes the read fail after the lock timeout, to be retried.
      const stuck = await heldCheckpoint(sql, epoch, 12, 9);
      await assert.rejects(store.settled(tp, "g"), (error: { code?: string }) => error.code === "55P03");
      stuck.release();
      await stuck.ended;
      assert.equal((await store.settled(tp, "g"))?.nextOffset, 12);
    }),
);

onlyOn(
  "postgresql",
  "with an idle-in-transaction timeout, the server ends a checkpoint its owner left open: the next claim takes the partition; woken, the owner writes nothing and is fenced",
  () =>
    withStore(async (store, _sql, url) => {
      const first = await store.claim(tp, "g", "old-owner");
      // The old owner's own pool, as an engine in production mode opens it (TRANSACTION_IDLE_TIMEOUT_MS).
      const ownerSql = connectDatabase({ url, maxConnections: 1, idleInTransactionTimeoutMs: 500 });
      try {
        const advanced = Promise.withResolvers<void>();
        const wake = Promise.withResolvers<void>();
        const woken = Promise.withResolvers<string>();
        const checkpoint = ownerSql.begin(async (tx) => {
          await advanceCheckpoint(tx, "g", tp.topic, tp.partition, first.epoch, 7, 7_000, 0);
          advanced.resolve();
          await wake.promise;
          // The woken owner's next statement: a write that must not land outside its (ended) transaction.
          try {
            await tx`update partition_checkpoints set next_offset = 99 where group_id = 'g' and topic = ${tp.topic}`;
            woken.resolve("ran");
          } catch {
            woken.resolve("refused");
          }
        });
        const ended = checkpoint.then(() => "committed", (error: Error) => error.message);
        await advanced.promise;
        await assertClaimedWhileStopped(store, first.epoch);
        assert.notEqual(await within(5_000, "the ended transaction", ended), "committed");
        // The owner's pool connects again (other work of the woken engine), then its checkpoint goes on.
        const [{ one }] = await within(
          5_000,
          "a query on the owner's pool",
          ownerSql<{ one: number }[]>`select 1 as one`,
        );
        assert.equal(one, 1, "the owner's pool serves again");
        wake.resolve();
        assert.equal(await within(5_000, "the woken statement", woken.promise), "refused");
        assert.equal((await store.stored(tp, "g"))?.nextOffset, 0, "nothing of the woken transaction landed");
        const fenced = await within(
          5_000,
          "a fenced commit",
          new SqlCheckpointStore(ownerSql).commit(write(first.epoch, 9)),
        );
        assert.equal(fenced.committed, false, "and its old epoch is fenced off");
      } finally {
        await ownerSql.end({ timeout: 1 });
      }
    }),
);

onlyOn(
  "postgresql",
  "with an idle-in-transaction timeout, an owner stopped while the server waits for the rest of a statement it runs for the first time (its parameter types asked first) is ended too: the next claim takes the partition",
  () =>
    withStore(async (store, _sql, url) => {
      const first = await store.claim(tp, "g", "old-owner");
      // The old owner reaches the server through a proxy that, frozen, delivers nothing: a stopped process reads nothing.
      const real = new URL(url);
      const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) });
      const viaProxy = new URL(url);
      viaProxy.port = String(proxy.port);
      const ownerSql = connectDatabase({
        url: viaProxy.toString(),
        maxConnections: 1,
        idleInTransactionTimeoutMs: 500,
      });
      try {
        const advanced = Promise.withResolvers<string>();
        const checkpoint = ownerSql.begin(async (tx) => {
          advanced.resolve(
            (await advanceCheckpoint(tx, "g", tp.topic, tp.partition, first.epoch, 7, 7_000, 0)).outcome,
          );
          // Stopped once the row is locked, as the owner sends a statement new to its connection: postgres.js asks
          // the server for its parameter types, then the server waits for the rest of it.
          proxy.freeze();
          await tx`select ${"a statement this connection has not run before"}::text as first_run`;
        });
        const ended = checkpoint.then(() => "committed", (error: Error) => error.message);
        assert.equal(await advanced.promise, "advanced");
        await assertClaimedWhileStopped(store, first.epoch);
        proxy.thaw();
        assert.notEqual(await within(5_000, "the ended transaction", ended), "committed");
      } finally {
        proxy.close();
        await ownerSql.end({ timeout: 1 });
      }
    }),
);

onlyOn(
  "postgresql",
  "the analytics partition's release is committed with its clock and read back by a new owner, a settled read and a diverged commit",
  async () => {
    await withStore(async (store) => {
      const analytics = { topic: "analytics", partition: 0 };
      const at = Date.UTC(2026, 10, 1, 10, 39, 50);
      const first = await store.claim(analytics, "g", "a");
      assert.deepEqual(first, { epoch: 1, nextOffset: 0, clock: 0 }, "none before the first checkpoint");
      await store.commit({ ...write(1, 0), tp: analytics, clock: at, sourcesPublished: at, previousOffset: 0 });
      const claimed = await store.claim(analytics, "g", "b");
      assert.deepEqual(claimed, { epoch: 2, nextOffset: 0, clock: at, sourcesPublished: at }, "a restart resumes it");
      await store.commit({ ...write(2, 4), tp: analytics, clock: at + 60_000, sourcesPublished: at + 60_000 });
      assert.deepEqual(await store.settled(analytics, "g"), {
        epoch: 2,
        nextOffset: 4,
        clock: at + 60_000,
        sourcesPublished: at + 60_000,
      });
      const diverged = await store.commit({ ...write(2, 9), tp: analytics, previousOffset: 0 });
      assert.deepEqual(diverged, {
        committed: false,
        storedOffset: 4,
        storedClock: at + 60_000,
        storedSourcesPublished: at + 60_000,
        expired: 0,
      });
    });
  },
);

onlyOn(
  "postgresql",
  "a database whose own DateStyle and TimeZone are not ISO and UTC still reads back the times it stored",
  async () => {
    await withStore(async (store, sql, url) => {
      // A server (or database, or role) configured for its region: PostgreSQL then writes timestamps as
      // `01/11/2026 10:30:00 CET`, which JavaScript's Date cannot read, or reads with day and month swapped.
      const [{ name }] = await sql<{ name: string }[]>`select current_database() as name`;
      await sql.unsafe(`alter database ${name} set datestyle = 'SQL, DMY'`);
      await sql.unsafe(`alter database ${name} set timezone = 'Europe/Paris'`);
      const { epoch } = await store.claim(tp, "g", "a");
      const rec = { userId: "alice", basedOn: { productId: "p" }, items: [], generatedAt: "2026-11-02T11:00:00.000Z" };
      await store.commit(write(epoch, 1, {
        upserts: [{ key: "alice", state: { views: 1 }, timers: {}, lastActiveAt: 1 }],
        projections: { ...NO_PROJECTIONS, alerts: [alert("x-1")], recommendations: [rec] },
      }));
      const fresh = connectDatabase({ url, maxConnections: 1 });
      try {
        const alerts = await listAlerts(fresh, { limit: 10 });
        assert.deepEqual(alerts.map((a) => a.occurredAt), ["2026-11-01T10:30:00.000Z"]);
        assert.equal((await latestRecommendations(fresh, "alice"))?.generatedAt, "2026-11-02T11:00:00.000Z");
        const [{ stored }] = await fresh<{ stored: Date }[]>`select now() - interval '1 second' as stored`;
        const state = await loadState(fresh, "user", "alice");
        assert.ok(state && Math.abs(state.updatedAt.getTime() - stored.getTime()) < 60_000, "asOf is the commit time");
        const [{ datestyle }] = await fresh<{ datestyle: string }[]>`select current_setting('datestyle') as datestyle`;
        assert.equal(datestyle, "ISO, MDY", "the engine's sessions write timestamps in ISO 8601");
      } finally {
        await fresh.end();
      }
    });
  },
);

onlyOn(
  "postgresql",
  "rankings and the alert list break ties in code-point order whatever the database's collation (an ICU en-US database)",
  async () => {
    // Ties went by the database's collation: the same data ranked `a…` before `B…` on an en-US server and after it on a
    // C one (PGlite, `initdb --no-locale`), so instances of one deployment, or a migration to another server, disagreed.
    const { databaseUrl } = services();
    const name = uniqueName("icu");
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(
      `create database ${name} template template0 encoding 'UTF8' locale_provider icu icu_locale 'en-US' locale 'C'`,
    );
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    const sql = connectDatabase({ url: url.toString(), maxConnections: 2 });
    try {
      await migrate(sql);
      const [{ icu }] = await sql<{ icu: boolean }[]>`select 'a' < 'B' as icu`;
      assert.ok(icu, "the database collates as en-US (a before B)");
      const minute = new Date(Date.UTC(2026, 11, 6, 10));
      for (const key of ["a-sku", "B-sku"]) {
        await sql`insert into actor_states (kind, key, partition, state, timers, last_active_at, updated_at)
                  values ('product', ${key}, 0, ${sql.json({ views: 5, category: `${key[0]}-cat` })}, '{}', 0, now())`;
        await sql`insert into product_minutes (product_id, minute, partition, category, views, cart_adds, orders, units,
                  revenue_millis) values (${key}, ${minute}, 0, ${`${key[0]}-cat`}, 5, 0, 0, 0, 0)`;
        await sql`insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at)
                  values (${`${key}-alert`}, 'low_inventory', 'warning', 'product', ${key}, ${minute})`;
      }
      const codePoints = ["B-sku", "a-sku"];
      const all = await topProducts(sql, "views", 10);
      assert.deepEqual(all.map((p) => p.productId), codePoints, "window=all");
      const span = { from: minute.getTime(), to: minute.getTime() + 60_000 };
      const trending = { at: span.to, halfLifeMs: 3_600_000 };
      const windowed = await rankProductsInWindow(sql, "views", span.from, span.to, 10, trending);
      assert.deepEqual(windowed.map((p) => p.productId), codePoints, "a window");
      const categories = await rankCategoriesInWindow(sql, "views", span.from, span.to, 10);
      assert.deepEqual(categories.map((c) => c.category), ["B-cat", "a-cat"], "categories");
      const alerts = await listAlerts(sql, { limit: 10 });
      assert.deepEqual(alerts.map((a) => a.alertId), ["B-sku-alert", "a-sku-alert"], "alerts of one instant");
    } finally {
      await sql.end();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  },
);
