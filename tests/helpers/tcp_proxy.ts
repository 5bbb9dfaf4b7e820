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
  /** Holds back what the target sends, as a client that stopped (SIGSTOP) reads nothing; `thaw` delivers it. */
  freeze(): void;
  thaw(): void;
  close(): void;
}

/**
 * Sees each chunk a client sends before it is forwarded: `forward` passes it on, `close` ends that
 * client's connection (and its upstream one) without forwarding it, after `reply` (bytes sent back
 * to the client), if any.
 */
export type ClientChunkHook = (chunk: Uint8Array) => { readonly action: "forward" } | {
  readonly action: "close";
  readonly reply?: Uint8Array;
};

/** Forwards loopback `port` (chosen freely) to `target`, optionally through `onClientChunk`. */
export function startTcpProxy(
  target: { hostname: string; port: number },
  onClientChunk?: ClientChunkHook,
): TcpProxy {
  let listener: Deno.Listener | null = null;
  const open = new Set<Deno.Conn>();
  let port = 0;

  let frozen: PromiseWithResolvers<void> | null = null;

  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      await from.readable.pipeTo(to.writable);
    } catch {
      // a side closed
    }
    closePair(from, to);
  };

  /** Target to client, held back while frozen. */
  const deliver = async (upstream: Deno.Conn, client: Deno.Conn) => {
    const writer = client.writable.getWriter();
    try {
      for await (const chunk of upstream.readable) {
        while (frozen) await frozen.promise;
        await writer.write(chunk);
      }
    } catch {
      // a side closed
    }
    closePair(upstream, client);
  };

  const closePair = (a: Deno.Conn, b: Deno.Conn) => {
    for (const conn of [a, b]) {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };

  /** Client to upstream, chunk by chunk through the hook. */
  const inspect = async (client: Deno.Conn, upstream: Deno.Conn, hook: ClientChunkHook) => {
    try {
      for await (const chunk of client.readable) {
        const decision = hook(chunk);
        if (decision.action === "close") {
          if (decision.reply) await client.write(decision.reply);
          break;
        }
        await upstream.write(chunk);
      }
    } catch {
      // a side closed
    }
    closePair(client, upstream);
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
          if (onClientChunk) inspect(client, upstream, onClientChunk);
          else pipe(client, upstream);
          deliver(upstream, client);
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
    freeze: () => void (frozen ??= Promise.withResolvers()),
    thaw: () => {
      frozen?.resolve();
      frozen = null;
    },
    close: () => {
      frozen?.resolve();
      frozen = null;
      cut();
    },
  };
}
