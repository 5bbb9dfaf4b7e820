/**
 * The owner of a database's state (sql/state_owner.ts) on PGlite: recorded by the first group that claims it, on a
 * fresh database and on one upgraded with state already in it. Two start-ups at once on PostgreSQL are in
 * tests/integration/startup_test.ts.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";
import { claimStateOwner, stateOwner } from "../../sql/state_owner.ts";

const TOPICS = ["events", "product-events", "analytics"];

/** Runs `fn` on a fresh PGlite database, removed afterwards. */
async function withDatabase(fn: (sql: Sql) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "state-owner-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await fn(db.sql);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the first group to claim a fresh database's state owns it; another is refused, naming the owner", async () => {
  await withDatabase(async (sql) => {
    await migrate(sql);
    assert.equal(await stateOwner(sql), null);
    assert.deepEqual(await claimStateOwner(sql, "actor-engine", TOPICS), []);
    assert.equal(await stateOwner(sql), "actor-engine");
    // Before its first checkpoint (none is written here), the typo is refused all the same.
    assert.deepEqual(await claimStateOwner(sql, "actor-engin", TOPICS), ["actor-engine"]);
    assert.deepEqual(await claimStateOwner(sql, "actor-engin", ["other.events"]), ["actor-engine"]);
    assert.deepEqual(await claimStateOwner(sql, "actor-engine", TOPICS), []);
    assert.equal(await stateOwner(sql), "actor-engine");
  });
});

Deno.test("two groups claiming a fresh database's state at once: exactly one owns it, the other is refused naming it", async () => {
  await withDatabase(async (sql) => {
    await migrate(sql);
    // Both read "no owner yet" before either inserts: the second insert finds the first one's row.
    const [a, b] = await Promise.all([
      claimStateOwner(sql, "group-a", TOPICS),
      claimStateOwner(sql, "group-b", TOPICS),
    ]);
    const owner = await stateOwner(sql);
    assert.ok(owner === "group-a" || owner === "group-b", String(owner));
    const [winner, loser] = owner === "group-a" ? [a, b] : [b, a];
    assert.deepEqual(winner, []);
    assert.deepEqual(loser, [owner], "both groups were let in");
  });
});

Deno.test("a database upgraded with a group's checkpoints: that group becomes the owner, another is refused", async () => {
  await withDatabase(async (sql) => {
    const migrations = await readMigrations();
    const before = migrations.filter((m) => m.name < "012_");
    await migrate(sql, before);
    // As an engine of that version claimed it (its schema has no column added since).
    await sql`insert into partition_checkpoints (group_id, topic, partition, epoch, owner)
              values ('built-it', 'events', 0, 1, 'old-instance')`;
    await migrate(sql, migrations);

    // Refused as before the owner table existed, and nothing recorded: the owner is still the group that built it.
    assert.deepEqual(await claimStateOwner(sql, "newcomer", TOPICS), ["built-it"]);
    assert.equal(await stateOwner(sql), null);
    assert.deepEqual(await claimStateOwner(sql, "built-it", TOPICS), []);
    assert.equal(await stateOwner(sql), "built-it");
    assert.deepEqual(await claimStateOwner(sql, "newcomer", TOPICS), ["built-it"]);
  });
});
