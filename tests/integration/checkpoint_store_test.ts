/** SqlCheckpointStore on a real PostgreSQL server: atomic commits, fencing, timers, expiry, projections. */
import assert from "node:assert/strict";
import { type CheckpointWrite, SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { connectDatabase } from "../../engine/database.ts";
import { NO_PROJECTIONS } from "../../engine/outputs.ts";
import { migrate } from "../../sql/migrations.ts";
import { freshDatabase } from "../helpers/services.ts";
import { onlyOn } from "../helpers/modes.ts";

const tp = { topic: "events", partition: 2 };
const alert = (id: string) => ({
  alertId: id,
  type: "cart_abandoned",
  severity: "warning",
  subject: { kind: "user", id: "alice" },
  occurredAt: "2026-11-01T10:30:00.000Z",
  details: { cartValue: 42 },
});

async function withStore(fn: (store: SqlCheckpointStore, sql: ReturnType<typeof connectDatabase>) => Promise<void>) {
  const db = await freshDatabase();
  const sql = connectDatabase({ url: db.url, maxConnections: 4 });
  try {
    await migrate(sql);
    await fn(new SqlCheckpointStore(sql), sql);
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

onlyOn(
  "postgresql",
  "a commit writes states, timers and the next offset together; a fenced epoch writes nothing",
  async () => {
    await withStore(async (store) => {
      const first = await store.claim(tp, "g", "instance-a");
      assert.deepEqual(first, { epoch: 1, nextOffset: 0 });
      const ok = await store.commit(write(first.epoch, 7, {
        upserts: [{ key: "alice", state: { views: 3 }, timers: { cart: 1000 }, lastActiveAt: 5 }],
      }));
      assert.equal(ok.committed, true);

      const second = await store.claim(tp, "g", "instance-b");
      assert.deepEqual(second, { epoch: 2, nextOffset: 7 }, "the new owner resumes at the checkpoint");
      const stale = await store.commit(write(first.epoch, 9, {
        upserts: [{ key: "alice", state: { views: 99 }, timers: {}, lastActiveAt: 6 }],
      }));
      assert.equal(stale.committed, false);
      assert.deepEqual((await store.read("user", "alice"))?.state, { views: 3 }, "the fenced write left no trace");
      assert.deepEqual([...(await store.loadTimers("user", tp.partition))], [["alice", { cart: 1000 }]]);
      const loaded = await store.load("user", ["alice", "bob"]);
      assert.deepEqual([...loaded.keys()], ["alice"]);
      assert.equal(loaded.get("alice")?.lastActiveAt, 5);
    });
  },
);

onlyOn("postgresql", "alerts are stored once per alertId, even when a replay commits them again", async () => {
  await withStore(async (store, sql) => {
    const { epoch } = await store.claim(tp, "g", "a");
    const projections = { alerts: [alert("x-1"), alert("x-2")], recommendations: [] };
    await store.commit(write(epoch, 1, { projections }));
    await store.commit(write(epoch, 2, { projections }));
    const rows = await sql`select alert_id, subject_id, details from alerts order by alert_id`;
    assert.deepEqual(rows.map((r) => r.alert_id), ["x-1", "x-2"]);
    assert.deepEqual(rows[0].details, { cartValue: 42 });
  });
});

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
        alerts: [],
        recommendations: [rec("2026-11-01T10:00:00Z", "a"), rec("2026-11-01T11:00:00Z", "b")],
      },
    }));
    await store.commit(write(epoch, 2, {
      projections: { alerts: [], recommendations: [rec("2026-11-01T09:00:00Z", "old")] },
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
