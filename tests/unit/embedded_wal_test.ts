/**
 * The embedded database's WAL stays bounded. PGlite runs PostgreSQL without a postmaster, hence without a checkpointer,
 * and its WAL was never recycled while the engine ran (1 GB after 11 minutes at 150 events/s).
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { checkpointIfDue } from "../../engine/embedded_wal.ts";
import { silentLogger } from "../../engine/logger.ts";

const MB = 1024 * 1024;

/** Bytes of the WAL segment files in `pgdata` (a segment a checkpoint removes while they are counted is left out). */
async function walBytes(pgdata: string): Promise<number> {
  let bytes = 0;
  for await (const entry of Deno.readDir(`${pgdata}/pg_wal`)) {
    if (!entry.isFile) continue;
    try {
      bytes += (await Deno.stat(`${pgdata}/pg_wal/${entry.name}`)).size;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return bytes;
}

Deno.test("the embedded database's WAL is recycled by checkpoints once enough was written, and stays bounded", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-wal-" });
  const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0, walCheckIntervalMs: 0 });
  try {
    await db.sql`create table churn (id int primary key, v text)`;
    const value = "v".repeat(2_000);
    const rewrite = () =>
      db.sql`insert into churn select g, ${value} from generate_series(1, 4000) g
             on conflict (id) do update set v = excluded.v || ''`;
    // PGlite alone: nothing is recycled, however much is written.
    const start = await walBytes(db.pgdata);
    for (let i = 0; i < 8; i++) await rewrite();
    const grown = await walBytes(db.pgdata) - start;
    assert.ok(grown >= 64 * MB, `pg_wal grew by ${grown} bytes`);
    assert.equal(await checkpointIfDue(db.sql, 1024 * MB), null, "below the threshold: no checkpoint");
    // The engine's rounds between writes: each checkpoints once 32 MiB were written since the last.
    const lsn = async () => {
      const [row] = await db.sql<
        { at: string }[]
      >`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text as at`;
      return Number(row.at);
    };
    const from = await lsn();
    let checkpoints = 0;
    for (let i = 0; i < 40; i++) {
      await rewrite();
      if (await checkpointIfDue(db.sql, 32 * MB) !== null) checkpoints++;
    }
    const written = await lsn() - from;
    assert.ok(written >= 256 * MB, `${written} bytes of WAL written`);
    assert.ok(checkpoints >= 8, `${checkpoints} checkpoint(s)`);
    // What is left is what PostgreSQL keeps for reuse (min_wal_size, 80 MB, and its estimate of the next cycle's need).
    const kept = await walBytes(db.pgdata);
    assert.ok(
      kept <= 128 * MB,
      `pg_wal holds ${kept} bytes after ${written} were written and ${checkpoints} checkpoints`,
    );
  } finally {
    await db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the open embedded database looks at its WAL on its own and checkpoints it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-wal-" });
  const db = await openEmbeddedDatabase(dataDir, {
    logger: silentLogger,
    vacuumIntervalMs: 0,
    walCheckIntervalMs: 1, // a look between any two statements of the loop below
    checkpointWalBytes: 32 * MB,
  });
  try {
    await db.sql`create table churn (id int primary key, v text)`;
    const value = "v".repeat(2_000);
    for (let i = 0; i < 40; i++) {
      await db.sql`insert into churn select g, ${value} from generate_series(1, 4000) g
                   on conflict (id) do update set v = excluded.v || ''`;
    }
    const kept = await walBytes(db.pgdata);
    assert.ok(kept <= 128 * MB, `pg_wal holds ${kept} bytes after some 320 MB were written`);
  } finally {
    await db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
