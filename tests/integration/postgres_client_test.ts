/**
 * The PostgreSQL client under a server crash. postgres.js 3.4.9, as published, leaves a connection
 * that the server closed while a write was pending unable ever to write again (every later connect
 * times out) and can throw from a timer, ending the process; the engine runs a patched copy
 * (vendor/postgres/PATCHED.md). This pins the patch: transactions running while the server is
 * killed fail, and once it is back the pool serves again.
 */
import assert from "node:assert/strict";
import { connectDatabase } from "../../engine/database.ts";
import { onlyOn } from "../helpers/modes.ts";
import { startPrivatePostgres } from "../helpers/postgres_server.ts";
import { eventually, freshDatabase, within } from "../helpers/services.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

const CONNECTIONS = 4;
const WORKERS = 6;

onlyOn("postgresql", {
  name: "a pool whose server crashed during transactions serves again once the server is back",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startPrivatePostgres();
    const sql = connectDatabase({ url: server.url, maxConnections: CONNECTIONS, connectTimeoutS: 2 });
    let running = true;
    let committed = 0;
    const failures = new Map<string, number>();
    const worker = async (id: number) => {
      while (running) {
        try {
          await sql.begin(async (tx) => {
            await tx`insert into counts values (${id}, 1) on conflict (id) do update set n = counts.n + 1`;
            await tx`select pg_sleep(0.005)`;
          });
          committed++;
        } catch (error) {
          const code = (error as { code?: string }).code ?? String(error);
          failures.set(code, (failures.get(code) ?? 0) + 1);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    };
    try {
      await sql`create table counts (id int primary key, n int not null)`;
      const workers = Array.from({ length: WORKERS }, (_, id) => worker(id));
      await eventually("transactions to commit", () => Promise.resolve(committed >= 100 ? true : undefined));
      await server.stop("immediate");
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.ok(failures.size > 0, "transactions failed while the server was down");
      await server.start();
      const before = committed;
      await eventually(
        "every connection to commit again",
        async () => {
          const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid()`;
          return committed - before >= 200 && n >= CONNECTIONS - 1 ? true : undefined;
        },
        30_000,
      );
      running = false;
      await Promise.all(workers);
    } finally {
      running = false;
      await sql.end({ timeout: 1 });
      await server.destroy();
    }
  },
});

const IDLE_TIMEOUT_MS = 300;

onlyOn("postgresql", {
  name:
    "a statement sent as the server ends its idle transaction fails, and the pool of one serves the next transaction",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const sql = connectDatabase({ url: db.url, maxConnections: 1, idleInTransactionTimeoutMs: IDLE_TIMEOUT_MS });
    try {
      // The next statement leaves at moments around the server's deadline: some before it, some
      // between the server's error and the socket's close (the window the published code mishandles).
      for (const pauseMs of [250, 290, 300, 310, 320, 340, 380, 450]) {
        const outcome = await within(
          5_000,
          `a transaction pausing ${pauseMs} ms`,
          sql.begin(async (tx) => {
            await tx`select 1`;
            await new Promise((resolve) => setTimeout(resolve, pauseMs));
            await tx`select 2`;
          }).then(() => "committed", (error: { code?: string }) => error.code ?? "error"),
        );
        // Well past the deadline the server has ended the session; around it, either may happen.
        if (pauseMs >= 1.5 * IDLE_TIMEOUT_MS) assert.notEqual(outcome, "committed", `paused ${pauseMs} ms`);
        const [{ n }] = await within(
          5_000,
          `the transaction after a ${pauseMs} ms pause`,
          sql.begin((tx) => tx<{ n: number }[]>`select ${pauseMs}::int as n`),
        );
        assert.equal(n, pauseMs);
      }
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
    }
  },
});

/** The error PostgreSQL sends before it closes a session it ends (57P01, as at a restart), in wire format. */
function adminShutdownError(): Uint8Array {
  const fields = ["SFATAL", "VFATAL", "C57P01", "Mterminating connection due to administrator command"]
    .map((field) => field + "\0").join("") + "\0";
  const body = new TextEncoder().encode(fields);
  const message = new Uint8Array(5 + body.length);
  message[0] = "E".charCodeAt(0);
  new DataView(message.buffer).setInt32(1, 4 + body.length);
  message.set(body, 5);
  return message;
}

onlyOn("postgresql", {
  name: "a connection the server ends during its type lookup: the first query runs on the next connection",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const real = new URL(db.url);
    // Ends the first connection the way a restarting server would (an error, then the close) at the
    // moment its client sends the type lookup postgres.js runs after connecting; later ones pass.
    let killed = 0;
    const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) }, (chunk) => {
      if (killed > 0 || !new TextDecoder().decode(chunk).includes("pg_catalog.pg_type")) return { action: "forward" };
      killed++;
      return { action: "close", reply: adminShutdownError() };
    });
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const sql = connectDatabase({ url: viaProxy.toString(), maxConnections: 1 });
    try {
      const [{ n }] = await within(10_000, "the first query", sql<{ n: number }[]>`select 42 as n`);
      assert.equal(n, 42);
      assert.equal(killed, 1, "the first connection was ended during its type lookup");
      const [{ m }] = await within(10_000, "the next query", sql<{ m: number }[]>`select 7 as m`);
      assert.equal(m, 7);
    } finally {
      await sql.end({ timeout: 1 });
      proxy.close();
      await db.drop();
    }
  },
});
