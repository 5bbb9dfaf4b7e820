/**
 * The embedded database: PGlite (PostgreSQL compiled to WASM) on disk under DATA_DIR, served on a
 * Unix socket in a directory only the engine's user can enter (PGlite asks no password: on a loopback
 * port any local user could connect) by PGlite's socket server, so that the engine talks to it with
 * postgres.js exactly as it talks to PostgreSQL in production. PGlite runs one backend, so the pool has exactly one
 * connection and the socket server accepts one.
 *
 * Durability (PGlite 0.5.16, verified by reading its source and by kill -9 tests): PostgreSQL runs
 * with `synchronous_commit=on`, so a commit writes its WAL with write(2) before the query answers;
 * the data then lives in the operating system's page cache and survives the death of the process
 * (kill -9, OOM, panic). PGlite starts PostgreSQL with fsync off and its Node filesystem has no
 * fsync, so an operating-system crash or power loss may lose the last commits: use production mode
 * (PostgreSQL) where that matters.
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { connectDatabase, type Sql } from "./database.ts";
import { LOCK_FILE } from "./data_dir_lock.ts";
import { ConfigError, DatabaseUnavailableError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { runPeriodically } from "./periodic_task.ts";
import { describePGliteError } from "./pglite_error.ts";
import { checkPgdataOwner, foreignFileError } from "./pgdata_owner.ts";
import { copyTemplate, DEFAULT_TEMPLATE_DIR, discardTemplate, saveTemplate, templatePath } from "./pglite_template.ts";
import { installSocketFraming } from "./pglite_socket_framing.ts";
import { CHECKPOINT_WAL_BYTES, DEFAULT_WAL_CHECK_INTERVAL_MS, scheduleWalCheckpoints } from "./embedded_wal.ts";
import { pathExists } from "./path_exists.ts";

/** Subdirectory of DATA_DIR holding PostgreSQL's files. */
export const PGDATA_DIR = "pgdata";
/** The socket's file name in its directory: PostgreSQL's, for the default port the URL implies. */
const SOCKET_FILE = ".s.PGSQL.5432";
/** Written next to PGDATA_DIR once the database was initialised completely. */
const INITIALISED_MARKER = "pgdata.initialised";
/** Names a database set aside because its initialisation did not finish (followed by the time). */
const INCOMPLETE_SUFFIX = ".incomplete-";
/** Where the template is copied, in DATA_DIR, before it is renamed to PGDATA_DIR: a copy cut short stays here. */
const TEMPLATE_COPY_DIR = "pgdata.copying";
/**
 * pgdata's mode. PGlite (through Deno's node:fs) creates its files readable and writable by everyone (0666, whatever
 * the umask) in directories of 0755: any local user could have read or rewritten the database. Like PostgreSQL, which
 * refuses a data directory others can enter, only the engine's user may enter it.
 */
const PGDATA_MODE = 0o700;
/** Names, in DATA_DIR, the socket directory of the engine running on it: the next start removes one a SIGKILL left. */
const SOCKET_DIR_RECORD = "socket-dir";
/** Prefix of the socket directories under the temp dir (a recorded path without it is never removed). */
const SOCKET_DIR_PREFIX = "actor-engine-pg-";
/** PGlite runs no autovacuum (single-user PostgreSQL), so the engine vacuums this often. */
const DEFAULT_VACUUM_INTERVAL_MS = 10 * 60_000;
/**
 * actor_states is vacuumed on its own this often: each checkpoint rewrites its dirty states whole, and ten minutes of
 * dead product and global states (TOASTed, 15–200 KB each) took 1.5 GB and a vacuum of 4–6 s on the one connection.
 */
const DEFAULT_STATE_VACUUM_INTERVAL_MS = 60_000;

/** Settings of the embedded database. */
export interface EmbeddedDatabaseOptions {
  readonly logger: Logger;
  /** How often to run VACUUM (ANALYZE); 0 disables it. */
  readonly vacuumIntervalMs?: number;
  /** How often to VACUUM actor_states alone, between those; 0 disables it. */
  readonly stateVacuumIntervalMs?: number;
  /** How often to look at the WAL written since the last checkpoint (embedded_wal.ts); 0 disables checkpoints. */
  readonly walCheckIntervalMs?: number;
  /** WAL since the last checkpoint that makes a look checkpoint. */
  readonly checkpointWalBytes?: number;
  /** Folder of the machine-wide template that makes a first start fast (pglite_template.ts); null: none. */
  readonly templateDir?: string | null;
}

