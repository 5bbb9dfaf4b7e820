/**
 * Checkpoints of the embedded database, so that its WAL (`pgdata/pg_wal`) stops growing. PGlite runs PostgreSQL as a
 * single-user backend: without a postmaster there is no checkpointer process (no timed checkpoints), and PostgreSQL
 * asks for a checkpoint after `max_wal_size` of WAL only under a postmaster (`XLogWrite`). So no WAL segment was ever
 * recycled until the engine stopped: at 150 events/s pg_wal grew by about 100 MB a minute (past 1 GB after 11 minutes,
 * 6 GB an hour), and a restart after a crash replayed all of it. The engine runs CHECKPOINT itself once the WAL written
 * since the last one passes CHECKPOINT_WAL_BYTES; PostgreSQL then recycles the segments before it, as it would.
 */
import type { Sql } from "./database.ts";
import { ensureError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { runPeriodically } from "./periodic_task.ts";

/** WAL since the last checkpoint that makes the next look checkpoint: a quarter of PostgreSQL's max_wal_size (1 GB). */
export const CHECKPOINT_WAL_BYTES = 256 * 1024 * 1024;
/** How often the WAL written since the last checkpoint is looked at (one small query). */
export const DEFAULT_WAL_CHECK_INTERVAL_MS = 30_000;

/** Runs CHECKPOINT if at least `walBytes` of WAL were written since the last one; returns how many were, if it did. */
export async function checkpointIfDue(sql: Sql, walBytes: number = CHECKPOINT_WAL_BYTES): Promise<number | null> {
  const [row] = await sql<{ written: string }[]>`
    select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), redo_lsn)::bigint::text as written from pg_control_checkpoint()`;
  const written = Number(row.written);
  if (written < walBytes) return null;
  await sql`checkpoint`;
  return written;
}

/** Looks every `intervalMs` and checkpoints when due, on the engine's own connection; returns a stop function. */
export function scheduleWalCheckpoints(
  sql: Sql,
  intervalMs: number,
  log: Logger,
  walBytes: number = CHECKPOINT_WAL_BYTES,
): () => Promise<void> {
  return runPeriodically(intervalMs, () => {
    const started = performance.now();
    return checkpointIfDue(sql, walBytes).then(
      (written) => {
        if (written !== null) {
          log.debug("checkpointed", { walBytes: written, ms: Math.round(performance.now() - started) });
        }
      },
      (error) => log.warn("checkpoint failed; trying again at the next look", { error: ensureError(error) }),
    );
  });
}
