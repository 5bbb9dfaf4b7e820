/**
 * Structured JSON logs: one line per entry with time, level, msg and context fields.
 * Loggers are injected; `child` adds context (partition, key, ...) without global state.
 */

/** Severity in increasing order; entries below the configured level are dropped. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Context fields attached to a log entry. */
export type LogFields = Record<string, unknown>;

/** The logging surface every component receives. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every entry. */
  child(fields: LogFields): Logger;
}

/** Where finished lines go; stderr by default so that stdout stays free for program output. */
export type LogSink = (line: string) => void;

const encoder = new TextEncoder();
const stderrSink: LogSink = (line) => Deno.stderr.writeSync(encoder.encode(line + "\n"));

function serialise(value: unknown): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    if ("code" in value) out.code = (value as { code: unknown }).code;
    if (value.cause !== undefined) out.cause = serialise(value.cause);
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** Creates a JSON-lines logger at `level`, writing to `sink`. */
export function createLogger(level: LogLevel, sink: LogSink = stderrSink, base: LogFields = {}): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[lvl] < min) return;
    const entry: LogFields = { time: new Date().toISOString(), level: lvl, msg, ...base };
    if (fields) { for (const [k, v] of Object.entries(fields)) entry[k] = serialise(v); }
    sink(JSON.stringify(entry));
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger(level, sink, { ...base, ...fields }),
  };
}

/** A logger that discards everything, for tests that do not look at logs. */
export const silentLogger: Logger = createLogger("error", () => {});
