import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { connectDatabase, databaseClientOptions } from "../../engine/database.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Every option postgres.js would otherwise read from a PG* variable (vendor/postgres/src/index.js, parseOptions). */
const ENVIRONMENT = {
  PGHOST: "evil-host",
  PGPORT: "6666",
  PGUSER: "evil-user",
  PGUSERNAME: "evil-user",
  PGPASSWORD: "evil-password",
  PGDATABASE: "evil-db",
  PGAPPNAME: "evil-app",
  PGSSL: "require",
  PGSSLNEGOTIATION: "direct",
  PGTARGETSESSIONATTRS: "read-only",
  PGTARGET_SESSION_ATTRS: "read-only",
  PGMAX: "99",
  PGIDLE_TIMEOUT: "1",
  PGCONNECT_TIMEOUT: "1",
  PGMAX_LIFETIME: "1",
  PGMAX_PIPELINE: "1",
  PGBACKOFF: "1",
  PGKEEP_ALIVE: "1",
  PGPREPARE: "false",
  PGDEBUG: "true",
  PGFETCH_TYPES: "false",
  PGPUBLICATIONS: "evil",
};

/** The options a pool gets in a fresh process with `env` (as postgres.js parsed them), as JSON. */
async function poolOptionsIn(env: Record<string, string>, url: string): Promise<Record<string, unknown>> {
  const script = `
    import { connectDatabase } from "./engine/database.ts";
    const sql = connectDatabase({ url: ${JSON.stringify(url)}, maxConnections: 1 });
    const o = sql.options;
    const keys = ["host", "port", "path", "user", "database", "ssl", "sslnegotiation", "target_session_attrs", "max",
      "idle_timeout", "connect_timeout", "max_pipeline", "keep_alive", "prepare", "debug", "fetch_types", "publications"];
    console.log(JSON.stringify({
      ...Object.fromEntries(keys.map((key) => [key, o[key] ?? null])),
      pass: typeof o.pass === "function" ? await o.pass() : o.pass,
      max_lifetime: typeof o.max_lifetime === "function" ? "drawn per connection" : o.max_lifetime,
      backoff: typeof o.backoff === "function" ? o.backoff(3) : o.backoff,
      application_name: o.connection.application_name,
    }));
    await sql.end();`;
  const inherited = Deno.env.toObject();
  for (const name of Object.keys(inherited)) if (name.startsWith("PG")) delete inherited[name];
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    cwd: ROOT,
    env: { ...inherited, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

Deno.test("connectDatabase(): PG* environment variables change nothing (PGSSL=require broke the embedded database)", async () => {
  // The embedded database's URL, as engine/embedded_database.ts builds it.
  const url = "postgres://postgres@127.0.0.1:5/postgres";
  const [clean, polluted] = await Promise.all([poolOptionsIn({}, url), poolOptionsIn(ENVIRONMENT, url)]);
  assert.deepEqual(polluted, clean);
  assert.deepEqual(clean, {
    host: ["127.0.0.1"],
    port: [5],
    path: false,
    user: "postgres",
    database: "postgres",
    pass: "",
    ssl: false,
    sslnegotiation: null,
    target_session_attrs: null,
    max: 1,
    idle_timeout: null,
    connect_timeout: 5,
    max_pipeline: 100,
    keep_alive: 60,
    prepare: true,
    debug: false,
    fetch_types: true,
    publications: "alltables",
    max_lifetime: "drawn per connection",
    backoff: 0.4,
    application_name: "postgres.js",
  });
});

Deno.test("connectDatabase(): the URL's TLS and server choice apply, not the environment's", async () => {
  const url = "postgres://app:p%40ss@db-1,db-2:5433/shop?sslmode=verify-full&target_session_attrs=read-write";
  const options = await poolOptionsIn({ ...ENVIRONMENT, PGSSL: "disable", PGTARGETSESSIONATTRS: "standby" }, url);
  assert.deepEqual(options.host, ["db-1", "db-2"]);
  assert.deepEqual(options.port, [5432, 5433]);
  assert.equal(options.user, "app");
  assert.equal(options.pass, "p@ss");
  assert.equal(options.database, "shop");
  assert.equal(options.ssl, "verify-full");
  assert.equal(options.target_session_attrs, "read-write");
});

Deno.test("databaseClientOptions(): every option from the URL or the engine, none left for postgres.js to look up", async () => {
  const options = databaseClientOptions({
    url: "postgresql://app:s3cret@[::1]:6543/?sslmode=require&sslnegotiation=direct&application_name=engine-1",
    maxConnections: 10,
    idleInTransactionTimeoutMs: 10_000,
  }) as Record<string, unknown>;
  assert.deepEqual(options.host, ["::1"]);
  assert.deepEqual(options.port, [6543]);
  assert.equal(options.database, "app");
  assert.equal(await (options.pass as () => string)(), "s3cret");
  assert.equal(options.ssl, "require");
  assert.equal(options.sslnegotiation, "direct");
  assert.equal(options.target_session_attrs, null);
  assert.deepEqual(options.connection, {
    application_name: "engine-1",
    TimeZone: "UTC",
    idle_in_transaction_session_timeout: 10_000,
    DateStyle: "ISO, MDY",
  });
  // The keys postgres.js's parseOptions fills from PG* variables when they are absent.
  for (
    const key of ["ssl", "sslnegotiation", "idle_timeout", "connect_timeout", "max_lifetime", "max_pipeline", "backoff"]
      .concat(["keep_alive", "prepare", "debug", "fetch_types", "publications", "target_session_attrs", "max"])
  ) {
    assert.ok(key in options, key);
  }
  const sslOff = databaseClientOptions({ url: "postgres://app@db/app?sslmode=disable", maxConnections: 1 });
  assert.equal((sslOff as Record<string, unknown>).ssl, false);
});

Deno.test("databaseClientOptions(): a socket URL gives postgres.js its socket file; connect_timeout its timeout", () => {
  const socket = databaseClientOptions({
    url: "postgres://app@/shop?host=/cloudsql/p:r:i&connect_timeout=10&sslmode=require",
    maxConnections: 1,
    connectTimeoutS: 2,
  }) as Record<string, unknown>;
  assert.equal(socket.path, "/cloudsql/p:r:i/.s.PGSQL.5432");
  assert.equal(socket.connect_timeout, 10);
  assert.equal(socket.ssl, false);
  assert.deepEqual(socket.connection, {
    application_name: "postgres.js",
    TimeZone: "UTC",
    DateStyle: "ISO, MDY",
  });
  const tcp = databaseClientOptions({ url: "postgres://app@db/shop", maxConnections: 1 }) as Record<string, unknown>;
  assert.equal(tcp.path, false);
  assert.equal(tcp.connect_timeout, 5);
});

Deno.test("connectDatabase(): queries PostgreSQL (PGlite) on a Unix socket, both socket forms", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pgsock-" });
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, path: `${dir}/.s.PGSQL.5433`, maxConnections: 1 });
  await server.start();
  try {
    // sslmode=require and channel_binding as a hosted service's URL has them: ignored on a socket (as libpq does).
    for (
      const url of [
        `postgres://postgres@/postgres?host=${dir}&port=5433&sslmode=require&channel_binding=prefer`,
        `postgres://postgres@${encodeURIComponent(dir)}:5433/postgres?connect_timeout=3`,
      ]
    ) {
      const sql = connectDatabase({ url, maxConnections: 1 });
      try {
        const [row] = await sql`select 1 + 1 as two`;
        assert.equal(row.two, 2, url);
      } finally {
        await sql.end();
      }
    }
  } finally {
    await server.stop();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("databaseClientOptions(): ISO timestamps whatever the URL says; its time zone and isolation are kept", () => {
  const options = databaseClientOptions({
    url: "postgres://app@db/shop?datestyle=SQL,DMY&DATESTYLE=German&timezone=Europe/Paris" +
      "&default_transaction_isolation=serializable",
    maxConnections: 1,
  }) as { connection: Record<string, unknown> };
  // The server applies the startup settings in order: the last spelling of a name wins.
  const last = (name: string) =>
    Object.entries(options.connection).findLast(([key]) => key.toLowerCase() === name)?.[1];
  assert.equal(last("datestyle"), "ISO, MDY");
  assert.equal(last("timezone"), "Europe/Paris");
  // Not pinned as a startup parameter (PgBouncer refuses it): the engine's transactions state read committed themselves.
  assert.equal(last("default_transaction_isolation"), "serializable");
});
