/**
 * DATABASE_URL: validated by the configuration (engine/config.ts), turned into explicit connection
 * options by engine/database.ts, and printed only without its password. postgres.js never sees the
 * URL itself: it would read whatever the URL leaves out from PG* environment variables, and its
 * own parsing failed with the whole URL, password included, in the message (`Invalid URL: '…'`).
 *
 * Forms (`postgresql://` too), as libpq reads them:
 * - `postgres://user[:password]@host[:port][,host[:port]…][/database][?parameters]`: TCP, to each
 *   host in turn;
 * - `postgres://user[:password]@%2Fsocket%2Fdirectory[:port][/database]`: a Unix socket, the
 *   directory percent-encoded in place of the host (`:` in it as `%3A`);
 * - `postgres://user[:password]@[host][:port]/database?host=/socket/directory`: the same, libpq's
 *   and Cloud SQL's form; `host=` replaces the URL's host, whose port still applies.
 * The socket is the file `.s.PGSQL.<port>` in the directory, as libpq and postgres.js name it.
 * The user name, password, database and every parameter are percent-decoded; each port is 1 to
 * 65535 (5432 when left out); the database defaults to the user name. Nothing is read from PG*
 * environment variables: an empty password stays empty (PGPASSWORD is not read).
 *
 * Parameters: `sslmode`, `sslrootcert=system`, `sslnegotiation`, `target_session_attrs`, `host`,
 * `port`, `user`, `dbname`, `connect_timeout` and `fallback_application_name` as in libpq;
 * `channel_binding`, `sslcompression`, `gssencmode=disable|prefer`, `load_balance_hosts=disable` and
 * `client_encoding=UTF8` are accepted and dropped (postgres.js has no such choice, see DROPPED);
 * other libpq parameters and postgres.js's own client options are refused by name; anything else
 * is a server setting sent when connecting (`application_name`, `search_path`, `options`, …).
 */

import { isHostNameOrIpv4, isIpv6 } from "./host.ts";

/** Values of `sslmode`; `disable` connects without TLS, the others as postgres.js's `ssl` of the same name. */
const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
/** Values of `target_session_attrs`; `any` (libpq's default) takes the first server that answers. */
const TARGET_SESSION_ATTRS = ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] as const;
const SSL_NEGOTIATIONS = ["postgres", "direct"] as const;
/** postgres.js options it would take from the URL's query; the engine sets them itself. */
const CLIENT_OPTIONS = new Set([
  "ssl",
  "max",
  "idle_timeout",
  "max_lifetime",
  "max_pipeline",
  "backoff",
  "keep_alive",
  "prepare",
  "debug",
  "fetch_types",
  "publications",
]);
/**
 * libpq parameters accepted and dropped, with the values accepted: postgres.js does what they ask
 * (or libpq's default) without being told. `channel_binding`: postgres.js authenticates with
 * SCRAM-SHA-256 without channel binding, which `disable` and `prefer` allow; `require` (in some hosted
 * services' URLs) is refused rather than silently not enforced. `sslcompression`: ignored by libpq itself since
 * PostgreSQL 14. `gssencmode`: postgres.js never tries GSSAPI encryption, which `disable` and
 * `prefer` allow. `load_balance_hosts=disable`: hosts are tried in order. `client_encoding`:
 * postgres.js always asks for UTF8.
 */
const DROPPED: Readonly<Record<string, (value: string) => boolean>> = {
  channel_binding: (value) => value === "disable" || value === "prefer",
  sslcompression: (value) => value === "0" || value === "1",
  gssencmode: (value) => value === "disable" || value === "prefer",
  load_balance_hosts: (value) => value === "disable",
  client_encoding: (value) => ["utf8", "unicode"].includes(value.toLowerCase().replace(/[^a-z0-9]/g, "")),
};
/** libpq parameters postgres.js cannot honour (PostgreSQL 18's list); sent as server settings, each failed the connect. */
const LIBPQ_UNSUPPORTED = new Set([
  "hostaddr",
  "password",
  "passfile",
  "require_auth",
  "keepalives",
  "keepalives_idle",
  "keepalives_interval",
  "keepalives_count",
  "tcp_user_timeout",
  "replication",
  "requiressl",
  "sslcert",
  "sslkey",
  "sslpassword",
  "sslcertmode",
  "sslcrl",
  "sslcrldir",
  "sslsni",
  "sslkeylogfile",
  "ssl_min_protocol_version",
  "ssl_max_protocol_version",
  "min_protocol_version",
  "max_protocol_version",
  "requirepeer",
  "krbsrvname",
  "gsslib",
  "gssdelegation",
  "service",
  "scram_client_key",
  "scram_server_key",
  "oauth_issuer",
  "oauth_client_id",
  "oauth_client_secret",
  "oauth_scope",
  // Not libpq's, but postgres.js's startup message would take it for the database name.
  "database",
  ...Object.keys(DROPPED),
]);
const DEFAULT_PORT = 5432;
/** A Unix socket's path fits in `sockaddr_un.sun_path` (108 bytes on Linux, with its NUL). */
const MAX_SOCKET_PATH_BYTES = 107;
/** The longest connect_timeout in seconds a Node.js timer keeps (2^31 - 1 ms; a longer one fires at once). */
const MAX_CONNECT_TIMEOUT_S = 2_147_483;

