/** Applies the numbered migrations in sql/migrations/ once each, in order, recording them. */
import type { Sql, TransactionSql } from "../engine/database.ts";
import { DatabaseTooNewError, MigrationLockTimeoutError } from "../engine/errors.ts";
import { READ_COMMITTED } from "./isolation.ts";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
/** Serialises concurrent start-ups of several instances on one database. */
const MIGRATION_LOCK_ID = 7_341_001;

/** PostgreSQL's SQLSTATE for a lock not obtained within `lock_timeout`. */
const LOCK_NOT_AVAILABLE = "55P03";

/** How migrations wait for locks. */
export interface MigrateOptions {
  /**
   * Most each lock wait may take (`lock_timeout`: the migration lock, and every table lock of a migration), after
   * which migrate() rejects with a MigrationLockTimeoutError naming the lock and its holders; unset or 0: no limit.
   */
  readonly lockTimeoutMs?: number;
  /**
   * Aborted (a SIGTERM during start-up): the transaction's statement in progress is cancelled, so that a wait for a
   * lock ends at once rather than at the shutdown deadline, and migrate() rejects; nothing is applied.
   */
  readonly signal?: AbortSignal;
}

/** A migration file: `NNN_name.sql`. */
export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * Reads the migration files, sorted by number; rejects gaps, duplicate numbers, and any other entry (hidden ones
 * aside): a misnamed migration would otherwise never be applied, without a word.
 */
export async function readMigrations(dir: URL = MIGRATIONS_DIR): Promise<Migration[]> {
  const found: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".")) continue;
    const match = /^(\d{3})_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !match) {
      throw new Error(`Cannot migrate: ${entry.name} in ${dir.pathname} is not a migration named NNN_name.sql`);
    }
    found.push({ id: Number(match[1]), name: entry.name, sql: await Deno.readTextFile(new URL(entry.name, dir)) });
  }
  found.sort((a, b) => a.id - b.id);
  found.forEach((m, i) => {
    if (m.id !== i + 1) throw new Error(`Cannot migrate: expected migration ${i + 1}, found ${m.name}`);
  });
  return found;
}

/**
 * Applies every migration not yet recorded, all in one transaction; returns the names applied. Refuses a database
 * that a newer version has migrated past the migrations it knows (an older instance, say in a rollback, would run
 * against a schema it was not written for).
 */
export async function migrate(
  sql: Sql,
  migrations?: readonly Migration[],
  options: MigrateOptions = {},
): Promise<string[]> {
  const all = migrations ?? await readMigrations();
  const lockTimeoutMs = options.lockTimeoutMs ?? 0;
  /** What the transaction may be waiting for a table lock on; undefined: the migration lock. */
  let step: TableStep | undefined;
  try {
    return await migrateLocked(sql, all, lockTimeoutMs, (next) => step = next, options.signal);
  } catch (error) {
    if (options.signal?.aborted) throw error;
    if ((error as { code?: unknown }).code !== LOCK_NOT_AVAILABLE || lockTimeoutMs <= 0) throw error;
    throw await lockTimeoutError(sql, step, lockTimeoutMs, error);
  }
}

/** A step of migrate() that locks tables: what it is, and the SQL naming them. */
interface TableStep {
  readonly what: string;
  readonly sql: string;
}

