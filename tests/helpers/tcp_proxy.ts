/**
 * A TCP proxy on a loopback port that a test can cut and restore, to make a real server (here
 * PostgreSQL) unreachable for the engine without stopping the server other tests use.
 */

/** A running proxy. */
export interface TcpProxy {
  readonly port: number;
  /** Closes the listener and every open connection: the target is unreachable until `restore`. */
  cut(): void;
  /** Listens again on the same port. */
  restore(): void;
  close(): void;
}

/** Forwards loopback `port` (chosen freely) to `target`. */
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let listener: Deno.Listener | null = null;
  const open = new Set<Deno.Conn>();
  let port = 0;

  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      await from.readable.pipeTo(to.writable);
    } catch {
      // a side closed
    }
    for (const conn of [from, to]) {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };

  const listen = () => {
    if (listener) return;
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = (listener.addr as Deno.NetAddr).port;
    const current = listener;
    (async () => {
      try {
        for await (const client of current) {
          let upstream: Deno.Conn;
          try {
            upstream = await Deno.connect(target);
          } catch {
            client.close();
            continue;
          }
          open.add(client);
          open.add(upstream);
          pipe(client, upstream);
          pipe(upstream, client);
        }
      } catch {
        // listener closed
      }
    })();
  };

  const cut = () => {
    listener?.close();
    listener = null;
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
    open.clear();
  };

  listen();
  return {
    get port() {
      return port;
    },
    cut,
    restore: listen,
    close: cut,
  };
}
