/**
 * The checkpoint store's tables on PostgreSQL (PGlite). States are keyed by client-supplied ids (cart items, co-occurrence counters); what PostgreSQL
 * gives back must have the names that were checkpointed, including ids this V8's JSON.parse misreads
 * (see engine/json_parse.ts).
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";
import { encodeStates, loadState, loadStates, saveStates } from "../../sql/checkpoints.ts";

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
