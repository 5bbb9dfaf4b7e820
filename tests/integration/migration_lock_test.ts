/**
 * Start-up's migrations behind a lock another PostgreSQL session holds: a session with a transaction open on a table a
 * migration changes, or another start-up holding the migration lock. Each lock wait is refused after
 * MIGRATION_LOCK_TIMEOUT_MS, and start-up stops naming the setting, the migration, the lock and the sessions holding it;
 * it used to wait for good (and its `alter table`, queued for the table, held up every other query on it meanwhile).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type RunningEngine, startEngine } from "../../engine/engine.ts";
import { ConfigError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";
import { deploy, type Deployment, onlyOn } from "../helpers/modes.ts";
import { eventually, within } from "../helpers/services.ts";
import { type EngineProcess, spawnEngine } from "../helpers/engine_process.ts";

/** The migration lock's key (sql/migrations.ts). */
const MIGRATION_LOCK_ID = 7_341_001;

/**
 * Runs `hold` in a transaction of its own session (application_name `lock-holder`) and keeps it open until the
 * returned `release` is called; resolves once `hold` has run.
 */
async function holdingSession(
  d: Deployment,
  hold: (tx: postgres.TransactionSql) => Promise<unknown>,
): Promise<() => Promise<void>> {
  const session = postgres(d.env.DATABASE_URL, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: "lock-holder" },
  });
  const held = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const open = session.begin(async (tx) => {
    await hold(tx);
    held.resolve();
    await released.promise;
  }).catch((error) => held.reject(error));
  await held.promise;
  return async () => {
    released.resolve();
    await open;
    await session.end();
  };
}

/**
 * Sessions waiting for the migration lock on `d`'s database. pg_locks lists the whole server: the start-ups of other
 * test files (on their own databases, under `--parallel`) waiting for theirs were counted too.
 */
async function waitingForMigrationLock(d: Deployment): Promise<number> {
  const [row] = await d.inspect(({ sql }) =>
    sql`select count(*)::int as n from pg_locks
         where locktype = 'advisory' and not granted and classid = 0 and objid = ${MIGRATION_LOCK_ID} and objsubid = 1
           and database = (select oid from pg_database where datname = current_database())`
  );
  return row.n;
}

/** Starts an engine on `d` that must fail within 20 s; returns its error. */
async function failedStart(d: Deployment): Promise<Error> {
  let started: RunningEngine | undefined;
  const outcome = await within(
    20_000,
    "the start-up",
    startEngine(d.config, silentLogger).then((engine) => (started = engine, undefined), (error: Error) => error),
  ).finally(() => started?.stop());
  assert.ok(outcome instanceof Error, "the engine started");
  return outcome;
}

onlyOn("postgresql", {
  name: "a migration behind a session holding its table stops start-up after MIGRATION_LOCK_TIMEOUT_MS, naming both",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { MIGRATION_LOCK_TIMEOUT_MS: "1000" });
    try {
      const all = await readMigrations();
      // The migration that changes dlq_replays, with every one before it applied already (those after it, too, are
      // left to the start-up).
      const index = all.findIndex((m) => /alter table dlq_replays/.test(m.sql));
      assert.ok(index > 0, "a migration changes dlq_replays");
      const altering = all[index];
      await d.inspect(({ sql }) => migrate(sql, all.slice(0, index)));
      // An analyst's transaction left open after reading the table.
      const release = await holdingSession(d, (tx) => tx`select count(*) from dlq_replays`);
      let failure: Error;
      try {
        failure = await failedStart(d);
      } finally {
        await release();
      }
      assert.ok(failure instanceof ConfigError, String(failure));
      assert.match(
        failure.message,
        new RegExp(
          `^Cannot start: migration ${altering.name} waited MIGRATION_LOCK_TIMEOUT_MS=1000 for a lock on ` +
            `dlq_replays held by another PostgreSQL session: pid \\d+ \\(lock-holder, idle in transaction since .+, ` +
            `last statement: select count\\(\\*\\) from dlq_replays\\)`,
        ),
      );
      // Nothing of it was applied; with the session gone, the next start-up applies it and serves.
      const recorded = await d.inspect(({ sql }) => sql`select count(*)::int as n from schema_migrations`);
      assert.equal(recorded[0].n, index);
      const engine = await startEngine(d.config, silentLogger);
      await engine.stop();
    } finally {
      await remove();
    }
  },
});

