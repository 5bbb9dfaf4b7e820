/**
 * /readyz's database check asks for what the statements on `alerts` use besides INSERT and DELETE: a checkpoint's insert
 * (`on conflict (alert_id) do nothing`) reads the conflict column, SELECT, and the retention's pruning locks the rows it
 * deletes (`for update skip locked`), UPDATE. A role without them was reported ready while every checkpoint with an alert
 * failed (and every pruning). On PGlite, with a role.
 */
import assert from "node:assert/strict";
import { SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { databaseReadiness } from "../../engine/database_readiness.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { NO_PROJECTIONS } from "../../engine/outputs.ts";
import { migrate } from "../../sql/migrations.ts";
import type { Sql } from "../../engine/database.ts";

const TP = { topic: "users", partition: 0 };

/** A PGlite database migrated, its session in a role with every privilege but `revoked` on alerts. */
async function withRoleLacking(revoked: string, test: (sql: Sql) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "readiness-alerts-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  const { sql } = db;
  try {
    await migrate(sql);
    await sql.unsafe(`create role engine_role`);
    await sql.unsafe(`grant usage on schema public to engine_role`);
    await sql.unsafe(`grant all on all tables in schema public to engine_role`);
    await sql.unsafe(`revoke ${revoked} on alerts from engine_role`);
    await sql.unsafe(`set role engine_role`);
    await test(sql);
    await sql.unsafe(`reset role`);
    await sql.unsafe(`grant ${revoked} on alerts to engine_role`);
    await sql.unsafe(`set role engine_role`);
    assert.deepEqual(await databaseReadiness(sql), { ok: true });
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("/readyz's database check is not ready while the role may not select from alerts (a checkpoint's insert)", async () => {
  await withRoleLacking("select", async (sql) => {
    const store = new SqlCheckpointStore(sql);
    const { epoch } = await store.claim(TP, "g", "me");
    const alert = {
      alertId: "a1",
      type: "fraud",
      severity: "high",
      subject: { kind: "user", id: "u1" },
      occurredAt: "2026-12-06T12:00:00.000Z",
      details: {},
    };
    await assert.rejects(
      store.commit({
        tp: TP,
        groupId: "g",
        epoch,
        previousOffset: 0,
        nextOffset: 1,
        clock: 1,
        kind: "user",
        upserts: [],
        deletes: [],
        projections: { ...NO_PROJECTIONS, alerts: [alert] },
      }),
      /permission denied for table alerts/,
    );
    const check = await databaseReadiness(sql);
    assert.equal(check.ok, false, JSON.stringify(check));
    assert.match(String(check.reason), /may not write alerts \(SELECT\)/);
  });
});

Deno.test("/readyz's database check is not ready while the role may not update alerts (the pruning's row locks)", async () => {
  await withRoleLacking("update", async (sql) => {
    await assert.rejects(new SqlCheckpointStore(sql).pruneAlerts(1_000, 10), /permission denied for table alerts/);
    const check = await databaseReadiness(sql);
    assert.equal(check.ok, false, JSON.stringify(check));
    assert.match(String(check.reason), /may not write alerts \(UPDATE\)/);
  });
});