/** TLS as postgres.js's `ssl` option: false for none, else the mode. */
type SslMode = false | Exclude<(typeof SSL_MODES)[number], "disable">;
/** A server the pool may settle on; null: any. */
type TargetSessionAttrs = Exclude<(typeof TARGET_SESSION_ATTRS)[number], "any"> | null;

/** Where and as whom to connect, read from a `postgres://` URL. */
interface DatabaseAddress {
  /**
   * Hosts in the order postgres.js tries them, each with its port at the same index; for a Unix
   * socket, its directory and port.
   */
  readonly hosts: readonly string[];
  readonly ports: readonly number[];
  /** The Unix socket's file (`<directory>/.s.PGSQL.<port>`), postgres.js's `path`; null for TCP. */
  readonly socketPath: string | null;
  readonly user: string;
  /** Empty when the URL has none (PGPASSWORD is not read). */
  readonly password: string;
  readonly database: string;
  /** False on a Unix socket whatever `sslmode` says: libpq ignores sslmode there, and PostgreSQL has no TLS on one. */
  readonly ssl: SslMode;
  readonly sslnegotiation: (typeof SSL_NEGOTIATIONS)[number] | null;
  readonly targetSessionAttrs: TargetSessionAttrs;
  /** `connect_timeout` in seconds; null when the URL has none. */
  readonly connectTimeoutS: number | null;
  /** Other query parameters: server settings sent when connecting. */
  readonly serverSettings: Readonly<Record<string, string>>;
}

const EXAMPLE = "e.g. postgres://user:password@host:5432/database";
const ENCODING_HINT = "characters such as @ : / ? # % in the user name or password must be percent-encoded " +
  "(%40 %3A %2F %3F %23 %25)";

/** A DATABASE_URL that cannot be used; the message never contains the URL or any part of it. */
class DatabaseUrlError extends Error {}

/** A port in decimal digits from 1 to 65535, or NaN. */
export function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return port >= 1 && port <= 65535 ? port : NaN;
}

/** One entry of a URL's host list, as written (a socket directory percent-encoded), or undefined. */
interface HostEntry {
  readonly host: string;
  /** Undefined when the entry names none. */
  readonly port: number | undefined;
  readonly socket: boolean;
}

/** `host[:port]`, `[ipv6][:port]` or `%2Fsocket%2Fdirectory[:port]` of a URL's host list, or undefined. */
function parseHostPort(entry: string): HostEntry | undefined {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  const [raw, port] = bracketed ? [bracketed[1], bracketed[2]] : entry.split(/:(.*)/s, 2);
  const socket = !bracketed && /^%2F/i.test(raw);
  const host = socket ? socketDirectory(decode(raw, "the socket directory")) : raw;
  const valid = bracketed ? isIpv6(host) : socket || isHostNameOrIpv4(host);
  if (!valid) return undefined;
  const number = port === undefined ? undefined : parsePort(port);
  return Number.isNaN(number) ? undefined : { host, port: number, socket };
}

/** An absolute directory without trailing slashes, as a socket directory; throws otherwise. */
function socketDirectory(path: string): string {
  if (!path.startsWith("/") || path.includes("\0") || path.includes(",")) {
    throw new DatabaseUrlError(
      "a socket directory must be one absolute path (host=/var/run/postgresql, or %2Fvar%2Frun%2Fpostgresql " +
        "in place of the host)",
    );
  }
  return path.replace(/(?<=.)\/+$/, "");
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new DatabaseUrlError(`${what} is not valid percent-encoding (% must start %XX; write % itself as %25)`);
  }
}

function oneOf<T extends string>(values: readonly T[], name: string, value: string): T {
  if ((values as readonly string[]).includes(value)) return value as T;
  throw new DatabaseUrlError(`${name} must be one of ${values.join(", ")}`);
}