onlyOn("postgresql", {
  name: "with nothing to migrate, a session holding schema_migrations stops start-up after the timeout, naming it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { MIGRATION_LOCK_TIMEOUT_MS: "1000" });
    try {
      await d.inspect(({ sql }) => migrate(sql));
      const release = await holdingSession(d, (tx) => tx`lock table schema_migrations in access exclusive mode`);
      let failure: Error;
      try {
        failure = await failedStart(d);
      } finally {
        await release();
      }
      assert.ok(failure instanceof ConfigError, String(failure));
      assert.match(
        failure.message,
        /^Cannot start: reading schema_migrations waited MIGRATION_LOCK_TIMEOUT_MS=1000 for a lock on schema_migrations held by another PostgreSQL session: pid \d+ \(lock-holder, idle in transaction since .+, last statement: lock table schema_migrations in access exclusive mode\)/,
      );
    } finally {
      await remove();
    }
  },
});

onlyOn("postgresql", {
  name: "another session holding the migration lock stops start-up after MIGRATION_LOCK_TIMEOUT_MS, naming it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { MIGRATION_LOCK_TIMEOUT_MS: "1000" });
    try {
      // Another start-up in the middle of its migrations (stopped there, or slow).
      const release = await holdingSession(d, (tx) => tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
      let failure: Error;
      try {
        failure = await failedStart(d);
      } finally {
        await release();
      }
      assert.ok(failure instanceof ConfigError, String(failure));
      assert.match(
        failure.message,
        /^Cannot start: migrations waited MIGRATION_LOCK_TIMEOUT_MS=1000 for the migration lock \(advisory lock 7341001, held while an instance migrates\) held by another PostgreSQL session: pid \d+ \(lock-holder, /,
      );
    } finally {
      await remove();
    }
  },
});

onlyOn("postgresql", {
  name: "a start-up waiting for the migration lock, its server answering, goes on once the lock is released",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { MIGRATION_LOCK_TIMEOUT_MS: "60000" });
    try {
      const release = await holdingSession(d, (tx) => tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
      let engine: RunningEngine | undefined;
      const starting = startEngine(d.config, silentLogger).then((started) => engine = started);
      try {
        await eventually(
          "the start-up to wait for the migration lock",
          async () => await waitingForMigrationLock(d) === 1 || undefined,
        );
        // Several probes of engine/database_probe.ts (every 2 s) pass meanwhile: the server answers them.
        await new Promise((resolve) => setTimeout(resolve, 5_000));
      } finally {
        await release();
      }
      await within(20_000, "the start-up", starting);
      await engine?.stop();
    } finally {
      await remove();
    }
  },
});

onlyOn("postgresql", {
  name:
    "`deno task dlq replay` behind a session holding schema_migrations stops naming MIGRATION_LOCK_TIMEOUT_MS, exit 2",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { MIGRATION_LOCK_TIMEOUT_MS: "1000" });
    try {
      // The engine ran once: its topics and state exist, as for any replay.
      await (await startEngine(d.config, silentLogger)).stop();
      const release = await holdingSession(d, (tx) => tx`lock table schema_migrations in access exclusive mode`);
      let output: Deno.CommandOutput;
      try {
        output = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--quiet", "scripts/dlq.ts", "replay", "--dry-run"],
          cwd: new URL("../../", import.meta.url).pathname,
          env: { ...d.env, PATH: Deno.env.get("PATH") ?? "" },
          clearEnv: true,
          stdin: "null",
        }).output();
      } finally {
        await release();
      }
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 2, stderr);
      assert.match(
        stderr,
        /reading schema_migrations waited MIGRATION_LOCK_TIMEOUT_MS=1000 for a lock on schema_migrations/,
      );
      assert.doesNotMatch(stderr, /^\s+at /m, "a message, not a stack trace");
    } finally {
      await remove();
    }
  },
});

onlyOn("postgresql", {
  name:
    "SIGTERM while start-up's migrations wait for a lock stops it at once: exit 0, nothing applied, no lock waited for",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { MIGRATION_LOCK_TIMEOUT_MS: "60000", LOG_LEVEL: "info" });
    let engine: EngineProcess | undefined;
    try {
      const release = await holdingSession(d, (tx) => tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`);
      try {
        engine = spawnEngine({ dataDir: d.dataDir, env: d.env });
        await eventually(
          "the start-up to wait for the migration lock",
          async () => await waitingForMigrationLock(d) === 1 || undefined,
          30_000,
        );
        // It used to wait on until the shutdown deadline (10 s) ended it with exit code 1.
        const status = await engine.kill("SIGTERM");
        assert.equal(status.code, 0, engine.logs());
        assert.match(engine.logs(), /start-up stopped by the signal/);
        assert.equal(await waitingForMigrationLock(d), 0, "the engine's session no longer waits for the lock");
      } finally {
        await release();
      }
      const recorded = await d.inspect(({ sql }) =>
        sql`select count(*)::int as n from pg_tables where tablename = 'schema_migrations'`
      );
      assert.equal(recorded[0].n, 0, "no migration was applied");
    } finally {
      await engine?.kill("SIGKILL");
      await remove();
    }
  },
});
