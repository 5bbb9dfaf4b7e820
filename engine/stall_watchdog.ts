/**
 * Says so in the logs when the engine's thread stops running. PGlite runs PostgreSQL on that
 * thread, and on a full disk it spins forever in its WAL flush: no request is answered, no timer
 * fires and no log line is written, so the report has to come from another thread. The main thread
 * stores the time every `beatMs`; a worker compares it with the clock and writes one error line
 * when it is older than `stallMs`, and one more if the thread comes back.
 */
import type { LogFields, LogLevel } from "./logger.ts";

/** A thread blocked this long is not a slow query or a long checkpoint: PGlite's normal statements take milliseconds. */
export const DEFAULT_STALL_MS = 30_000;
/** Period of the heartbeat and of the worker's check: a stall is reported within one beat of `stallMs`. */
const DEFAULT_BEAT_MS = 1_000;

/** Settings of the watchdog. */
export interface StallWatchdogOptions {
  /** Fields of the process's log lines (instance), repeated on the worker's. */
  readonly fields: LogFields;
  /** The process's log level: the reports are errors and warnings, dropped only at "error" for the second. */
  readonly level: LogLevel;
  /** How long the heartbeat may be silent before the stall is reported (default DEFAULT_STALL_MS). */
  readonly stallMs?: number;
  /** The heartbeat's and the check's period (default DEFAULT_BEAT_MS). */
  readonly beatMs?: number;
}

/** What the worker receives. */
export interface StallWatchdogStart {
  readonly beat: SharedArrayBuffer;
  readonly stallMs: number;
  readonly beatMs: number;
  readonly fields: LogFields;
  readonly level: LogLevel;
}

/** Starts the heartbeat and its worker; returns the function that stops both. */
export function startStallWatchdog(options: StallWatchdogOptions): () => void {
  const beat = new SharedArrayBuffer(8);
  const view = new BigInt64Array(beat);
  const beatMs = options.beatMs ?? DEFAULT_BEAT_MS;
  Atomics.store(view, 0, BigInt(Date.now()));
  const timer = setInterval(() => Atomics.store(view, 0, BigInt(Date.now())), beatMs);
  Deno.unrefTimer(timer);
  const worker = new Worker(new URL("./stall_watchdog_worker.ts", import.meta.url), { type: "module" });
  const start: StallWatchdogStart = {
    beat,
    stallMs: options.stallMs ?? DEFAULT_STALL_MS,
    beatMs,
    fields: options.fields,
    level: options.level,
  };
  worker.postMessage(start);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    worker.terminate();
  };
}
