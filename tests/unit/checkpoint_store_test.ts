/**
 * The checkpoint store's tables on PostgreSQL (PGlite), and the migrations that make them. States are keyed by
 * client-supplied ids (cart items, co-occurrence counters); what PostgreSQL gives back must have the names that were
 * checkpointed, including ids this V8's JSON.parse misreads (see engine/json_parse.ts).
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import {
  ALERT_PRUNE_BATCH,
  type CheckpointStore,
  type CheckpointWrite,
  SqlCheckpointStore,
} from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { Sql } from "../../engine/database.ts";
import { type Alert, NO_PROJECTIONS, type ProductMinute, type Recommendation } from "../../engine/outputs.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";
import { encodeStates, loadState, loadStates, saveStates } from "../../sql/checkpoints.ts";
import { partitionOwner, upsertInstance } from "../../sql/instances.ts";
import { partitionForKey } from "../../engine/partitioner.ts";

Deno.test("checkpointed states come back with their own names, also ids that differ by an escape", async () => {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint-names-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    // jsonb stores names shortest first, so "a" comes before each of the other ids.
    const states = new Map<string, unknown>([
      ["u1", { items: { a: 1, "TV 55\\": 2 } }],
      ["u2", { items: { a: 3, 'TV 55"': 4 } }],
      ["u3", { items: { a: 5, "TV 55\n": 6 } }],
      ["u4", { coCounts: { "p\\": 1, 'p"': 2, "p\t": 3, "p\\\\": 4 } }],
    ]);
    await db.sql.begin((tx) =>
      saveStates(
        tx,
        "user",
        0,
        encodeStates("user", [...states].map(([key, state]) => ({ key, state, timers: {}, lastActiveAt: 1 }))),
      )
    );
    // One by one and in one query: each read meets the object shapes the reads before it left.
    for (const [key, state] of states) assert.deepEqual((await loadState(db.sql, "user", key))?.state, state);
    const all = await loadStates(db.sql, "user", [...states.keys()]);
    for (const [key, state] of states) assert.deepEqual(all.get(key)?.state, state);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the tables every checkpoint rewrites leave room on their pages (migration 009)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint-store-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const rows = await db.sql<{ relname: string; reloptions: string[] | null }[]>`
      select relname, reloptions from pg_class
       where relname in ('actor_states', 'partition_checkpoints', 'product_minutes', 'analytics_minutes')
       order by relname`;
    assert.deepEqual(
      rows.map((r) => [r.relname, r.reloptions]),
      ["actor_states", "analytics_minutes", "partition_checkpoints", "product_minutes"].map((t) => [t, [
        "fillfactor=70",
      ]]),
    );
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A fresh embedded database with the schema, for `fn`. */
async function withDatabase(fn: (sql: Sql) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "checkpoint-store-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await fn(db.sql);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const tp = { topic: "events", partition: 0 };
const DAY = 86_400_000;
const recommendation = (userId: string): Recommendation => ({
  userId,
  basedOn: "p1",
  items: [{ productId: "p2", score: 1 }],
  generatedAt: "2026-01-01T00:00:00.000Z",
});
const write = (epoch: number, nextOffset: number, extra: Partial<CheckpointWrite> = {}): CheckpointWrite => ({
  tp,
  groupId: "g",
  epoch,
  nextOffset,
  clock: nextOffset,
  kind: "user",
  upserts: [],
  deletes: [],
  projections: NO_PROJECTIONS,
  ...extra,
});

Deno.test("an expired user's latest recommendations are deleted with its state, expired in memory or by the sweep", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(tp, "g", "me");
    const users = ["in-memory", "swept", "back", "active"];
    await store.commit(write(epoch, 1, {
      upserts: users.map((key) => ({
        key,
        state: { n: 1 },
        timers: {},
        lastActiveAt: key === "active" ? 9_000 : 1_000,
      })),
      projections: { ...NO_PROJECTIONS, recommendations: users.map(recommendation) },
    }));
    // A product's row with a user's key is not that user's.
    await store.commit(write(epoch, 2, { kind: "product", deletes: ["active"] }));
    const result = await store.commit(write(epoch, 3, {
      deletes: ["in-memory", "back"],
      // Expired, then back with a new record before this checkpoint: its new state stays.
      upserts: [{ key: "back", state: { n: 2 }, timers: {}, lastActiveAt: 9_500 }],
      expireBefore: 5_000,
    }));
    assert.equal(result.expired, 1);
    const recommended = await sql<{ user_id: string }[]>`select user_id from latest_recommendations order by user_id`;
    assert.deepEqual(recommended.map((r) => r.user_id), ["active"]);
    assert.deepEqual([...(await store.load("user", users)).keys()].sort(), ["active", "back"]);
    assert.deepEqual((await store.read("user", "back"))?.state, { n: 2 });
  });
});

