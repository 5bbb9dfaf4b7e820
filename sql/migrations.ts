/** Applies the numbered migrations in sql/migrations/ once each, in order, recording them. */
import type { Sql } from "../engine/database.ts";
import { READ_COMMITTED } from "./isolation.ts";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
/** Serialises concurrent start-ups of several instances on one database. */
const MIGRATION_LOCK_ID = 7_341_001;

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
export async function migrate(sql: Sql, migrations?: readonly Migration[]): Promise<string[]> {
  const all = migrations ?? await readMigrations();
  // Read committed whatever the session's default: schema_migrations is read after waiting for the lock, and a
  // snapshot taken before the wait missed the migrations another start-up committed meanwhile, applied them again
  // and failed (`relation "actor_states" already exists`).
  return await sql.begin(READ_COMMITTED, async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`;
    await tx`create table if not exists schema_migrations (
      id integer primary key, name text not null, applied_at timestamptz not null default now())`;
    const recorded = await tx<{ id: number; name: string }[]>`select id, name from schema_migrations order by id`;
    const known = all.reduce<Migration | undefined>((a, m) => (a && a.id > m.id ? a : m), undefined);
    const newest = recorded.at(-1);
    if (newest && newest.id > (known?.id ?? 0)) {
      throw new Error(
        `Cannot start: the database was migrated by a newer version (its latest migration is ${newest.name}, this ` +
          `version knows up to ${known?.name ?? "none"}); run that version or a later one`,
      );
    }
    const done = new Set(recorded.map((r) => r.id));
    const applied: string[] = [];
    for (const m of all) {
      if (done.has(m.id)) continue;
      await tx.unsafe(m.sql);
      await tx`insert into schema_migrations (id, name) values (${m.id}, ${m.name})`;
      applied.push(m.name);
    }
    return applied;
  });
}