/** migrate() in its transaction; `stepping` is told each step that locks tables before it runs. */
function migrateLocked(
  sql: Sql,
  all: readonly Migration[],
  lockTimeoutMs: number,
  stepping: (step: TableStep) => void,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  // Read committed whatever the session's default: schema_migrations is read after waiting for the lock, and a
  // snapshot taken before the wait missed the migrations another start-up committed meanwhile, applied them again
  // and failed (`relation "actor_states" already exists`).
  return sql.begin(READ_COMMITTED, async (tx) => {
    // For this transaction only: the pool's connection goes back to the server's setting.
    if (lockTimeoutMs > 0) await tx`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
    const stop = await cancelledOnAbort(sql, tx, signal);
    try {
      return await applyLocked(tx, all, stepping);
    } finally {
      stop();
    }
  });
}

/**
 * Cancels the transaction's statement in progress (from another connection of `sql`) when `signal` is aborted: a
 * statement waiting for a lock neither notices its client leave nor ends before lock_timeout. Returns the unhooking.
 */
async function cancelledOnAbort(sql: Sql, tx: TransactionSql, signal: AbortSignal | undefined): Promise<() => void> {
  if (!signal) return () => {};
  signal.throwIfAborted();
  const [{ pid }] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const cancel = () => void sql`select pg_cancel_backend(${pid})`.catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  return () => signal.removeEventListener("abort", cancel);
}

/** migrate()'s steps once its transaction is open: the migration lock, then each migration not yet recorded. */
async function applyLocked(
  tx: TransactionSql,
  all: readonly Migration[],
  stepping: (step: TableStep) => void,
): Promise<string[]> {
  await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`;
  stepping({ what: "reading schema_migrations", sql: "schema_migrations" });
  await tx`create table if not exists schema_migrations (
    id integer primary key, name text not null, applied_at timestamptz not null default now())`;
  const recorded = await tx<{ id: number; name: string }[]>`select id, name from schema_migrations order by id`;
  const known = all.reduce<Migration | undefined>((a, m) => (a && a.id > m.id ? a : m), undefined);
  const newest = recorded.at(-1);
  if (newest && newest.id > (known?.id ?? 0)) {
    throw new DatabaseTooNewError(
      `Cannot start: the database was migrated by a newer version (its latest migration is ${newest.name}, this ` +
        `version knows up to ${known?.name ?? "none"}); run that version or a later one`,
    );
  }
  const done = new Set(recorded.map((r) => r.id));
  const applied: string[] = [];
  for (const m of all) {
    if (done.has(m.id)) continue;
    stepping({ what: `migration ${m.name}`, sql: m.sql });
    await tx.unsafe(m.sql);
    await tx`insert into schema_migrations (id, name) values (${m.id}, ${m.name})`;
    applied.push(m.name);
  }
  return applied;
}

/** A session holding a lock a migration waited for, as pg_stat_activity shows it. */
interface LockHolder {
  readonly pid: number;
  readonly application: string;
  readonly state: string | null;
  readonly since: Date | null;
  readonly statement: string;
  readonly tables: string[];
}

/**
 * The error of a lock wait that `lock_timeout` ended: the lock (the migration lock, or the tables of `step` that
 * other sessions hold) and those sessions, as far as they still hold it once the wait was given up.
 */
async function lockTimeoutError(
  sql: Sql,
  step: TableStep | undefined,
  lockTimeoutMs: number,
  cause: unknown,
): Promise<MigrationLockTimeoutError> {
  const waited = `${step?.what ?? "migrations"} waited MIGRATION_LOCK_TIMEOUT_MS=${lockTimeoutMs}`;
  let holders: LockHolder[] = [];
  try {
    holders = step ? await tableHolders(sql, step) : await migrationLockHolders(sql);
  } catch {
    // The database went away meanwhile: the lock is named without its holders.
  }
  const lock = step
    ? `a lock on ${
      holders.length > 0 ? [...new Set(holders.flatMap((h) => h.tables))].join(", ") : "a table it changes"
    }`
    : `the migration lock (advisory lock ${MIGRATION_LOCK_ID}, held while an instance migrates)`;
  const sessions = holders.length > 0
    ? `held by another PostgreSQL session: ${holders.map(describeHolder).join("; ")}`
    : "held by another PostgreSQL session (none holds it now)";
  return new MigrationLockTimeoutError(
    `Cannot start: ${waited} for ${lock} ${sessions}; end that session, or start again once it is done`,
    { cause },
  );
}

function describeHolder(h: LockHolder): string {
  const since = h.since ? ` since ${h.since.toISOString()}` : "";
  const statement = h.statement.replace(/\s+/g, " ").trim();
  return `pid ${h.pid} (${h.application || "no application_name"}, ${h.state ?? "unknown state"}${since}, ` +
    `last statement: ${statement.length > 120 ? `${statement.slice(0, 117)}...` : statement})`;
}

/** Other sessions holding a lock on a table of this database that `step` names. */
async function tableHolders(sql: Sql, step: TableStep): Promise<LockHolder[]> {
  const rows = await sql<(Omit<LockHolder, "tables"> & { table: string })[]>`
    select a.pid, a.application_name as application, a.state, a.xact_start as since, a.query as statement,
           c.relname as table
    from pg_locks l
    join pg_stat_activity a on a.pid = l.pid
    join pg_class c on c.oid = l.relation
    where l.granted and l.locktype = 'relation' and l.pid <> pg_backend_pid()
      and l.database = (select oid from pg_database where datname = current_database())
      and c.relkind in ('r', 'p') and c.relnamespace = current_schema()::regnamespace
    order by a.pid, c.relname`;
  const words = new Set(step.sql.toLowerCase().match(/[a-z_][a-z0-9_$]*/g));
  const named = rows.filter((r) => words.has(r.table));
  const byPid = new Map<number, LockHolder>();
  for (const { table, ...session } of named) {
    const holder = byPid.get(session.pid) ?? { ...session, tables: [] };
    if (!holder.tables.includes(table)) holder.tables.push(table);
    byPid.set(session.pid, holder);
  }
  return [...byPid.values()];
}

/** Other sessions holding the migration lock. */
function migrationLockHolders(sql: Sql): Promise<LockHolder[]> {
  // A bigint key is listed as classid (its high 32 bits), objid (its low 32 bits) and objsubid 1.
  return sql<LockHolder[]>`
    select a.pid, a.application_name as application, a.state, a.xact_start as since, a.query as statement,
           array[]::text[] as tables
    from pg_locks l
    join pg_stat_activity a on a.pid = l.pid
    where l.granted and l.locktype = 'advisory' and l.classid = 0 and l.objid = ${MIGRATION_LOCK_ID}
      and l.objsubid = 1 and l.pid <> pg_backend_pid()
      and l.database = (select oid from pg_database where datname = current_database())`;
}