/** An open embedded database. */
export interface EmbeddedDatabase {
  /** postgres.js client with one connection to PGlite. */
  readonly sql: Sql;
  /** The URL of the socket server's Unix socket, in a private directory (it accepts one connection: the engine's). */
  readonly url: string;
  /** Where PostgreSQL's files are. */
  readonly pgdata: string;
  /** Whether this start copied the machine-wide template instead of running initdb. */
  readonly fromTemplate: boolean;
  /** Closes the client, the socket server and PGlite, in that order. */
  close(): Promise<void>;
}

/**
 * Whether an engine has started on `dataDir` (it initialised its database there, or holds or held its lock while
 * initialising it): tools that must not create a database where none is ask first.
 */
export async function engineHasRunIn(dataDir: string): Promise<boolean> {
  return await pathExists(`${dataDir}/${INITIALISED_MARKER}`) || await pathExists(`${dataDir}/${LOCK_FILE}`);
}

/**
 * Opens (initialising on first use) the database under `dataDir`, which must exist and be locked
 * by the caller. A first start that was interrupted before initialisation finished is set aside
 * and initialised again.
 */
export async function openEmbeddedDatabase(
  dataDir: string,
  options: EmbeddedDatabaseOptions,
): Promise<EmbeddedDatabase> {
  const log = options.logger.child({ component: "pglite" });
  const started = performance.now();
  const pgdata = `${dataDir}/${PGDATA_DIR}`;
  const marker = `${dataDir}/${INITIALISED_MARKER}`;
  if ((await Deno.lstat(marker).catch(() => null))?.isSymlink) {
    // Written through, it would create or rewrite the file it points to (as root, for an engine run as root on a DATA_DIR
    // another user can write).
    throw new ConfigError(
      `Cannot start: ${INITIALISED_MARKER} in DATA_DIR ${dataDir} is a symbolic link (someone who can write DATA_DIR ` +
        `made it so); the engine writes it itself. Delete ${marker} if the database was never initialised, else ` +
        `replace it by a regular file`,
    );
  }
  const initialised = await pathExists(marker);
  if (!initialised && await pathExists(pgdata)) {
    await removeEarlierAsides(dataDir, log);
    const aside = `${pgdata}${INCOMPLETE_SUFFIX}${Date.now()}`;
    log.warn("setting aside a database whose initialisation did not finish", { from: pgdata, to: aside });
    await Deno.rename(pgdata, aside);
  }
  if (!initialised) await Deno.remove(`${dataDir}/${TEMPLATE_COPY_DIR}`, { recursive: true }).catch(() => {});
  if (initialised && !(await pathExists(pgdata))) {
    // PGlite would initialise an empty database there, as if nothing had ever been accepted: PostgreSQL too refuses
    // a data directory that is gone.
    throw new ConfigError(
      `Cannot start: DATA_DIR ${dataDir} holds ${INITIALISED_MARKER} but no ${PGDATA_DIR}: the embedded database ` +
        `that was initialised there was moved or deleted. Restore ${pgdata}, or, to start with an empty database ` +
        `(and an empty log), delete ${marker} too`,
    );
  }
  if (initialised) await checkPgdataOwner(dataDir, pgdata);
  if (initialised && (await Deno.stat(pgdata)).isDirectory && !(await pathExists(`${pgdata}/PG_VERSION`))) {
    // PGlite runs initdb in a folder without PG_VERSION: an emptied pgdata (or an empty volume mounted there) would
    // start on an empty log just the same.
    throw new ConfigError(
      `Cannot start: DATA_DIR ${dataDir} holds ${INITIALISED_MARKER} but ${pgdata} holds no database (no ` +
        `PG_VERSION): the files of the embedded database that was initialised there were moved or deleted. Restore ` +
        `them, or, to start with an empty database (and an empty log), delete ${marker} too`,
    );
  }
  let db: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  let fromTemplate = false;
  let socketDir: string | undefined;
  try {
    const templateDir = options.templateDir === undefined ? DEFAULT_TEMPLATE_DIR : options.templateDir;
    ({ db, fromTemplate } = await startPGlite(dataDir, initialised ? null : templateDir, log));
    // Also a database an earlier release left open to others (before anything is read from it over the socket).
    if (Deno.build.os !== "windows") await Deno.chmod(pgdata, PGDATA_MODE);
    // A new file (O_EXCL): never through a link put there since it was checked.
    if (!initialised) await Deno.writeTextFile(marker, `${new Date().toISOString()}\n`, { createNew: true });
    await removeLeftSocketDir(dataDir, log);
    socketDir = await Deno.makeTempDir({ prefix: SOCKET_DIR_PREFIX });
    await Deno.chmod(socketDir, 0o700);
    // A new file (removeLeftSocketDir removed the one before): never through a link put in its place.
    await Deno.writeTextFile(`${dataDir}/${SOCKET_DIR_RECORD}`, `${socketDir}\n`, { createNew: true });
    installSocketFraming();
    server = new PGLiteSocketServer({ db, path: `${socketDir}/${SOCKET_FILE}`, maxConnections: 1 });
    await server.start();
  } catch (error) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    if (socketDir) await removeSocketDir(dataDir, socketDir);
    const foreign = initialised ? await foreignFileError(dataDir, pgdata).catch(() => null) : null;
    if (foreign) throw foreign;
    throw new DatabaseUnavailableError(
      `Cannot open the embedded database in ${pgdata}: ${describePGliteError(error)}`,
      { cause: error },
    );
  }
  const url = `postgres://postgres@/postgres?host=${encodeURIComponent(socketDir!)}`;
  // One connection for good: a replaced one would leave its prepared statements in PGlite's only backend.
  const sql = connectDatabase({ url, maxConnections: 1, replaceConnections: false });
  log.info("embedded database open", {
    pgdata,
    created: !initialised,
    fromTemplate,
    ms: Math.round(performance.now() - started),
  });
  const stopVacuum = scheduleVacuum(sql, options.vacuumIntervalMs ?? DEFAULT_VACUUM_INTERVAL_MS, log);
  const stopStateVacuum = scheduleVacuum(
    sql,
    options.stateVacuumIntervalMs ?? DEFAULT_STATE_VACUUM_INTERVAL_MS,
    log,
    async () => {
      // Tools open the database before (or without) the migrations that create it.
      const [table] = await sql<{ present: boolean; parts: boolean }[]>`
        select to_regclass('actor_states') is not null as present, to_regclass('actor_state_parts') is not null as parts`;
      // The global actor's newest minutes, rewritten by every checkpoint, are rows of actor_state_parts (migration 021).
      if (table.parts) await sql`vacuum actor_states, actor_state_parts`;
      else if (table.present) await sql`vacuum actor_states`;
    },
  );
  const stopCheckpoints = scheduleWalCheckpoints(
    sql,
    options.walCheckIntervalMs ?? DEFAULT_WAL_CHECK_INTERVAL_MS,
    log,
    options.checkpointWalBytes ?? CHECKPOINT_WAL_BYTES,
  );
  let closing: Promise<void> | null = null;
  const [pg, socketServer, socketHome] = [db, server, socketDir!];
  return {
    sql,
    url,
    pgdata,
    fromTemplate,
    close() {
      closing ??= (async () => {
        await stopVacuum();
        await stopStateVacuum();
        await stopCheckpoints();
        await sql.end({ timeout: 5 });
        await socketServer.stop();
        await pg.close();
        await removeSocketDir(dataDir, socketHome);
      })();
      return closing;
    },
  };
}

