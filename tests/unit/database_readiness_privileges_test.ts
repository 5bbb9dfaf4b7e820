/**
 * /readyz's database check asks for every privilege the checkpoint's statements use, not only INSERT and DELETE: its
 * upserts (`insert … on conflict do update`, actor_states and the global actor's minutes in actor_state_parts among
 * them) need UPDATE; its alert insert (`on conflict (alert_id) do nothing`) reads the conflict column, SELECT; and the
 * retention's pruning locks the rows it deletes (`for update skip locked`), UPDATE. A role without one was reported
 * ready while every such checkpoint (or pruning) failed. On PGlite, with a role.
 */
import assert from "node:assert/strict";
import { GLOBAL_KEY } from "../../actors/global.ts";
import { type CheckpointWrite, SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { databaseReadiness } from "../../engine/database_readiness.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { NO_PROJECTIONS } from "../../engine/outputs.ts";
import { migrate } from "../../sql/migrations.ts";
import type { Sql } from "../../engine/database.ts";

/**
 * A PGlite database migrated, its session in a role with every privilege but `revoked` on `table` while `test` runs;
 * the check is ready again once it is granted back.
 */
async function withRoleLacking(
  revoked: string,
  table: string,
  test: (sql: Sql) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "readiness-privileges-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  const { sql } = db;
  try {
    await migrate(sql);
    await sql.unsafe(`create role engine_role`);
    await sql.unsafe(`grant usage on schema public to engine_role`);
    await sql.unsafe(`grant all on all tables in schema public to engine_role`);
    await sql.unsafe(`revoke ${revoked} on ${table} from engine_role`);
    await sql.unsafe(`set role engine_role`);
    await test(sql);
    await sql.unsafe(`reset role`);
    await sql.unsafe(`grant ${revoked} on ${table} to engine_role`);
    await sql.unsafe(`set role engine_role`);
    assert.deepEqual(await databaseReadiness(sql), { ok: true });
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The check is not ready, naming `reason`. */
async function assertNotReady(sql: Sql, reason: RegExp): Promise<void> {
  const check = await databaseReadiness(sql);
  assert.equal(check.ok, false, JSON.stringify(check));
  assert.match(String(check.reason), reason);
}

/** The first checkpoint of partition 0 of `topic`, claimed for it, writing `write`'s actors and projections. */
async function firstCommit(
  sql: Sql,
  topic: string,
  write: Pick<CheckpointWrite, "kind" | "upserts" | "projections">,
): Promise<unknown> {
  const tp = { topic, partition: 0 };
  const store = new SqlCheckpointStore(sql);
  const { epoch } = await store.claim(tp, "g", "me");
  return store.commit({ tp, groupId: "g", epoch, previousOffset: 0, nextOffset: 1, clock: 1, deletes: [], ...write });
}

Deno.test("/readyz's database check is not ready while the role may not update a table a checkpoint upserts", async () => {
  await withRoleLacking("update", "actor_state_parts", async (sql) => {
    // What the check is for: a checkpoint of the global actor (its minutes as parts) cannot commit.
    await assert.rejects(
      firstCommit(sql, "analytics", {
        kind: "global",
        upserts: [{
          key: GLOBAL_KEY,
          state: {},
          parts: { field: "minutes", upserts: [{ key: 60_000, data: { minute: 60_000 } }], deletes: [], replace: true },
          timers: {},
          lastActiveAt: 1,
        }],
        projections: NO_PROJECTIONS,
      }),
      /permission denied for table actor_state_parts/,
    );
    await assertNotReady(sql, /may not write actor_state_parts \(UPDATE\)/);
  });
});

Deno.test("/readyz's database check is not ready while the role may not select from alerts (a checkpoint's insert)", async () => {
  await withRoleLacking("select", "alerts", async (sql) => {
    const alert = {
      alertId: "a1",
      type: "fraud",
      severity: "high",
      subject: { kind: "user", id: "u1" },
      occurredAt: "2026-12-06T12:00:00.000Z",
      details: {},
    };
    await assert.rejects(
      firstCommit(sql, "users", { kind: "user", upserts: [], projections: { ...NO_PROJECTIONS, alerts: [alert] } }),
      /permission denied for table alerts/,
    );
    await assertNotReady(sql, /may not write alerts \(SELECT\)/);
  });
});

Deno.test("/readyz's database check is not ready while the role may not update alerts (the pruning's row locks)", async () => {
  await withRoleLacking("update", "alerts", async (sql) => {
    await assert.rejects(new SqlCheckpointStore(sql).pruneAlerts(1_000, 10), /permission denied for table alerts/);
    await assertNotReady(sql, /may not write alerts \(UPDATE\)/);
  });
});

Deno.test("/readyz's database check is ready while the role holds a checkpoint's privileges column by column", async () => {
  // A DBA may grant SELECT, INSERT and UPDATE on every column instead of on the table: a checkpoint commits all the
  // same, but the check asked for the table's privileges only and said not ready for good.
  const dir = await Deno.makeTempDir({ prefix: "readiness-privileges-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  const { sql } = db;
  const byColumn = async (table: string, except?: string) => {
    const columns = (await sql<{ name: string }[]>`
      select column_name as name from information_schema.columns where table_name = ${table} order by ordinal_position
    `).map((c) => c.name).filter((name) => name !== except);
    await sql.unsafe(`revoke select, insert, update on ${table} from engine_role`);
    const list = columns.join(", ");
    await sql.unsafe(`grant select (${list}), insert (${list}), update (${list}) on ${table} to engine_role`);
  };
  try {
    await migrate(sql);
    await sql.unsafe(`create role engine_role`);
    await sql.unsafe(`grant usage on schema public to engine_role`);
    await sql.unsafe(`grant all on all tables in schema public to engine_role`);
    await byColumn("partition_checkpoints");
    await byColumn("actor_states");
    await sql.unsafe(`set role engine_role`);
    await firstCommit(sql, "users", {
      kind: "user",
      upserts: [{ key: "u1", state: {}, timers: {}, lastActiveAt: 1 }],
      projections: NO_PROJECTIONS,
    });
    assert.deepEqual(await databaseReadiness(sql), { ok: true });
    // A column left out is still a privilege missing (UPDATE on it, say): ready would hide a checkpoint's failure.
    await sql.unsafe(`reset role`);
    await sql.unsafe(`revoke update (state) on actor_states from engine_role`);
    await sql.unsafe(`set role engine_role`);
    await assertNotReady(sql, /may not write actor_states \(UPDATE\)/);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
