/**
 * listAlerts(), behind GET /v1/alerts, on PostgreSQL (PGlite): newest first by occurredAt (ties by alertId), `type`
 * and `since` (inclusive) filters together, and `limit`. The unit HTTP tests answer without this query, and the
 * integration test's `since` checks pass whether the bound is inclusive or not and whatever the order within an instant.
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";
import { listAlerts } from "../../sql/queries.ts";

Deno.test("listAlerts() lists newest first, filters by type and by since (inclusive), and stops at limit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "alerts-query-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const rows: [string, string, string][] = [
      ["a1", "low_inventory", "2026-11-22T10:00:00.000Z"],
      ["a2", "out_of_stock", "2026-11-22T10:05:00.000Z"],
      ["a3", "low_inventory", "2026-11-22T10:10:00.000Z"],
      ["a5", "low_inventory", "2026-11-22T10:15:00.000Z"],
      ["a4", "low_inventory", "2026-11-22T10:15:00.000Z"],
      ["a6", "cart_abandoned", "2026-11-22T10:20:00.000Z"],
    ];
    for (const [id, type, at] of rows) {
      await db.sql`insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at, details)
                   values (${id}, ${type}, 'warning', 'product', 'p1', ${new Date(at)}, '{"n":1}')`;
    }
    const ids = async (filter: { type?: string; since?: string; limit?: number }) =>
      (await listAlerts(db.sql, {
        ...(filter.type !== undefined ? { type: filter.type } : {}),
        ...(filter.since !== undefined ? { since: new Date(filter.since) } : {}),
        limit: filter.limit ?? 50,
      })).map((a) => a.alertId);

    assert.deepEqual(await ids({}), ["a6", "a4", "a5", "a3", "a2", "a1"], "newest first, one instant by alertId");
    assert.deepEqual(await ids({ type: "low_inventory" }), ["a4", "a5", "a3", "a1"]);
    assert.deepEqual(await ids({ since: "2026-11-22T10:10:00.000Z" }), ["a6", "a4", "a5", "a3"], "since is inclusive");
    assert.deepEqual(await ids({ since: "2026-11-22T10:10:00.001Z" }), ["a6", "a4", "a5"]);
    assert.deepEqual(await ids({ type: "low_inventory", since: "2026-11-22T10:05:00.000Z" }), ["a4", "a5", "a3"]);
    assert.deepEqual(await ids({ limit: 2 }), ["a6", "a4"]);
    assert.deepEqual(await ids({ type: "slow_pages" }), []);

    const [alert] = await listAlerts(db.sql, { type: "out_of_stock", limit: 1 });
    assert.deepEqual(alert, {
      alertId: "a2",
      type: "out_of_stock",
      severity: "warning",
      subject: { kind: "product", id: "p1" },
      occurredAt: "2026-11-22T10:05:00.000Z",
      details: { n: 1 },
    });
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