/**
 * Starts PGlite on DATA_DIR's pgdata. A new directory (templateDir given) is copied from the template when there is
 * one, and otherwise initialised and saved as the template (PGlite closes it first, so that the copy is of a database
 * shut down cleanly). A template that cannot be copied or opened is deleted and the directory initialised from scratch.
 */
async function startPGlite(
  dataDir: string,
  templateDir: string | null,
  log: Logger,
): Promise<{ db: PGlite; fromTemplate: boolean }> {
  const pgdata = `${dataDir}/${PGDATA_DIR}`;
  const template = templateDir ? await templatePath(templateDir) : undefined;
  if (template && await copyTemplate(template, pgdata, `${dataDir}/${TEMPLATE_COPY_DIR}`, log)) {
    const db = new PGlite(pgdata);
    try {
      await db.waitReady;
      return { db, fromTemplate: true };
    } catch (error) {
      log.warn("PGlite cannot open a copy of the template; deleting it and initialising from scratch", {
        template,
        error,
      });
      await db.close().catch(() => {});
      await discardTemplate(template);
      await Deno.remove(pgdata, { recursive: true }).catch(() => {});
    }
  }
  const db = new PGlite(pgdata);
  await db.waitReady;
  if (!template) return { db, fromTemplate: false };
  await db.close();
  await saveTemplate(pgdata, template, log);
  const reopened = new PGlite(pgdata);
  try {
    await reopened.waitReady;
  } catch (error) {
    await reopened.close().catch(() => {});
    throw error;
  }
  return { db: reopened, fromTemplate: false };
}