/**
 * A user's latest recommendations: the newest by generatedAt, whenever stored; of one instant, the one emitted last,
 * in one checkpoint as in two (RECS_MIN_INTERVAL_SECONDS=0 and views of p1 then p2 posted together, one receive time).
 */
async function checkLatestRecommendations(
  store: CheckpointStore,
  basedOn: (userId: string) => Promise<unknown>,
): Promise<void> {
  const { epoch } = await store.claim(tp, "g", "me");
  const rec = (userId: string, on: string, generatedAt = "2026-01-01T00:00:00.000Z"): Recommendation => ({
    ...recommendation(userId),
    basedOn: on,
    generatedAt,
  });
  const commit = (offset: number, recommendations: Recommendation[]) =>
    store.commit(write(epoch, offset, { projections: { ...NO_PROJECTIONS, recommendations } }));
  await commit(1, [rec("together", "p1"), rec("together", "p2")]);
  await commit(2, [rec("apart", "p1")]);
  await commit(3, [rec("apart", "p2")]);
  // An older one stored later (another product partition behind) does not replace it.
  await commit(4, [rec("apart", "old", "2025-12-31T23:00:00.000Z")]);
  assert.deepEqual([await basedOn("together"), await basedOn("apart")], ["p2", "p2"]);
}

Deno.test("of a user's recommendations of one instant, the one emitted last is kept, in one checkpoint as in two", async () => {
  await withDatabase(async (sql) => {
    await checkLatestRecommendations(new SqlCheckpointStore(sql), async (userId) => {
      const [row] = await sql<{ based_on: string }[]>`
        select payload->>'basedOn' as based_on from latest_recommendations where user_id = ${userId}`;
      return row?.based_on;
    });
  });
  const memory = new MemoryCheckpointStore();
  await checkLatestRecommendations(memory, (userId) => Promise.resolve(memory.recommendations.get(userId)?.basedOn));
});

Deno.test("progress: where every claimed partition of one topic and group stands, read without claiming", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(tp, "g", "me");
    await store.commit({ ...write(epoch, 7), clock: 1_234 });
    await store.claim({ topic: "events", partition: 2 }, "g", "me");
    await store.claim({ topic: "analytics", partition: 0 }, "g", "me");
    await store.claim({ topic: "events", partition: 1 }, "other", "me");
    const progress = await store.progress("events", "g");
    assert.deepEqual([...progress].sort(([a], [b]) => a - b), [
      [0, { epoch, nextOffset: 7, clock: 1_234 }],
      [2, { epoch: 1, nextOffset: 0, clock: 0 }],
    ]);
    assert.deepEqual(await store.stored(tp, "g"), { epoch, nextOffset: 7, clock: 1_234 }, "nothing claimed");
  });
});

