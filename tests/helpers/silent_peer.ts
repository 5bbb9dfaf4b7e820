/**
 * A TCP peer on a loopback port that takes connections and answers nothing: a frozen broker, engine or database, or
 * another service at that port, which a client must give up on rather than wait for.
 */

/** A running silent peer. */
export interface SilentPeer {
  readonly port: number;
  /** Resolves when a connection first sends bytes (a request the peer will never answer). */
  readonly firstRequest: Promise<void>;
  /** Stops listening and closes every connection it took. */
  close(): Promise<void>;
}

/** Starts a silent peer on a free loopback port. */
export function silentPeer(): SilentPeer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: Deno.Conn[] = [];
  let requested!: () => void;
  const firstRequest = new Promise<void>((resolve) => requested = resolve);
  const accepting = (async () => {
    for await (const conn of listener) {
      connections.push(conn);
      conn.readable.pipeTo(new WritableStream({ write: () => requested() })).catch(() => {});
    }
  })();
  return {
    port: listener.addr.port,
    firstRequest,
    close: async () => {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of connections) {
        try {
          conn.close();
        } catch {
          // closed by the other side's end
        }
      }
    },
  };
}