/**
 * Runs `vacuum` (VACUUM (ANALYZE) of every table, or VACUUM of actor_states) every `intervalMs` on the engine's own
 * connection; returns a stop function.
 */
function scheduleVacuum(
  sql: Sql,
  intervalMs: number,
  log: Logger,
  vacuum: () => Promise<unknown> = () => sql`vacuum (analyze)`,
): () => Promise<void> {
  return runPeriodically(intervalMs, () => {
    const started = performance.now();
    return vacuum().then(
      () => log.debug("vacuumed", { ms: Math.round(performance.now() - started) }),
      (error) => log.warn("vacuum failed", { error }),
    );
  });
}

/**
 * Removes the socket directory an earlier engine on this DATA_DIR recorded and did not remove (it was killed): the
 * caller holds DATA_DIR's lock, so no running engine uses it. Only a directory named like ours and holding nothing but
 * a socket file is removed: the record is a plain file anyone with access to DATA_DIR could have edited.
 */
async function removeLeftSocketDir(dataDir: string, log: Logger): Promise<void> {
  const record = `${dataDir}/${SOCKET_DIR_RECORD}`;
  let path: string;
  try {
    path = (await Deno.readTextFile(record)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  const name = path.slice(path.lastIndexOf("/") + 1);
  const ours = path.startsWith("/") && name.startsWith(SOCKET_DIR_PREFIX) && !name.includes("..");
  if (ours && await holdsOnlySocketFiles(path)) {
    log.info("removing the socket directory an engine stopped without removing", { path });
    await Deno.remove(path, { recursive: true }).catch(() => {});
  }
  await Deno.remove(record).catch(() => {});
}

/** Whether `path` is a directory (not a link) whose entries are all PostgreSQL socket files; false if it is gone. */
async function holdsOnlySocketFiles(path: string): Promise<boolean> {
  try {
    if (!(await Deno.lstat(path)).isDirectory) return false;
    for await (const entry of Deno.readDir(path)) {
      if (!entry.name.startsWith(SOCKET_FILE)) return false;
    }
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Removes this engine's socket directory and its record in DATA_DIR (best effort: nothing else depends on them). */
async function removeSocketDir(dataDir: string, socketDir: string): Promise<void> {
  await Deno.remove(socketDir, { recursive: true }).catch(() => {});
  await Deno.remove(`${dataDir}/${SOCKET_DIR_RECORD}`).catch(() => {});
}

/**
 * Deletes the databases earlier interrupted first starts set aside, so that repeated interruptions
 * keep one (the latest, for inspection) rather than a full database's worth of files each. They
 * hold nothing: the marker is written before the engine stores anything.
 */
async function removeEarlierAsides(dataDir: string, log: Logger): Promise<void> {
  const prefix = `${PGDATA_DIR}${INCOMPLETE_SUFFIX}`;
  for await (const entry of Deno.readDir(dataDir)) {
    if (!entry.name.startsWith(prefix)) continue;
    const path = `${dataDir}/${entry.name}`;
    log.info("deleting a database an earlier interrupted first start set aside", { path });
    await Deno.remove(path, { recursive: true });
  }
}
