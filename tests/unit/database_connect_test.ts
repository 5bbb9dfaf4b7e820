/**
 * A connection that never becomes ready fails its query once every host of the URL was tried, as a refused one does.
 * postgres.js, as published, connected again at once, for ever, whenever the server closed the connection before its
 * start-up completed (something that is not PostgreSQL, a proxy with no server behind it) or while a URL of several
 * hosts had more than one: the query waited for good, and the client opened thousands of connections a second.
 */
import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { connectDatabase } from "../../engine/database.ts";
import { within } from "../helpers/services.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

/** A loopback server that accepts connections and closes each at once; counts them. */
function closingServer(): { port: number; accepted: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conn.close();
      }
    } catch {
      // closed
    }
  })();
  return { port: listener.addr.port, accepted: () => accepted, close: () => listener.close() };
}

/** A loopback port nothing listens on (yet). */
function refusedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** `select 1` on `url` must fail within 10 s; returns its error. */
async function failure(url: string): Promise<Error> {
  const sql = connectDatabase({ url, maxConnections: 1 });
  try {
    const error = await within(10_000, url, sql`select 1`.then(() => undefined, (error: Error) => error));
    assert.ok(error instanceof Error, "the query succeeded");
    return error;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

Deno.test("connectDatabase(): a server that closes every connection before PostgreSQL's start-up fails the query", async () => {
  const server = closingServer();
  try {
    const error = await failure(`postgres://u:p@127.0.0.1:${server.port}/db`);
    assert.match(error.message, new RegExp(`CONNECTION_CLOSED 127\\.0\\.0\\.1:${server.port}`));
    assert.ok(server.accepted() <= 2, `${server.accepted()} connections`);
  } finally {
    server.close();
  }
});

Deno.test("connectDatabase(): an HTTP server at the URL fails the query", async () => {
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => new Response("hello"));
  try {
    await failure(`postgres://u:p@127.0.0.1:${http.addr.port}/db`);
  } finally {
    await http.shutdown();
  }
});

Deno.test("connectDatabase(): a URL of several hosts, all refusing or closing, fails the query naming a host", async () => {
  const server = closingServer();
  try {
    const refused = refusedPort();
    const error = await failure(`postgres://u:p@127.0.0.1:${refused},127.0.0.1:${server.port}/db`);
    assert.match(error.message, /ECONNREFUSED|CONNECTION_CLOSED/);
    const both = await failure(`postgres://u:p@127.0.0.1:${refused},127.0.0.1:${refusedPort()}/db`);
    assert.match(both.message, /ECONNREFUSED/);
  } finally {
    server.close();
  }
});

Deno.test("connectDatabase(): of several hosts, the first that completes PostgreSQL's start-up serves", async () => {
  const server = closingServer();
  const db = await PGlite.create();
  const port = refusedPort();
  const pglite = new PGLiteSocketServer({ db, host: "127.0.0.1", port, maxConnections: 1 });
  await pglite.start();
  const sql = connectDatabase({
    url: `postgres://postgres@127.0.0.1:${refusedPort()},127.0.0.1:${server.port},127.0.0.1:${port}/postgres`,
    maxConnections: 1,
  });
  try {
    const [row] = await within(10_000, "the third host", sql`select 1 + 1 as two`);
    assert.equal(row.two, 2);
  } finally {
    await sql.end();
    await pglite.stop();
    await db.close();
    server.close();
  }
});

/** A PGlite socket server on a loopback port whose table `host` names it. */
async function namedServer(name: string, settings = ""): Promise<{ port: number; stop: () => Promise<void> }> {
  const db = await PGlite.create();
  await db.exec(`create table host as select '${name}' as name; ${settings}`);
  const port = refusedPort();
  // Two connections: the closed one may still count when the pool connects again.
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port, maxConnections: 2 });
  await server.start();
  return {
    port,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}

Deno.test("connectDatabase(): a connection made again goes to the URL's first host again, not on to the next", async () => {
  const first = await namedServer("first");
  const second = await namedServer("second");
  // Closes one connection, at the next query it is sent, as a restart or the end of the connection's lifetime does.
  let closeOne = false;
  const proxy = startTcpProxy({ hostname: "127.0.0.1", port: first.port }, () => {
    if (!closeOne) return { action: "forward" };
    closeOne = false;
    return { action: "close" };
  });
  const sql = connectDatabase({
    url: `postgres://postgres@127.0.0.1:${proxy.port},127.0.0.1:${second.port}/postgres`,
    maxConnections: 1,
  });
  const host = async () => (await within(10_000, "a query", sql<{ name: string }[]>`select name from host`))[0].name;
  try {
    assert.equal(await host(), "first");
    closeOne = true;
    await within(10_000, "the failed query", sql`select 1`.catch(() => undefined));
    assert.equal(await host(), "first", "the new connection went to the second host while the first one served");
  } finally {
    await sql.end();
    proxy.close();
    await first.stop();
    await second.stop();
  }
});

Deno.test("connectDatabase(): target_session_attrs moves on from a server it does not accept, and fails after the last", async () => {
  // PGlite's one backend serves every connection: the first host's sessions are read-only.
  const first = await namedServer("first", "set default_transaction_read_only = on");
  const second = await namedServer("second");
  const url = (attrs: string) =>
    `postgres://postgres@127.0.0.1:${first.port},127.0.0.1:${second.port}/postgres?target_session_attrs=${attrs}`;
  const sql = connectDatabase({ url: url("read-write"), maxConnections: 1 });
  try {
    const [row] = await within(10_000, "read-write", sql<{ name: string }[]>`select name from host`);
    assert.equal(row.name, "second");
    // Neither is in recovery. It used to connect again for ever, the query waiting.
    const error = await failure(url("standby"));
    assert.equal(
      error.message,
      `TARGET_SESSION_ATTRS: 127.0.0.1:${second.port} is not a server target_session_attrs=standby accepts`,
    );
  } finally {
    await sql.end();
    await first.stop();
    await second.stop();
  }
});