Deno.test("alerts stored longer ago than the retention are pruned oldest first, a bounded batch per call, whenever they occurred; checkpoints prune none", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(tp, "g", "me");
    const alert = (id: string, at: string): Alert => ({
      alertId: id,
      type: "cart_abandoned",
      severity: "warning",
      subject: { kind: "user", id },
      occurredAt: at,
      details: {},
    });
    const old = Array.from({ length: ALERT_PRUNE_BATCH + 2 }, (_, i) => alert(`old-${i}`, "2026-01-01T00:00:00Z"));
    await store.commit(write(epoch, 1, {
      // "imported": an event of 2019 imported now.
      projections: { ...NO_PROJECTIONS, alerts: [...old, alert("imported", "2019-10-01T00:00:00Z")] },
    }));
    await sql`update alerts set created_at = now() - interval '2 days' + split_part(alert_id, '-', 2)::int * interval '1 ms'
               where alert_id like 'old-%'`;
    await store.commit(
      write(epoch, 2, { projections: { ...NO_PROJECTIONS, alerts: [alert("new", "2026-01-02T00:00:00Z")] } }),
    );
    assert.equal((await sql`select alert_id from alerts`).length, ALERT_PRUNE_BATCH + 4, "a checkpoint prunes none");
    assert.equal(await store.pruneAlerts(DAY, ALERT_PRUNE_BATCH), ALERT_PRUNE_BATCH);
    const left = await sql<{ alert_id: string }[]>`select alert_id from alerts order by created_at, alert_id`;
    assert.deepEqual(left.map((r) => r.alert_id), [
      `old-${ALERT_PRUNE_BATCH}`,
      `old-${ALERT_PRUNE_BATCH + 1}`,
      "imported",
      "new",
    ]);
    assert.equal(await store.pruneAlerts(DAY, ALERT_PRUNE_BATCH), 2);
    assert.equal(await store.pruneAlerts(DAY, ALERT_PRUNE_BATCH), 0);
    assert.deepEqual((await sql`select alert_id from alerts order by alert_id`).map((r) => r.alert_id), [
      "imported",
      "new",
    ]);
  });
});

Deno.test("alerts are pruned by an index on created_at; GET /v1/alerts keeps its index on occurred_at (migration 011)", async () => {
  await withDatabase(async (sql) => {
    const rows = await sql<{ indexname: string; indexdef: string }[]>`
      select indexname, indexdef from pg_indexes where tablename = 'alerts' and indexname like 'alerts_by_%'
       order by indexname`;
    assert.deepEqual(rows.map((r) => r.indexname), [
      "alerts_by_created",
      "alerts_by_stored",
      "alerts_by_subject",
      "alerts_by_time",
      "alerts_by_type",
    ]);
    assert.match(rows[0].indexdef, /\(created_at\)$/);
    // GET /v1/alerts?order=stored reads by it (migration 020).
    assert.match(rows[1].indexdef, /\(stored_xid, alert_id COLLATE "C"\)$/);
  });
});

