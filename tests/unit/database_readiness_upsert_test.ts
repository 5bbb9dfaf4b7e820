/**
 * /readyz's database check asks for every privilege a checkpoint uses: its upserts (`insert … on conflict do update`,
 * actor_states and the global actor's minutes in actor_state_parts among them) need UPDATE as well as INSERT. A role
 * without it was reported ready while every checkpoint writing the global actor failed. On PGlite, with a role.
 */
import assert from "node:assert/strict";
import { GLOBAL_KEY } from "../../actors/global.ts";
import { SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { databaseReadiness } from "../../engine/database_readiness.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { NO_PROJECTIONS } from "../../engine/outputs.ts";
import { migrate } from "../../sql/migrations.ts";

const TP = { topic: "analytics", partition: 0 };

Deno.test("/readyz's database check is not ready while the role may not update a table a checkpoint upserts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "readiness-upsert-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  const { sql } = db;
  try {
    await migrate(sql);
    await sql.unsafe(`create role engine_role`);
    await sql.unsafe(`grant usage on schema public to engine_role`);
    await sql.unsafe(`grant all on all tables in schema public to engine_role`);
    await sql.unsafe(`revoke update on actor_state_parts from engine_role`);
    await sql.unsafe(`set role engine_role`);

    // What the check is for: a checkpoint of the global actor (its minutes as parts) cannot commit.
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(TP, "g", "me");
    await assert.rejects(
      store.commit({
        tp: TP,
        groupId: "g",
        epoch,
        previousOffset: 0,
        nextOffset: 1,
        clock: 1,
        kind: "global",
        upserts: [{
          key: GLOBAL_KEY,
          state: {},
          parts: { field: "minutes", upserts: [{ key: 60_000, data: { minute: 60_000 } }], deletes: [], replace: true },
          timers: {},
          lastActiveAt: 1,
        }],
        deletes: [],
        projections: NO_PROJECTIONS,
      }),
      /permission denied for table actor_state_parts/,
    );

    const check = await databaseReadiness(sql);
    assert.equal(check.ok, false, JSON.stringify(check));
    assert.match(String(check.reason), /may not write actor_state_parts \(UPDATE\)/);

    await sql.unsafe(`reset role`);
    await sql.unsafe(`grant update on actor_state_parts to engine_role`);
    await sql.unsafe(`set role engine_role`);
    assert.deepEqual(await databaseReadiness(sql), { ok: true });
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
