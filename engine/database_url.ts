/**
 * DATABASE_URL: validated by the configuration (engine/config.ts), turned into explicit connection
 * options by engine/database.ts, and printed only without its password. postgres.js never sees the
 * URL itself: it would read whatever the URL leaves out from PG* environment variables, and its
 * own parsing failed with the whole URL, password included, in the message (`Invalid URL: '…'`).
 *
 * Form: `postgres://user[:password]@host[:port][,host[:port]…][/database][?parameters]`
 * (`postgresql://` too). The user name, password and database are percent-decoded; each port is 1
 * to 65535 (5432 when left out); the database defaults to the user name. Parameters: `sslmode`,
 * `sslrootcert=system`, `sslnegotiation` and `target_session_attrs` as in libpq; postgres.js's own
 * client options are refused (the engine sets them); anything else is a server setting sent when
 * connecting (`application_name`, `search_path`, `options`, …).
 */

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
  "connect_timeout",
  "max_lifetime",
  "max_pipeline",
  "backoff",
  "keep_alive",
  "prepare",
  "debug",
  "fetch_types",
  "publications",
]);
const DEFAULT_PORT = 5432;

/** TLS as postgres.js's `ssl` option: false for none, else the mode. */
export type SslMode = false | Exclude<(typeof SSL_MODES)[number], "disable">;
/** A server the pool may settle on; null: any. */
export type TargetSessionAttrs = Exclude<(typeof TARGET_SESSION_ATTRS)[number], "any"> | null;

/** Where and as whom to connect, read from a `postgres://` URL. */
export interface DatabaseAddress {
  /** Hosts in the order postgres.js tries them, each with its port at the same index. */
  readonly hosts: readonly string[];
  readonly ports: readonly number[];
  readonly user: string;
  /** Empty when the URL has none. */
  readonly password: string;
  readonly database: string;
  readonly ssl: SslMode;
  readonly sslnegotiation: (typeof SSL_NEGOTIATIONS)[number] | null;
  readonly targetSessionAttrs: TargetSessionAttrs;
  /** Other query parameters: server settings sent when connecting. */
  readonly serverSettings: Readonly<Record<string, string>>;
}

const EXAMPLE = "e.g. postgres://user:password@host:5432/database";
const ENCODING_HINT = "characters such as @ : / ? # % in the user name or password must be percent-encoded " +
  "(%40 %3A %2F %3F %23 %25)";

/** A DATABASE_URL that cannot be used; the message never contains the URL or any part of it. */
export class DatabaseUrlError extends Error {}

/** Four dot-separated decimal bytes, 0 to 255, without leading zeros. */
const IPV4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** One DNS label: letters, digits, inner hyphens; underscores too (container and service names). */
const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** Whether `value` is a hostname or an IPv4 address (an all-digit last label is neither: a mistyped address). */
export function isHostNameOrIpv4(value: string): boolean {
  if (IPV4.test(value)) return true;
  const labels = value.split(".");
  return value.length <= 253 && labels.every((label) => LABEL.test(label)) && !/^\d+$/.test(labels[labels.length - 1]);
}

/** A port in decimal digits from 1 to 65535, or NaN. */
export function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return port >= 1 && port <= 65535 ? port : NaN;
}

/** `host[:port]` or `[ipv6][:port]` of a URL's host list, or undefined. */
function parseHostPort(entry: string): { host: string; port: number } | undefined {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  const [host, port] = bracketed ? [bracketed[1], bracketed[2]] : entry.split(/:(.*)/s, 2);
  const valid = bracketed ? /^[0-9A-Fa-f:.]+$/.test(host) && URL.canParse(`http://[${host}]/`) : isHostNameOrIpv4(host);
  if (!valid) return undefined;
  const number = port === undefined ? DEFAULT_PORT : parsePort(port);
  return Number.isNaN(number) ? undefined : { host, port: number };
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
  const user = decode(colon < 0 ? userInfo : userInfo.slice(0, colon), "the user name");
  const password = colon < 0 ? "" : decode(userInfo.slice(colon + 1), "the password");
  const hostList = authority.slice(at + 1);
  if (hostList === "") throw new DatabaseUrlError(`must name a host, ${EXAMPLE}`);
  const servers = hostList.split(",").map(parseHostPort);
  if (servers.some((server) => server === undefined)) {
    throw new DatabaseUrlError(
      "each host must be a hostname, an IPv4 address or an [IPv6] address, with an optional port from 1 to 65535, " +
        `comma-separated, ${EXAMPLE}; ${ENCODING_HINT}`,
    );
  }
  if (user === "") throw new DatabaseUrlError(`must name the user, ${EXAMPLE}`);
  if (tail.includes("#")) throw new DatabaseUrlError(`must not have a #fragment; ${ENCODING_HINT}`);
  const question = tail.indexOf("?");
  const path = question < 0 ? tail : tail.slice(0, question);
  const database = decode(path.slice(1), "the database name") || user;

  let ssl: SslMode = false;
  let verifyWithSystemRoots = false;
  let sslnegotiation: DatabaseAddress["sslnegotiation"] = null;
  let targetSessionAttrs: TargetSessionAttrs = null;
  const serverSettings: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(question < 0 ? "" : tail.slice(question + 1))) {
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
    } else if (CLIENT_OPTIONS.has(name)) {
      throw new DatabaseUrlError(`the parameter ${name} is a client option the engine sets itself; remove it`);
    } else if (name === "") {
      throw new DatabaseUrlError("has a query parameter without a name");
    } else {
      serverSettings[name] = value;
    }
  }
  return Object.freeze({
    hosts: servers.map((server) => server!.host),
    ports: servers.map((server) => server!.port),
    user,
    password,
    database,
    // As postgres.js and libpq: sslrootcert=system verifies the server against the system's roots.
    ssl: verifyWithSystemRoots ? "verify-full" : ssl,
    sslnegotiation,
    targetSessionAttrs,
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

/**
 * The URL with its password replaced by `***`, for messages and logs; also for text that is no
 * valid URL. Everything from the first `:` after the scheme to the last `@` counts as the password
 * when the URL is malformed, so a password with an unencoded `@`, `/` or `#` is hidden too.
 */
export function redactUrl(text: string): string {
  const scheme = text.indexOf("://");
  const from = scheme < 0 ? 0 : scheme + 3;
  const at = text.lastIndexOf("@");
  const colon = text.indexOf(":", from);
  if (at < from || colon < 0 || colon > at) return text;
  return `${text.slice(0, colon + 1)}***${text.slice(at)}`;
}
