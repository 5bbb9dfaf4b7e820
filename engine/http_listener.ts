/**
 * Binds the engine's HTTP server to HOST:PORT. The engine binds it before it opens its log and
 * database or joins its consumer group, so that an address it cannot have stops the start-up with
 * nothing opened; the failure is a ConfigError naming both settings, since either may be the cause.
 */
import { ConfigError } from "./errors.ts";

/** `host:port` as a client would write it (an IPv6 address in brackets). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Why a bind failed, in words that point at the setting to change; other errors keep their own message. */
function reason(error: unknown, port: number): string {
  if (error instanceof Deno.errors.AddrInUse) {
    return "address in use (another process listens on it: stop it, or set PORT to a free port)";
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return "address not available (HOST is not an address of this machine; 0.0.0.0 listens on all of them)";
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return port < 1024 ? "permission denied (ports below 1024 need privileges: set PORT to 1024 or above)" : (
      "permission denied"
    );
  }
  return error instanceof Error ? error.message : String(error);
}

/** The ConfigError for a failed bind to `host`:`port`. */
export function listenError(host: string, port: number, error: unknown): ConfigError {
  return new ConfigError(`Cannot listen on ${hostPort(host, port)} (HOST, PORT): ${reason(error, port)}`, {
    cause: error,
  });
}

/** Serves `handler` on `host`:`port` (0: any free port); throws `listenError` if the address cannot be bound. */
export function listenHttp(
  host: string,
  port: number,
  handler: (request: Request) => Promise<Response>,
): Deno.HttpServer<Deno.NetAddr> {
  try {
    // Deno.serve binds (and resolves the host name) before it returns; onListen replaces its "Listening on" print.
    return Deno.serve({ hostname: host, port, onListen: () => {} }, handler);
  } catch (error) {
    throw listenError(host, port, error);
  }
}
