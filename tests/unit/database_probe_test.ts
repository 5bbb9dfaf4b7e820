/**
 * Start-up's database probe against a server that is slow to accept connections, with a DATABASE_URL whose
 * connect_timeout allows for it: the probe's new connection takes longer than the probe's own limit, yet the server
 * answers. The probe used to stop such a start-up (`no answer within 10000 ms`) although every connection opened well
 * within the connect_timeout the URL asked for.
 */
import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { connectDatabase } from "../../engine/database.ts";
import { whileDatabaseAnswers } from "../../engine/database_probe.ts";

/** A loopback proxy to `port` that connects each client to it only after `delayMs`, as a slow server accepts. */
function slowProxy(port: number, delayMs: number): { port: number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pipe = (from: Deno.Conn, to: Deno.Conn) =>
    from.readable.pipeTo(to.writable).catch(() => {}).finally(() => {
      for (const conn of [from, to]) {
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    });
  (async () => {
    try {
      for await (const client of listener) {
        open.add(client);
        setTimeout(async () => {
          const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
          open.add(upstream);
          pipe(client, upstream);
          pipe(upstream, client);
        }, delayMs);
      }
    } catch {
      // closed
    }
  })();
  return {
    port: listener.addr.port,
    close: () => {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

Deno.test("whileDatabaseAnswers(): a probe whose connection opens within the URL's connect_timeout does not stop the step", async () => {
  const db = await PGlite.create();
  const pglite = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 });
  await pglite.start();
  const proxy = slowProxy(pglite.getServerConn().split(":").map(Number)[1], 1_000);
  // Every connection takes 1 s to open, which connect_timeout=3 allows; the probe's own limit is shorter.
  const sql = connectDatabase({
    url: `postgres://postgres@127.0.0.1:${proxy.port}/postgres?connect_timeout=3`,
    maxConnections: 2,
  });
  try {
    const step = new Promise<string>((resolve) => setTimeout(() => resolve("migrated"), 1_500));
    const result = await whileDatabaseAnswers(sql, step, "PostgreSQL", "migrations", {
      intervalMs: 100,
      timeoutMs: 500,
    })
      .catch((error: Error) => error.message);
    assert.equal(result, "migrated");
  } finally {
    await sql.end({ timeout: 1 });
    proxy.close();
    await pglite.stop();
    await db.close();
  }
});
