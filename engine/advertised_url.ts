/**
 * The address this instance registers for query routing: ADVERTISED_URL when set (behind Docker or
 * Kubernetes the bind address is not what other instances can reach), else the bound address, with
 * this host's name in place of a wildcard (0.0.0.0, ::) that no other host could dial.
 */

/** What the advertised address is chosen from. */
export interface AdvertisedUrlInput {
  /** ADVERTISED_URL, already validated as an http(s) origin. */
  readonly configured?: string;
  /** The address the HTTP server is bound to. */
  readonly bound: Deno.NetAddr;
  /** This host's name (Deno.hostname), injectable for tests. */
  readonly hostname?: () => string;
}

/** The base URL other instances forward queries to. */
export function advertisedUrl({ configured, bound, hostname = Deno.hostname }: AdvertisedUrlInput): string {
  if (configured) return configured;
  const wildcard = bound.hostname === "0.0.0.0" || bound.hostname === "::";
  const host = wildcard ? hostname() : bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  return `http://${host}:${bound.port}`;
}
