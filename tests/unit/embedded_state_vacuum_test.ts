/**
 * The embedded database vacuums `actor_states` often. Every checkpoint rewrites each dirty state whole, and product and
 * global states of 15–200 KB are TOASTed: between whole-database vacuums 10 minutes apart a soak at 150 events/s left
 * 1.49 GB of dead TOAST behind 17 MB of rows, and the vacuum that met it held the one connection for 4–6 s (an append
 * waiting behind it answered 503).
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";

const MB = 1024 * 1024;

Deno.test("actor_states' rewritten states are vacuumed on their own schedule, so the table stays near its live size", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-state-vacuum-" });
  const db = await openEmbeddedDatabase(dataDir, {
    logger: silentLogger,
    vacuumIntervalMs: 0, // the whole-database vacuum left out: the states' own is under test
    walCheckIntervalMs: 0,
    stateVacuumIntervalMs: 1, // a look between any two statements of the loop below
  });
  try {
    await migrate(db.sql);
    // 200 products of ~40 KB of JSON each (incompressible enough to be stored out of line), rewritten 40 times.
    const state = (round: number, key: number) =>
      JSON.stringify({
        round,
        runs: Array.from({ length: 4_000 }, (_, i) => (i * 7919 + key * 104_729 + round) % 1e9),
      });
    for (let round = 0; round < 40; round++) {
      await db.sql`
        insert into actor_states (kind, key, partition, state, timers, next_timer_at, last_active_at, updated_at)
        select 'product', 'p' || g, 0, ${state(round, 0)}::jsonb || jsonb_build_object('key', g), '{}', null, 0, now()
          from generate_series(1, 200) g
        on conflict (kind, key) do update set state = excluded.state, updated_at = excluded.updated_at`;
    }
    const [{ live, total }] = await db.sql<{ live: number; total: number }[]>`
      select sum(pg_column_size(state))::int as live, pg_total_relation_size('actor_states')::int as total
        from actor_states`;
    assert.ok(total < 6 * live + 16 * MB, `actor_states takes ${total} bytes on disk for ${live} bytes of live states`);
  } finally {
    await db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