/**
 * The query's parameters in order, percent-decoded as libpq does (`+` stays `+`); a later one
 * replaces an earlier one of the same name.
 */
function queryParameters(query: string): Map<string, string> {
  const parameters = new Map<string, string>();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    if (equals < 0) throw new DatabaseUrlError("has a query parameter without =value");
    const name = decode(pair.slice(0, equals), "a parameter name");
    if (name === "") throw new DatabaseUrlError("has a query parameter without a name");
    parameters.set(name, decode(pair.slice(equals + 1), `the parameter ${name}`));
  }
  return parameters;
}

/** Reads a DATABASE_URL; throws DatabaseUrlError saying what is wrong (without quoting the URL). */
export function parseDatabaseUrl(text: string): DatabaseAddress {
  const scheme = /^postgres(ql)?:\/\//i.exec(text);
  if (!scheme) throw new DatabaseUrlError(`must be a postgres:// or postgresql:// URL, ${EXAMPLE}`);
  const rest = text.slice(scheme[0].length);
  // As in a URL: the authority ends at the first / ? or #, and its last @ ends the user name and password.
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const tail = end < 0 ? "" : rest.slice(end);
  const at = authority.lastIndexOf("@");
  const userInfo = at < 0 ? "" : authority.slice(0, at);
  const colon = userInfo.indexOf(":");
  let user = decode(colon < 0 ? userInfo : userInfo.slice(0, colon), "the user name");
  const password = colon < 0 ? "" : decode(userInfo.slice(colon + 1), "the password");
  const hostList = authority.slice(at + 1);
  if (tail.includes("#")) throw new DatabaseUrlError(`must not have a #fragment; ${ENCODING_HINT}`);
  const question = tail.indexOf("?");
  const path = question < 0 ? tail : tail.slice(0, question);
  let database = decode(path.slice(1), "the database name");
  const parameters = queryParameters(question < 0 ? "" : tail.slice(question + 1));

  // libpq's host= and port= replace the URL's.
  const queryHost = parameters.get("host");
  const queryPort = parameters.get("port");
  if (hostList === "" && queryHost === undefined) {
    throw new DatabaseUrlError(
      `must name a host, ${EXAMPLE}, or a Unix socket directory (postgres://user@%2Fvar%2Frun%2Fpostgresql/database ` +
        "or postgres://user@/database?host=/var/run/postgresql)",
    );
  }
  const servers = hostList === "" ? [] : hostList.split(",").map(parseHostPort);
  if (servers.some((server) => server === undefined)) {
    throw new DatabaseUrlError(
      "each host must be a hostname, an IPv4 address, an [IPv6] address or a percent-encoded socket directory, " +
        `with an optional port from 1 to 65535, comma-separated, ${EXAMPLE}; ${ENCODING_HINT}`,
    );
  }
  let entries = servers as HostEntry[];
  if (entries.length > 1 && entries.some((entry) => entry.socket)) {
    throw new DatabaseUrlError("a Unix socket directory must be the only host: postgres.js takes one socket");
  }
  if (queryHost !== undefined) {
    if (entries.length > 1) {
      throw new DatabaseUrlError("host= names one socket directory and replaces the host; remove the host list");
    }
    if (!queryHost.startsWith("/")) {
      throw new DatabaseUrlError(
        "host= must be a Unix socket directory (an absolute path); name a server in the URL's host part instead",
      );
    }
    entries = [{ host: socketDirectory(queryHost), port: entries[0]?.port, socket: true }];
  }
  if (queryPort !== undefined) {
    const port = parsePort(queryPort);
    if (Number.isNaN(port)) throw new DatabaseUrlError("port must be a port from 1 to 65535");
    entries = entries.map((entry) => ({ ...entry, port }));
  }
  const ports = entries.map((entry) => entry.port ?? DEFAULT_PORT);
  const socket = entries[0].socket;
  const socketPath = socket ? `${entries[0].host.replace(/\/$/, "")}/.s.PGSQL.${ports[0]}` : null;
  if (socketPath !== null && new TextEncoder().encode(socketPath).length > MAX_SOCKET_PATH_BYTES) {
    throw new DatabaseUrlError(
      `the socket directory is too long: its socket file's path must be at most ${MAX_SOCKET_PATH_BYTES} bytes`,
    );
  }

  let ssl: SslMode = false;
  let verifyWithSystemRoots = false;
  let sslnegotiation: DatabaseAddress["sslnegotiation"] = null;
  let targetSessionAttrs: TargetSessionAttrs = null;
  let connectTimeoutS: number | null = null;
  let fallbackApplicationName: string | undefined;
  const serverSettings: Record<string, string> = {};
  for (const [name, value] of parameters) {
    if (name === "sslmode") {
      const mode = oneOf(SSL_MODES, "sslmode", value);
      ssl = mode === "disable" ? false : mode;
    } else if (name === "sslrootcert") {
      if (value !== "system") throw new DatabaseUrlError("sslrootcert must be system (the system's CA certificates)");
      verifyWithSystemRoots = true;
    } else if (name === "sslnegotiation") {
      sslnegotiation = oneOf(SSL_NEGOTIATIONS, "sslnegotiation", value);
    } else if (name === "target_session_attrs") {
      const attrs = oneOf(TARGET_SESSION_ATTRS, "target_session_attrs", value);
      targetSessionAttrs = attrs === "any" ? null : attrs;
    } else if (name === "host" || name === "port") {
      // Read above.
    } else if (name === "user") {
      user = value;
    } else if (name === "dbname") {
      database = value;
    } else if (name === "connect_timeout") {
      connectTimeoutS = /^\d{1,7}$/.test(value) ? Number(value) : NaN;
      if (!(connectTimeoutS >= 1 && connectTimeoutS <= MAX_CONNECT_TIMEOUT_S)) {
        throw new DatabaseUrlError(
          `connect_timeout must be whole seconds from 1 to ${MAX_CONNECT_TIMEOUT_S} (libpq's 0, wait for ever, ` +
            "is not supported)",
        );
      }
    } else if (name === "fallback_application_name") {
      fallbackApplicationName = value;
    } else if (name in DROPPED && DROPPED[name](value)) {
      // Accepted and dropped: see DROPPED.
    } else if (name === "password") {
      throw new DatabaseUrlError(`password= is not supported: put the password in the user part; ${ENCODING_HINT}`);
    } else if (LIBPQ_UNSUPPORTED.has(name)) {
      throw new DatabaseUrlError(
        name in DROPPED
          ? `the parameter ${name} has a value postgres.js cannot honour; remove it`
          : `the parameter ${name} is not supported by the engine's PostgreSQL client (postgres.js); remove it`,
      );
    } else if (CLIENT_OPTIONS.has(name)) {
      throw new DatabaseUrlError(`the parameter ${name} is a client option the engine sets itself; remove it`);
    } else {
      serverSettings[name] = value;
    }
  }
  if (fallbackApplicationName !== undefined && !("application_name" in serverSettings)) {
    serverSettings.application_name = fallbackApplicationName;
  }
  if (user === "") throw new DatabaseUrlError(`must name the user, ${EXAMPLE}`);
  return Object.freeze({
    hosts: entries.map((entry) => entry.host),
    ports,
    socketPath,
    user,
    password,
    database: database || user,
    // As postgres.js and libpq: sslrootcert=system verifies the server against the system's roots.
    // libpq ignores sslmode on a Unix socket; postgres.js would try TLS on one and fail.
    ssl: socket ? false : verifyWithSystemRoots ? "verify-full" : ssl,
    sslnegotiation: socket ? null : sslnegotiation,
    targetSessionAttrs,
    connectTimeoutS,
    serverSettings: Object.freeze(serverSettings),
  });
}

