/**
 * The checkpoint store's tables on PostgreSQL (PGlite), and the migrations that make them. States are keyed by
 * client-supplied ids (cart items, co-occurrence counters); what PostgreSQL gives back must have the names that were
 * checkpointed, including ids this V8's JSON.parse misreads (see engine/json_parse.ts).
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { Sql } from "../../engine/database.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";
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
