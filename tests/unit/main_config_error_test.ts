import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs `deno run -A main.ts` in embedded mode with `env`; its exit code and stderr once it ends. */
async function runMain(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const inherited = Deno.env.toObject();
  for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "PORT", "HOST", "DATA_DIR", "LOG_LEVEL"]) delete inherited[name];
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: ROOT,
    env: { ...inherited, PORT: "0", HOST: "127.0.0.1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

Deno.test("main.ts: a bad DATA_DIR found by the engine exits 2 with a plain-text message, as a bad setting does", async () => {
  const parent = await Deno.makeTempDir({ prefix: "main-config-error-" });
  try {
    const file = `${parent}/not-a-directory`;
    await Deno.writeTextFile(file, "");
    const cases: [Record<string, string>, RegExp][] = [
      // The configuration itself: the reference behaviour.
      [{ DATA_DIR: file, PORT: "eighty" }, /^Cannot start: invalid configuration: PORT="eighty"/],
      // Found only by startEngine: was a JSON log line and exit code 1.
      [{ DATA_DIR: file }, /^Cannot create DATA_DIR: current value is ".*not-a-directory"/],
    ];
    if (Deno.build.os === "linux") {
      cases.push([
        { DATA_DIR: "/proc/sys" },
        /^Cannot create the lock file engine\.lock in DATA_DIR: current value is "\/proc\/sys"/,
      ]);
    }
    const results = await Promise.all(cases.map(([env]) => runMain(env)));
    for (const [index, [, message]] of cases.entries()) {
      const { code, stderr } = results[index];
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.ok(!stderr.trimStart().startsWith("{"), `a JSON log line: ${stderr}`);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("main.ts: a PostgreSQL it cannot reach stops production start-up at once, naming DATABASE_URL", async () => {
  // Nothing listens on either port. The database is tried first: the broker's retries take half a minute.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed = listener.addr.port;
  listener.close();
  const started = performance.now();
  const { code, stderr } = await runMain({
    KAFKA_BROKERS: `127.0.0.1:${closed}`,
    DATABASE_URL: `postgres://engine:s3cret@127.0.0.1:${closed}/engine`,
  });
  assert.equal(code, 2, stderr);
  assert.match(
    stderr,
    new RegExp(
      `^Cannot start: PostgreSQL at DATABASE_URL="postgres://engine:\\*\\*\\*@127\\.0\\.0\\.1:${closed}/engine" ` +
        `cannot be used: .*ECONNREFUSED`,
    ),
  );
  assert.ok(!stderr.includes("s3cret"), stderr);
  assert.ok(performance.now() - started < 20_000, "not after the broker's retries");
});

Deno.test("main.ts: a database a newer version migrated (a rollback) stops start-up with exit 2 and a plain-text line", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "main-rollback-" });
  try {
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      const known = await readMigrations();
      await migrate(db.sql, known);
      // A newer version applied one more; this version, started again on it, must not run on that schema.
      await db.sql`insert into schema_migrations (id, name) values (${known.length + 1}, 'from_the_future.sql')`;
    } finally {
      await db.close();
    }
    const { code, stderr } = await runMain({ DATA_DIR: dataDir });
    // Was a JSON log line and exit code 1, unlike every other refusal of the database start-up finds.
    assert.equal(code, 2, stderr);
    // The start-up's own log lines come first; the refusal is the last line, in plain text.
    const last = stderr.trim().split("\n").at(-1)!;
    assert.match(last, /^Cannot start: the database was migrated by a newer version \(its latest migration is from_/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