/** What is wrong with a DATABASE_URL, or undefined if it can be used; never quotes the URL. */
export function databaseUrlProblem(text: string): string | undefined {
  try {
    parseDatabaseUrl(text);
    return undefined;
  } catch (error) {
    if (error instanceof DatabaseUrlError) return error.message;
    throw error;
  }
}

/** Query parameters whose value is a secret (refused, but shown in the message that refuses them). */
const SECRET_PARAMETER = /([?&](?:[^=&#]*password|oauth_client_secret)=)[^&#]*/gi;

/**
 * The URL with its password replaced by `***`, for messages and logs; also for text that is no
 * valid URL. Everything from the first `:` after the scheme to the last `@` counts as the password
 * when the URL is malformed, so a password with an unencoded `@`, `/` or `#` is hidden too. So are
 * the values of `password=`, `sslpassword=` and `oauth_client_secret=` in the query.
 */
export function redactUrl(text: string): string {
  const hidden = text.replace(SECRET_PARAMETER, "$1***");
  const scheme = hidden.indexOf("://");
  const from = scheme < 0 ? 0 : scheme + 3;
  const at = hidden.lastIndexOf("@");
  const colon = hidden.indexOf(":", from);
  if (at < from || colon < 0 || colon > at) return hidden;
  return `${hidden.slice(0, colon + 1)}***${hidden.slice(at)}`;
}