Deno.test("a misnamed migration file is refused, not skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "migrations-" });
  try {
    await Deno.writeTextFile(`${dir}/001_first.sql`, "create table first (id int);");
    await Deno.writeTextFile(`${dir}/.editor-swap`, "ignored: hidden");
    const url = new URL(`file://${dir}/`);
    assert.deepEqual((await readMigrations(url)).map((m) => m.name), ["001_first.sql"]);
    for (const name of ["002-second.sql", "2_second.sql", "002_Second.sql", "002_second.SQL"]) {
      await Deno.writeTextFile(`${dir}/${name}`, "create table second (id int);");
      await assert.rejects(
        readMigrations(url),
        new RegExp(`Cannot migrate: ${name.replace(".", "\\.")} in .* NNN_name\\.sql`),
      );
      await Deno.remove(`${dir}/${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a database migrated past the migrations this version knows is refused", async () => {
  await withDatabase(async (sql) => {
    const known = await readMigrations();
    assert.deepEqual(await migrate(sql, known), [], "every known migration is applied");
    // A newer version applied one more; this version, started again (a rollback), must not run on that schema.
    await sql`insert into schema_migrations (id, name) values (${known.length + 1}, 'from_the_future.sql')`;
    await assert.rejects(
      migrate(sql, known),
      /Cannot start: the database was migrated by a newer version \(its latest migration is from_the_future\.sql/,
    );
  });
});

Deno.test("a commit retried after a lost reply: the same write again is committed, an older one is told where the store stands", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(tp, "g", "me");
    const first = write(epoch, 5, { previousOffset: 0, clock: 1_000 });
    assert.deepEqual(await store.commit(first), { committed: true, expired: 0 });
    // Its reply lost, the writer sends it again: it landed, so it is committed, and nothing is written twice.
    assert.deepEqual(await store.commit(first), { committed: true, expired: 0 });
    // A writer that moved on from the offset it believed (rewound and replayed to 3) learns the stored offset and clock.
    assert.deepEqual(await store.commit(write(epoch, 3, { previousOffset: 0 })), {
      committed: false,
      storedOffset: 5,
      storedClock: 1_000,
      expired: 0,
    });
    assert.deepEqual(await store.stored(tp, "g"), { epoch, nextOffset: 5, clock: 1_000 });
  });
});

/** Both stores keep a fed partition's release with its clock: every read of the checkpoint gives it back. */
async function checkReleaseKept(store: CheckpointStore): Promise<void> {
  const analytics = { topic: "analytics", partition: 0 };
  const first = await store.claim(analytics, "g", "me");
  assert.deepEqual(first, { epoch: 1, nextOffset: 0, clock: 0 }, "none before the first checkpoint");
  const at = Date.UTC(2026, 0, 5, 10, 39, 50);
  const ok = await store.commit({ ...write(first.epoch, 0), tp: analytics, clock: at, sourcesPublished: at });
  assert.equal(ok.committed, true);
  const kept = { epoch: 1, nextOffset: 0, clock: at, sourcesPublished: at };
  assert.deepEqual(await store.stored(analytics, "g"), kept);
  assert.deepEqual(await store.settled(analytics, "g"), kept);
  assert.deepEqual((await store.progress("analytics", "g")).get(0), kept);
  // A new owner (a restart) resumes it with the clock.
  const second = await store.claim(analytics, "g", "other");
  assert.deepEqual(second, { ...kept, epoch: 2 });
  // A commit of unknown outcome that landed: the writer, believing the offset before it, learns what it stored.
  await store.commit({ ...write(second.epoch, 5), tp: analytics, clock: at + 60_000, sourcesPublished: at + 60_000 });
  const diverged = await store.commit({ ...write(second.epoch, 9), tp: analytics, previousOffset: 0 });
  assert.deepEqual(diverged, {
    committed: false,
    storedOffset: 5,
    storedClock: at + 60_000,
    storedSourcesPublished: at + 60_000,
    expired: 0,
  });
  // A checkpoint without one clears it.
  await store.commit({ ...write(second.epoch, 6), tp: analytics, previousOffset: 5 });
  assert.deepEqual(await store.stored(analytics, "g"), { epoch: 2, nextOffset: 6, clock: 6 });
  assert.deepEqual(await store.claim(analytics, "g", "me"), { epoch: 3, nextOffset: 6, clock: 6 });
}

Deno.test("a fed partition's release is stored with its clock and read back by a claim, a settled read and a diverged commit (migration 013)", async () => {
  await withDatabase((sql) => checkReleaseKept(new SqlCheckpointStore(sql)));
  await checkReleaseKept(new MemoryCheckpointStore());
});

/** A former owner's commits are fenced off whatever offset it names: they write nothing and tell it nothing to resume. */
async function checkFormerOwnerFenced(store: CheckpointStore): Promise<void> {
  const alice = (n: number) => ({ key: "alice", state: { n }, timers: {}, lastActiveAt: n });
  const old = await store.claim(tp, "g", "old-owner");
  assert.equal((await store.commit(write(old.epoch, 5, { previousOffset: 0, upserts: [alice(1)] }))).committed, true);
  const current = await store.claim(tp, "g", "new-owner");
  // The former owner, still believing it stands at 5, checkpoints what it handled since.
  const fenced = { committed: false, expired: 0 };
  assert.deepEqual(await store.commit(write(old.epoch, 8, { previousOffset: 5, upserts: [alice(99)] })), fenced);
  assert.equal(
    (await store.commit(write(current.epoch, 8, { previousOffset: 5, upserts: [alice(2)] }))).committed,
    true,
  );
  // The new owner now stands where the former one would go: that is not the former one's commit having landed.
  assert.deepEqual(await store.commit(write(old.epoch, 8, { previousOffset: 5, upserts: [alice(99)] })), fenced);
  assert.deepEqual(await store.stored(tp, "g"), { epoch: current.epoch, nextOffset: 8, clock: 8 });
  assert.deepEqual((await store.read("user", "alice"))?.state, { n: 2 });
}

Deno.test("a fenced-off owner's commit is refused also when it names the offset it advances from: nothing written, nothing to resume from", async () => {
  await withDatabase((sql) => checkFormerOwnerFenced(new SqlCheckpointStore(sql)));
  await checkFormerOwnerFenced(new MemoryCheckpointStore());
});

/**
 * Timers by the partition count that placed their keys: a partition's own rows under the current count, and the rows
 * placed by another count (or by none recorded: written before migration 016) wherever their key now goes.
 */
async function checkTimersPlacedByCount(store: CheckpointStore): Promise<void> {
  const at = (partition: number) => ({ topic: tp.topic, partition });
  const epochs = await Promise.all([0, 1, 2].map(async (p) => (await store.claim(at(p), "g", "me")).epoch));
  const armed = (key: string, deadline: number) => ({ key, state: {}, timers: { cart: deadline }, lastActiveAt: 1 });
  // Of 3 partitions, f goes to 0, a and c to 1, b and d to 2.
  assert.deepEqual(["f", "a", "c", "b", "d"].map((key) => partitionForKey(key, 3)), [0, 1, 1, 2, 2]);
  await store.commit(write(epochs[0], 1, { upserts: [armed("a", 1)] })); // no count recorded
  await store.commit(write(epochs[0], 2, { partitions: 1, upserts: [armed("b", 2)] })); // before partitions were added
  await store.commit(write(epochs[0], 3, {
    partitions: 3,
    upserts: [armed("f", 3), { key: "quiet", state: {}, timers: {}, lastActiveAt: 1 }],
  }));
  await store.commit({ ...write(epochs[1], 1, { partitions: 3, upserts: [armed("c", 4)] }), tp: at(1) });
  await store.commit({ ...write(epochs[2], 1, { partitions: 3, upserts: [armed("d", 5)] }), tp: at(2) });
  const keys = async (partition: number, partitions?: number) =>
    [...(await store.loadTimers("user", partition, partitions)).keys()].sort();
  assert.deepEqual(await keys(0, 3), ["f"]);
  assert.deepEqual(await keys(1, 3), ["a", "c"], "a's row names partition 0, with no count");
  assert.deepEqual(await keys(2, 3), ["b", "d"], "b's row names partition 0, placed by 1");
  assert.deepEqual((await store.loadTimers("user", 2, 3)).get("b"), { cart: 2 });
  assert.deepEqual(await keys(0), ["a", "b", "f"], "without a count: by the partition rows name");
  // b's new partition writes it: its row now names partition 2, placed by 3.
  await store.commit({ ...write(epochs[2], 2, { partitions: 3, upserts: [armed("b", 6)] }), tp: at(2) });
  assert.deepEqual(await keys(2, 3), ["b", "d"]);
  assert.deepEqual((await store.loadTimers("user", 2, 3)).get("b"), { cart: 6 });
  assert.deepEqual(await keys(0), ["a", "f"]);
}

Deno.test("a partition's pending timers are its own rows' under the current partition count, and those moved to it by a raised count", async () => {
  await withDatabase((sql) => checkTimersPlacedByCount(new SqlCheckpointStore(sql)));
  await checkTimersPlacedByCount(new MemoryCheckpointStore());
});

Deno.test("a later checkpoint of an actor replaces its whole row: state, timers, activity and partition; timer loads, expiry and asOf follow it", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const other = { topic: tp.topic, partition: 1 };
    const e0 = (await store.claim(tp, "g", "me")).epoch;
    const e1 = (await store.claim(other, "g", "me")).epoch;
    const updatedAt = async (key: string) =>
      (await sql<
        { at: string }[]
      >`select updated_at::text as at from actor_states where kind = 'user' and key = ${key}`)[0].at;
    await store.commit(write(e0, 1, {
      upserts: [
        { key: "armed-later", state: { v: 1 }, timers: {}, lastActiveAt: 1_000 },
        { key: "active-later", state: { v: 1 }, timers: { cart: 5_000 }, lastActiveAt: 1_000 },
        { key: "moved", state: { v: 1 }, timers: { cart: 7_000 }, lastActiveAt: 9_000 },
      ],
    }));
    const firstAt = await updatedAt("armed-later");
    await store.commit(write(e0, 2, {
      upserts: [
        // A timer armed since (a cart filled again by a timer-only message), no record.
        { key: "armed-later", state: { v: 2 }, timers: { cart: 9_000 }, lastActiveAt: 1_000 },
        // A record since, and its timer fired.
        { key: "active-later", state: { v: 2 }, timers: {}, lastActiveAt: 8_000 },
      ],
      expireBefore: 5_000,
    }));
    // The partition count grew: the key is now another partition's, and its timers with it.
    await store.commit({
      ...write(e1, 1, { upserts: [{ key: "moved", state: { v: 2 }, timers: { cart: 7_000 }, lastActiveAt: 9_000 }] }),
      tp: other,
    });
    const loaded = await store.load("user", ["armed-later", "active-later", "moved"]);
    assert.deepEqual(
      [...loaded].sort(([a], [b]) => a.localeCompare(b)).map(([key, a]) => [key, a.state, a.timers, a.lastActiveAt]),
      [
        ["active-later", { v: 2 }, {}, 8_000],
        ["armed-later", { v: 2 }, { cart: 9_000 }, 1_000],
        ["moved", { v: 2 }, { cart: 7_000 }, 9_000],
      ],
      "neither expired by the sweep, each as last written",
    );
    assert.deepEqual([...await store.loadTimers("user", 0)], [["armed-later", { cart: 9_000 }]]);
    assert.deepEqual([...await store.loadTimers("user", 1)], [["moved", { cart: 7_000 }]]);
    assert.deepEqual(
      [...await store.loadTimers("user")].sort(([a], [b]) => a.localeCompare(b)),
      [["armed-later", { cart: 9_000 }], ["moved", { cart: 7_000 }]],
      "every partition's, for a worker that places keys by the partition count",
    );
    assert.ok((await updatedAt("armed-later")) > firstAt, "asOf is the latest checkpoint's time");
  });
});

Deno.test("loads, reads and expiry stay within their actor kind and partition", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const other = { topic: tp.topic, partition: 1 };
    const e0 = (await store.claim(tp, "g", "me")).epoch;
    const e1 = (await store.claim(other, "g", "me")).epoch;
    // A user and a product with the same key, and users of two partitions, all quiet since 1,000.
    await store.commit(write(e0, 1, {
      upserts: [
        { key: "k", state: { user: true }, timers: { cart: 9 }, lastActiveAt: 1_000 },
        { key: "at-cutoff", state: {}, timers: {}, lastActiveAt: 5_000 },
        { key: "quiet", state: {}, timers: {}, lastActiveAt: 1_000 },
      ],
      projections: { ...NO_PROJECTIONS, recommendations: [recommendation("k")] },
    }));
    await store.commit(write(e0, 2, {
      kind: "product",
      upserts: [{ key: "k", state: { product: true }, timers: {}, lastActiveAt: 1_000 }],
    }));
    await store.commit({
      ...write(e1, 1, { upserts: [{ key: "elsewhere", state: {}, timers: { cart: 7 }, lastActiveAt: 1_000 }] }),
      tp: other,
    });
    await store.commit({
      ...write(e1, 2, { upserts: [{ key: "quiet-elsewhere", state: {}, timers: {}, lastActiveAt: 1_000 }] }),
      tp: other,
    });
    assert.deepEqual((await store.load("user", ["k"])).get("k")?.state, { user: true });
    assert.deepEqual((await store.load("product", ["k"])).get("k")?.state, { product: true });
    assert.deepEqual((await store.read("user", "k"))?.state, { user: true });
    assert.deepEqual((await store.read("product", "k"))?.state, { product: true });
    assert.deepEqual([...await store.loadTimers("user", 0)], [["k", { cart: 9 }]]);
    assert.deepEqual([...await store.loadTimers("product", 0)], []);
    const users = ["at-cutoff", "elsewhere", "k", "quiet", "quiet-elsewhere"];
    // The product partition's sweep expires the product alone; the users keep their states and recommendations.
    assert.equal((await store.commit(write(e0, 3, { kind: "product", expireBefore: 5_000 }))).expired, 1);
    assert.equal(await store.read("product", "k"), null);
    assert.deepEqual([...(await store.load("user", users)).keys()].sort(), users);
    assert.equal((await sql`select 1 from latest_recommendations where user_id = 'k'`).length, 1);
    // Partition 0's user sweep takes its quiet user only: not partition 1's (its owner's to judge), nor one last active
    // at the cutoff itself (memory keeps it too), nor one with a pending timer.
    assert.equal((await store.commit(write(e0, 4, { expireBefore: 5_000 }))).expired, 1);
    assert.deepEqual([...(await store.load("user", users)).keys()].sort(), users.filter((u) => u !== "quiet"));
  });
});

/** Rows of partitions 1 and 2 written under 3 partitions; the topic now has 2: partition 0's sweep takes 2's, not 1's. */
async function checkOrphansSwept(store: CheckpointStore): Promise<void> {
  const at = (partition: number) => ({ topic: tp.topic, partition });
  const epochs = [];
  for (const partition of [0, 1, 2]) epochs.push((await store.claim(at(partition), "g", "me")).epoch);
  const quiet = (key: string, timers = {}) => ({ key, state: {}, timers, lastActiveAt: 1_000 });
  await store.commit({ ...write(epochs[1], 1, { partitions: 3, upserts: [quiet("one")] }), tp: at(1) });
  await store.commit({
    ...write(epochs[2], 1, { partitions: 3, upserts: [quiet("two"), quiet("two-armed", { cart: 9 })] }),
    tp: at(2),
  });
  const keys = ["one", "two", "two-armed"];
  // Without a partition count, partition 0 takes none of them; partition 1 takes its own row, not partition 2's.
  assert.equal((await store.commit(write(epochs[0], 1, { expireBefore: 5_000 }))).expired, 0);
  const sweep1 = write(epochs[1], 2, { partitions: 2, expireBefore: 5_000 });
  assert.equal((await store.commit({ ...sweep1, tp: at(1) })).expired, 1);
  assert.deepEqual([...(await store.load("user", keys)).keys()].sort(), ["two", "two-armed"]);
  // Partition 0 takes partition 2's quiet row; not one with a pending timer (its keys' new partition loads it).
  assert.equal((await store.commit(write(epochs[0], 2, { partitions: 2, expireBefore: 5_000 }))).expired, 1);
  assert.deepEqual([...(await store.load("user", keys)).keys()].sort(), ["two-armed"]);
}

Deno.test("partition 0's sweep also expires rows of partitions the topic no longer has (created again with fewer)", async () => {
  await withDatabase((sql) => checkOrphansSwept(new SqlCheckpointStore(sql)));
  await checkOrphansSwept(new MemoryCheckpointStore());
});

Deno.test("a partition's owner is the instance that claimed it last", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    await upsertInstance(sql, "a", "http://a:3000");
    await upsertInstance(sql, "b", "http://b:3000");
    await store.claim(tp, "g", "a");
    assert.deepEqual(await partitionOwner(sql, "g", tp.topic, tp.partition, 60_000), {
      instanceId: "a",
      httpUrl: "http://a:3000",
    });
    await store.claim(tp, "g", "b");
    assert.deepEqual(await partitionOwner(sql, "g", tp.topic, tp.partition, 60_000), {
      instanceId: "b",
      httpUrl: "http://b:3000",
    });
  });
});

Deno.test("a checkpoint adds its product minutes once: not again when its landed attempt is retried, not at all when fenced", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const products = { topic: "product-events", partition: 0 };
    const T0 = Date.UTC(2026, 10, 1, 10);
    const minute = (views: number, cartAdds: number, category: string | null): ProductMinute => ({
      productId: "p1",
      minute: T0,
      category,
      brand: category === null ? null : "acme",
      views,
      cartAdds,
      orders: 1,
      units: 2,
      revenueMillis: 3_000,
      keepFrom: T0 - DAY,
    });
    const commit = (epoch: number, from: number, to: number, delta: ProductMinute) =>
      store.commit({
        ...write(epoch, to, { kind: "product", previousOffset: from }),
        tp: products,
        projections: { ...NO_PROJECTIONS, productMinutes: [delta] },
      });
    const sums = async () =>
      (await sql<{ sums: string }[]>`
        select concat_ws(',', views, cart_adds, orders, units, revenue_millis, category, brand) as sums
          from product_minutes`).map((r) => r.sums);
    const old = await store.claim(products, "g", "old-owner");
    assert.equal((await commit(old.epoch, 0, 4, minute(1, 1, "shoes"))).committed, true);
    // The same checkpoint again (its reply was lost): acknowledged, and its deltas are not added twice.
    assert.equal((await commit(old.epoch, 0, 4, minute(1, 1, "shoes"))).committed, true);
    assert.deepEqual(await sums(), ["1,1,1,2,3000,shoes,acme"]);
    const current = await store.claim(products, "g", "new-owner");
    assert.equal((await commit(old.epoch, 4, 9, minute(50, 50, "fenced"))).committed, false);
    // A later fact of the minute without a category (none known any more) is added to a row of its own: it moves
    // nothing into or out of the category already stored.
    assert.equal((await commit(current.epoch, 4, 6, minute(2, 3, null))).committed, true);
    assert.deepEqual((await sums()).sort(), ["1,1,1,2,3000,shoes,acme", "2,3,1,2,3000"]);
    assert.equal((await commit(current.epoch, 6, 8, minute(1, 0, "shoes"))).committed, true);
    assert.deepEqual((await sums()).sort(), ["2,1,2,4,6000,shoes,acme", "2,3,1,2,3000"]);
  });
});

Deno.test("alerts are pruned by when they were first stored, oldest first, whatever order they were inserted in; a replay does not store them anew", async () => {
  await withDatabase(async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(tp, "g", "me");
    const alert = (id: string): Alert => ({
      alertId: id,
      type: "cart_abandoned",
      severity: "warning",
      subject: { kind: "user", id },
      occurredAt: "2026-01-01T00:00:00.000Z",
      details: {},
    });
    const projections = { ...NO_PROJECTIONS, alerts: ["a", "b", "c"].map(alert) };
    await store.commit(write(epoch, 1, { projections }));
    // Stored in the order a, b, c; by time c is the oldest.
    await sql`update alerts set created_at = now() - interval '3 days' + (ascii(alert_id) - ascii('a')) * interval '-1 hour'`;
    // A replay re-commits all three: they keep the time they were first stored.
    await store.commit(write(epoch, 2, { projections }));
    assert.equal(await store.pruneAlerts(DAY, 1), 1);
    assert.deepEqual((await sql`select alert_id from alerts order by alert_id`).map((r) => r.alert_id), ["a", "b"]);
    assert.equal(await store.pruneAlerts(DAY, ALERT_PRUNE_BATCH), 2);
  });
});

/** A log started again below the checkpoint: the offset moves back with a new generation, read back by claims (014). */
async function checkLogRestart(store: CheckpointStore): Promise<void> {
  const old = await store.claim(tp, "g", "old-owner");
  assert.equal((await store.commit(write(old.epoch, 20, { previousOffset: 0 }))).committed, true);
  assert.equal((await store.claim(tp, "g", "old-owner")).logGeneration, undefined, "0: never restarted");
  const current = await store.claim(tp, "g", "me");
  assert.equal(await store.restartLog(tp, "g", old.epoch, 0), null, "a former owner is fenced off");
  assert.equal(await store.restartLog(tp, "g", current.epoch, 0), 1);
  assert.deepEqual(await store.stored(tp, "g"), { epoch: current.epoch, nextOffset: 0, clock: 20, logGeneration: 1 });
  assert.equal((await store.commit(write(current.epoch, 3, { previousOffset: 0 }))).committed, true);
  const next = await store.claim(tp, "g", "next-owner");
  assert.deepEqual(next, { epoch: current.epoch + 1, nextOffset: 3, clock: 3, logGeneration: 1 });
  assert.equal(await store.restartLog(tp, "g", next.epoch, 1), 2);
  assert.equal((await store.settled(tp, "g"))?.logGeneration, 2);
}

Deno.test("a log started again below its checkpoint moves it back and raises its generation at once, fenced by epoch (migration 014)", async () => {
  await withDatabase((sql) => checkLogRestart(new SqlCheckpointStore(sql)));
  await checkLogRestart(new MemoryCheckpointStore());
});
